# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""End-to-end conversion of a published GroupViT checkpoint into an mmseg
checkpoint (and, for non-default architectures, a matching config)."""
import json
import os
import os.path as osp
from typing import Optional

import torch

from .arch import DEFAULT_ARCH, arch_diff, infer_arch
from .config_arch import arch_from_hf_config, arch_from_nvlabs_config
from .convert import convert_state_dict
from .io import CheckpointError, load_source_checkpoint

DEFAULT_BASE_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'groupvit_voc.py')


def _declared_arch(layout: str, config, arch_config: Optional[str]):
    if arch_config is not None:
        with open(arch_config) as f:
            config = json.load(f)
        layout = 'hf' if 'vision_config' in config else 'nvlabs'
    if config is None:
        return None
    if layout == 'hf':
        return arch_from_hf_config(config)
    if layout == 'nvlabs':
        return arch_from_nvlabs_config(config)
    return config.get('groupvit_arch') if hasattr(config, 'get') else None


# Fields the tensor shapes cannot tell; infer_arch only guesses them.
GUESSED_FIELDS = ('image_encoder.num_attention_heads',
                  'text_encoder.num_attention_heads')


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


def _format_dict(values: dict, indent: int) -> str:
    pad = ' ' * indent
    items = ',\n'.join(f'{pad}{k}={v!r}' for k, v in values.items())
    return f'dict(\n{items})'


def write_arch_config(path: str, arch: dict, base_config: str) -> None:
    """Write a config inheriting ``base_config`` that sets ``arch``."""
    base = osp.relpath(
        osp.abspath(base_config), osp.dirname(osp.abspath(path)))
    with open(path, 'w') as f:
        f.write('# Written by tools/convert_weights.py: the architecture of '
                'a non-default\n# GroupViT checkpoint.\n')
        f.write(f"_base_ = ['{base}']\n\n")
        f.write('model = dict(\n'
                f'    image_encoder={_format_dict(arch["image_encoder"], 8)},'
                '\n'
                f'    text_encoder={_format_dict(arch["text_encoder"], 8)})\n')


def convert_source(layout: str,
                   state: dict,
                   config=None,
                   arch_config: Optional[str] = None,
                   vision_heads: Optional[int] = None):
    """Convert a read source checkpoint (see :func:`load_source_checkpoint`)
    to this package's keys and architecture.

    Returns:
        tuple: ``(state_dict, arch, assumed)``; ``assumed`` lists the
        ``part.field=value`` that nothing recorded (guessed).
    """
    state = convert_state_dict(layout, state)
    declared = _declared_arch(layout, config, arch_config)
    inferred = infer_arch(state, vision_heads=vision_heads)
    guessed = [
        f for f in GUESSED_FIELDS
        if not (vision_heads and f.startswith('image_encoder'))
    ]
    arch = _merge(inferred, declared, guessed)
    assumed = []
    if vision_heads is None and 'num_attention_heads' not in (
            declared or {}).get('image_encoder', {}):
        assumed.append('image_encoder.num_attention_heads='
                       f'{arch["image_encoder"]["num_attention_heads"]}')
    return state, arch, assumed


def convert_checkpoint(src: str,
                       dst: str,
                       arch_config: Optional[str] = None,
                       vision_heads: Optional[int] = None,
                       base_config: str = DEFAULT_BASE_CONFIG,
                       trust_pickle: bool = False) -> dict:
    """Convert ``src`` (NVlabs ``.pth`` or transformers folder/file) to an
    mmseg checkpoint at ``dst``.

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
    """
    layout, state, config = load_source_checkpoint(src, trust_pickle)
    state, arch, assumed = convert_source(layout, state, config, arch_config,
                                          vision_heads)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(
        dict(
            state_dict=state,
            meta=dict(
                groupvit_arch=arch,
                groupvit_arch_assumed=[a.split('=')[0] for a in assumed],
                source=osp.abspath(src),
                source_layout=layout)), dst)
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
