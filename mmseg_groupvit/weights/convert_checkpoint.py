# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""End-to-end conversion of a published GroupViT checkpoint into an mmseg
checkpoint (and, for non-default architectures, a matching config)."""
import os
import os.path as osp
from typing import Dict, Optional

import torch
from mmseg.registry import MODELS

from groupvit_common.errors import CheckpointError
from .arch import (DEFAULT_ARCH, arch_diff, canonical_arch, check_arch,
                   infer_arch)
from .check import (TRAINING_KEYS, check_values, compare_state_dicts,
                    describe_mismatch)
from .config_arch import arch_from_hf_config, arch_from_nvlabs_config
from .convert import convert_state_dict
from .io import load_source_checkpoint, read_config_json

DEFAULT_BASE_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'groupvit_voc.py')

# Fields the tensor shapes cannot tell; infer_arch only guesses them.
GUESSED_FIELDS = ('image_encoder.num_attention_heads',
                  'text_encoder.num_attention_heads')
# The two towers every GroupViT checkpoint holds, in this package's keys.
PARTS = ('image_encoder', 'text_encoder')


def _declared_arch(layout: str, config, arch_config: Optional[str]):
    """The architecture a config declares: ``--arch-config`` if given
    (refused unless it is one), else the checkpoint's own config."""
    try:
        return _read_declared_arch(layout, config, arch_config)
    except (AttributeError, KeyError, TypeError) as e:
        where = arch_config or 'the checkpoint\'s config'
        raise CheckpointError(
            f'{where} is malformed: a section or field has the wrong type '
            f'({type(e).__name__}: {e}). Give the model\'s own config.') from e


def _read_declared_arch(layout: str, config, arch_config: Optional[str]):
    if arch_config is not None:
        config = read_config_json(arch_config)
        if 'vision_config' in config:
            return arch_from_hf_config(config)
        arch = arch_from_nvlabs_config(config)
        if arch is None:
            raise CheckpointError(
                f'--arch-config {arch_config} is not a GroupViT '
                f'architecture: give a transformers config.json (with '
                f'"vision_config") or an NVlabs config (with '
                f'"model.img_encoder"); this file has the keys '
                f'{sorted(config)[:6]}.')
        return arch
    if config is None:
        return None
    if layout == 'hf':
        return arch_from_hf_config(config)
    if layout == 'nvlabs':
        return arch_from_nvlabs_config(config)
    arch = config.get('groupvit_arch') if hasattr(config, 'get') else None
    if arch is not None and not (isinstance(arch, dict) and all(
            isinstance(v, dict) for v in arch.values())):
        raise CheckpointError(
            f'The meta.groupvit_arch of the checkpoint is a '
            f'{type(arch).__name__}, not a dict of architecture fields; the '
            f'file is damaged.')
    return arch


def _merge(inferred: dict,
           declared: Optional[dict],
           guessed=GUESSED_FIELDS) -> dict:
    """Declared fields win where the shapes cannot tell (heads, activation,
    eps); everything the shapes can tell must agree."""
    if not declared:
        return inferred
    diff = arch_diff(declared, inferred, ignore=guessed)
    if diff:
        raise CheckpointError(
            'The checkpoint\'s config disagrees with its tensors:\n  ' +
            '\n  '.join(diff).replace('expected', 'config says').replace(
                'got', 'tensors say') +
            '\nThe config or the weights are from another model; use the '
            'matching pair.')
    merged = {part: dict(values) for part, values in inferred.items()}
    for part, values in declared.items():
        merged.setdefault(part, {}).update(values)
    return merged


def expected_state(arch: dict) -> Dict[str, torch.Tensor]:
    """The state dict (keys, shapes, dtypes; on the meta device, so no
    memory) of the segmentor built with ``arch``.

    Raises:
        CheckpointError: A field the encoders refuse.
    """
    parts = dict(
        image_encoder=dict(type='mmseg.GroupViT'),
        text_encoder=dict(
            type='mmseg.GroupViTTextEncoder', vocabulary=['object']))
    own = {'decode_head.logit_scale': torch.empty((), device='meta')}
    for part, cfg in parts.items():
        try:
            with torch.device('meta'):
                module = MODELS.build(dict(cfg, **arch[part]))
        except (ValueError, TypeError) as e:
            raise CheckpointError(
                f'No {part} can be built with the checkpoint\'s '
                f'architecture: {e}') from e
        own.update({f'{part}.{k}': v for k, v in module.state_dict().items()})
    return own


def check_converted(state: Dict[str, torch.Tensor], arch: dict,
                    src: str) -> None:
    """Refuse converted tensors that do not make the model ``arch``
    describes: missing or extra keys, other shapes or dtype kinds,
    NaN or Inf."""
    own = expected_state(arch)
    own.update({
        k: torch.empty((), device='meta')
        for k in TRAINING_KEYS if k in state
    })
    missing, unexpected, reshaped = compare_state_dicts(own, state)
    if missing or unexpected or reshaped:
        raise CheckpointError(
            f'{src} does not hold a complete GroupViT:\n' + '\n'.join(
                describe_mismatch(own, state, missing, unexpected, reshaped,
                                  'model')) +
            '\nThe file is incomplete or damaged; download it again.')
    check_values(state, src, own)


def _format_dict(values: dict, indent: int) -> str:
    pad = ' ' * indent
    items = ',\n'.join(f'{pad}{k}={v!r}' for k, v in values.items())
    return f'dict(\n{items})'


def write_arch_config(path: str, arch: dict, base_config: str) -> None:
    """Write a config inheriting ``base_config`` (by absolute path, so the
    file still loads after it is moved) that sets ``arch``."""
    base = osp.abspath(base_config)
    with open(path, 'w') as f:
        f.write('# Written by tools/convert_weights.py: the architecture of '
                'a non-default\n# GroupViT checkpoint.\n')
        f.write(f'_base_ = [{base!r}]\n\n')
        f.write('model = dict(\n'
                f'    image_encoder={_format_dict(arch["image_encoder"], 8)},'
                '\n'
                f'    text_encoder={_format_dict(arch["text_encoder"], 8)})\n')


def _check_parts(layout: str, state: dict, src: str) -> None:
    """Refuse what the converter cannot turn into a GroupViT: a checkpoint
    of another mmseg model (e.g. GroupViT fine-tuned under its own head,
    which needs no conversion), or one without an image or a text
    encoder."""
    prefixes = sorted({k.split('.')[0] for k in state if '.' in k})
    if layout == 'mmseg':
        foreign = [p for p in prefixes if p not in PARTS + ('decode_head', )]
        if foreign:
            raise CheckpointError(
                f'{src} is a checkpoint of another mmseg model (its keys '
                f'start with {prefixes}, not only {list(PARTS)}), e.g. '
                f'GroupViT fine-tuned under its own head: it needs no '
                f'conversion. Test it with the config it was trained with: '
                f'python tools/test.py CONFIG {src}')
    missing = [
        part for part in PARTS
        if not any(k.startswith(part + '.') for k in state)
    ]
    if missing:
        raise CheckpointError(
            f'{src} does not hold a complete GroupViT: it has no '
            f'{" and no ".join(p + ".*" for p in missing)} tensors (its keys '
            f'start with {prefixes}). The file is incomplete or damaged; '
            f'download it again.')


def convert_source(layout: str,
                   state: dict,
                   config=None,
                   arch_config: Optional[str] = None,
                   vision_heads: Optional[int] = None,
                   src: str = 'the checkpoint',
                   assume_heads: bool = False):
    """Convert a read source checkpoint (see :func:`load_source_checkpoint`)
    to this package's keys and architecture, checking every tensor.

    Args:
        layout (str): ``'nvlabs'``, ``'hf'`` or ``'mmseg'``.
        state (dict): Its raw state dict.
        config: The transformers ``config.json`` or NVlabs config, if any.
        arch_config (str, optional): A JSON file with the architecture.
        vision_heads (int, optional): Vision attention heads, when no config
            says.
        src (str): The source, for messages.
        assume_heads (bool): When nothing records the vision head count of
            an architecture other than the released one, assume the
            released count (listed in ``assumed``, for the loader to warn
            and let the model config decide) instead of refusing. The
            converter refuses; loading assumes.

    Returns:
        tuple: ``(state_dict, arch, assumed)``: the tensors in sorted key
        order, the architecture, and the ``part.field=value`` that nothing
        recorded (assumed).

    Raises:
        CheckpointError: Incomplete or damaged tensors (NaN or Inf
            included), no image or text encoder (e.g. a fine-tuned mmseg
            model), or an architecture that is refused or unknown.
    """
    check_values(state, src)
    state = convert_state_dict(layout, state)
    _check_parts(layout, state, src)
    declared = _declared_arch(layout, config, arch_config)
    try:
        inferred = infer_arch(state, vision_heads=vision_heads)
    except (KeyError, IndexError) as e:
        raise CheckpointError(
            f'{src} does not hold a complete GroupViT: tensor {e} is '
            f'missing. The file is incomplete or damaged; download it '
            f'again.') from e
    guessed = [
        f for f in GUESSED_FIELDS
        if not (vision_heads is not None and f.startswith('image_encoder'))
    ]
    arch = _merge(inferred, declared, guessed)
    assumed = []
    if vision_heads is None and 'num_attention_heads' not in (
            declared or {}).get('image_encoder', {}):
        if not assume_heads and arch_diff(
                DEFAULT_ARCH, arch, ignore=GUESSED_FIELDS):
            raise CheckpointError(
                f'{src} records no vision attention head count (no '
                f'config.json or NVlabs config says it) and its architecture '
                f'is not the released one, so it cannot be assumed: pass '
                f'--vision-heads N (or --arch-config with the model\'s '
                f'config) to tools/convert_weights.py.')
        heads = DEFAULT_ARCH['image_encoder']['num_attention_heads']
        arch['image_encoder']['num_attention_heads'] = heads
        assumed.append(f'image_encoder.num_attention_heads={heads} (the '
                       f'released models\')')
    try:
        check_arch(arch)
    except ValueError as e:
        raise CheckpointError(f'{src}: {e}') from e
    arch = canonical_arch(arch)
    check_converted(state, arch, src)
    state = {k: state[k].detach().clone() for k in sorted(state)}
    return state, arch, assumed


def convert_checkpoint(src: str,
                       dst: str,
                       arch_config: Optional[str] = None,
                       vision_heads: Optional[int] = None,
                       base_config: str = DEFAULT_BASE_CONFIG,
                       trust_pickle: bool = False) -> dict:
    """Convert ``src`` (NVlabs ``.pth`` or transformers folder/file) to an
    mmseg checkpoint at ``dst``.

    The written file depends only on the weights and the architecture:
    the NVlabs and transformers forms of one model give identical files
    (keys in sorted order, one storage per tensor, no source path).

    Args:
        src (str): Source checkpoint.
        dst (str): Output ``.pth`` path.
        arch_config (str, optional): A JSON file with the architecture when
            the checkpoint carries none (a transformers ``config.json`` or an
            NVlabs config with a ``model.img_encoder`` section).
        vision_heads (int, optional): Vision attention heads, when no config
            says.
        base_config (str): Config inherited by the ``.py`` written for
            non-default architectures.
        trust_pickle (bool): Allow full unpickling of ``src``.

    Returns:
        dict: ``layout``, ``arch``, ``num_tensors``, ``config`` (the path of
        the written config or None) and ``assumed`` (fields guessed).

    Raises:
        CheckpointError: An unreadable, incomplete or damaged source (NaN or
            Inf included), an architecture that is refused or unknown, or a
            ``dst`` ending in ``.py``.
    """
    if dst.endswith('.py'):
        raise CheckpointError(
            f'DST {dst} ends in .py: the converter writes the weights there '
            f'and, for non-default architectures, the config to DST.py, '
            f'which would overwrite them. Give a .pth path.')
    layout, state, config = load_source_checkpoint(src, trust_pickle)
    state, arch, assumed = convert_source(layout, state, config, arch_config,
                                          vision_heads, src)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(
        dict(
            state_dict=state,
            meta=dict(
                groupvit_arch=arch,
                groupvit_arch_assumed=[a.split('=')[0] for a in assumed])),
        dst)
    config_path = None
    if arch_diff(DEFAULT_ARCH, arch):
        config_path = osp.splitext(dst)[0] + '.py'
        write_arch_config(config_path, arch, base_config)
    return dict(
        layout=layout,
        arch=arch,
        num_tensors=len(state),
        config=config_path,
        assumed=assumed)
