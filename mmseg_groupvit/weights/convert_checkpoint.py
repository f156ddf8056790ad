# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Published GroupViT checkpoints in this package's keys with their
architecture, in memory and as files (``tools/convert_weights.py``)."""
import os
import os.path as osp
from typing import Optional

import torch

from groupvit_common.errors import CheckpointError, DataFileError
from groupvit_common.files import read_json
from .arch import (HEADS, PARTS, arch_diff, arch_from_hf_config,
                   arch_from_nvlabs_config, canonical, check_arch, infer_arch,
                   released_arch)
from .check import TRAINING_KEYS, check_entries, check_state_dict
from .convert import convert_hf, convert_nvlabs
from .safe_load import read_file, trust_checkpoint

DEFAULT_BASE_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'groupvit_voc.py')
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
_DAMAGED = 'The file is incomplete or damaged; download it again.'


def weights_file(path: str) -> str:
    """The weights file of a transformers folder; other paths unchanged."""
    if not osp.isdir(path):
        return path
    for name in HF_WEIGHT_FILES:
        if osp.isfile(osp.join(path, name)):
            return osp.join(path, name)
    for name in HF_WEIGHT_FILES:
        if osp.isfile(osp.join(path, f'{name}.index.json')):
            raise CheckpointError(
                f'{path} holds transformers weights in shards ({name}.index'
                f'.json), which are not read. Save them as one file: '
                f'GroupViTModel.from_pretrained(FOLDER).save_pretrained(OUT) '
                f'(GroupViT fits the default max_shard_size).')
    raise CheckpointError(
        f'{path} is a folder without {" or ".join(HF_WEIGHT_FILES)}; give a '
        f'transformers GroupViT folder (save_pretrained) or an NVlabs .pth '
        f'file.')


def _published(checkpoint, path: str):
    """``(layout, state, config)`` of an NVlabs or transformers checkpoint
    read from ``path`` (config: its own, or the ``config.json`` beside it);
    else None."""
    if not isinstance(checkpoint, dict) or 'state_dict' in checkpoint:
        return None
    model = checkpoint.get('model')
    state = model if isinstance(model, dict) else checkpoint
    names = [k for k in state if isinstance(k, str)]
    # DistributedDataParallel's keys start with module. (convert_nvlabs).
    if any(
            k.removeprefix('module.').startswith('img_encoder.')
            for k in names):
        return 'nvlabs', state, checkpoint.get('config')
    if model is None and any(k.startswith('vision_model.') for k in names):
        config = osp.join(osp.dirname(path), 'config.json')
        return 'hf', state, read_config_json(config) if osp.isfile(
            config) else None
    return None


def load_source_checkpoint(path: str, trust_pickle: bool = False):
    """Read an NVlabs ``.pth``, a transformers folder or weights file or a
    converted checkpoint (fully unpickled with ``trust_pickle``).

    Returns:
        tuple: ``(layout, state_dict, config)``: ``'nvlabs'``, ``'hf'`` or
        ``'mmseg'``; the config, ``config.json`` or meta (or None).
    """
    path = weights_file(path)
    if trust_pickle:
        trust_checkpoint(path)
    checkpoint = read_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'{path} holds a {type(checkpoint).__name__}, not a state dict; '
            f'it is not a GroupViT checkpoint.')
    parts = _published(checkpoint, path)
    if parts:
        return parts
    if isinstance(checkpoint.get('model'), dict):
        return 'nvlabs', checkpoint['model'], checkpoint.get('config')
    if isinstance(checkpoint.get('state_dict'), dict):
        keys = sorted(map(str, checkpoint['state_dict']))
        if not any(k.startswith(PARTS + ('decode_head.', )) for k in keys):
            raise CheckpointError(
                f'{path} holds the state_dict of another model (keys e.g. '
                f'{keys[:3]}), none of them under {list(PARTS)}: it is not a '
                f'GroupViT checkpoint. Give an NVlabs .pth, a transformers '
                f'GroupViT folder, or a checkpoint written by '
                f'tools/convert_weights.py.')
        return 'mmseg', checkpoint['state_dict'], checkpoint.get('meta')
    raise CheckpointError(
        f'{path} does not look like a GroupViT checkpoint: none of its '
        f'{len(checkpoint)} keys (e.g. {sorted(map(str, checkpoint))[:3]}) '
        f'has the NVlabs prefix "img_encoder." (under "model") or the '
        f'transformers prefix "vision_model.".')


def read_config_json(path: str) -> dict:
    """A JSON file holding one object; else :class:`CheckpointError`."""
    try:
        config = read_json(path, what='JSON file')
    except DataFileError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f'{path} holds a JSON {type(config).__name__}, not an object of '
            f'config fields: it is not a GroupViT config.')
    return config


def _declared(layout: str, config, arch_config: Optional[str],
              src: str) -> dict:
    """The fields ``--arch-config``, else the checkpoint's config or meta
    declares, passed by :func:`check_arch`."""
    if arch_config is None and layout == 'mmseg':
        return recorded_arch(config, src) or {}
    if arch_config is None and config is None:
        return {}
    where = arch_config or f'the config in {src}'
    if arch_config is not None:
        config = read_config_json(arch_config)
    hf = layout == 'hf' if arch_config is None else (
        'vision_config' in config or 'text_config' in config)
    try:
        arch = (arch_from_hf_config if hf else arch_from_nvlabs_config)(config)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f'{where} is malformed ({type(e).__name__}: {e}). Give the '
            f'model\'s own config.') from None
    if arch is None and arch_config is not None:
        raise CheckpointError(
            f'--arch-config {arch_config} is not a GroupViT architecture: '
            f'give a transformers config.json (with "vision_config") or '
            f'an NVlabs config (with "model.img_encoder"); this file has '
            f'the keys {sorted(config)[:6]}.')
    check_arch(arch or {}, where)
    return arch or {}


def recorded_arch(meta, source: str = 'the checkpoint') -> Optional[dict]:
    """``meta['groupvit_arch']`` passed by :func:`check_arch`, less the
    fields listed as assumed; None without it."""
    arch = meta.get('groupvit_arch') if isinstance(meta, dict) else None
    if arch is None:
        return None
    check_arch(arch, f'the meta.groupvit_arch of {source}')
    assumed = meta.get('groupvit_arch_assumed') or []
    if not (isinstance(assumed, list)
            and all(isinstance(a, str) for a in assumed)):
        raise CheckpointError(
            f'the meta.groupvit_arch_assumed of {source} is not a list of '
            f'field names; the file is damaged.')
    arch = {part: dict(values) for part, values in arch.items()}
    for field in assumed:
        part, _, key = field.partition('.')
        arch.get(part, {}).pop(key, None)
    return arch


def convert_source(layout: str,
                   state: dict,
                   config=None,
                   arch_config: Optional[str] = None,
                   vision_heads: Optional[int] = None,
                   src: str = 'the checkpoint'):
    """A state dict of ``layout`` (see :func:`load_source_checkpoint`) in
    this package's keys (sorted) and its architecture: the tensor shapes
    and what ``config``, ``arch_config`` or ``vision_heads`` declare (a
    head count recorded nowhere is left to the model config)."""
    check_entries(state, src)
    if layout == 'nvlabs':
        state = convert_nvlabs(state)
    elif layout == 'hf':
        state = convert_hf(state, src)
    # Another mmseg model's checkpoint, or one without an encoder:
    prefixes = sorted({k.split('.')[0] for k in state if '.' in k})
    if layout == 'mmseg' and set(prefixes) - set(PARTS + ('decode_head', )):
        raise CheckpointError(
            f'{src} is a checkpoint of another mmseg model (its keys start '
            f'with {prefixes}, not only {list(PARTS)}), e.g. GroupViT '
            f'fine-tuned under its own head: it needs no conversion. Test it '
            f'with the config it was trained with: python tools/test.py '
            f'CONFIG {src}')
    missing = [p for p in PARTS if p not in prefixes]
    if missing:
        raise CheckpointError(
            f'{src} does not hold a complete GroupViT: it has no '
            f'{" and no ".join(p + ".*" for p in missing)} tensors (its keys '
            f'start with {prefixes}). {_DAMAGED}')
    declared = _declared(layout, config, arch_config, src)
    try:
        inferred = infer_arch(state)
    except (KeyError, IndexError) as e:
        raise CheckpointError(
            f'{src} does not hold a complete GroupViT: tensor {e} is '
            f'missing. {_DAMAGED}') from None
    if vision_heads is not None:
        declared.setdefault('image_encoder', {})[HEADS] = vision_heads
    diff = arch_diff(declared, inferred, says=('config says', 'tensors say'))
    if diff:
        raise CheckpointError(
            'The checkpoint\'s config disagrees with its tensors:\n  ' +
            '\n  '.join(diff) + '\nThe config or the weights are from '
            'another model; use the matching pair.')
    arch = {p: dict(inferred.get(p), **declared.get(p, {})) for p in PARTS}
    text = arch['text_encoder']
    if HEADS not in text and layout == 'nvlabs':  # its TextTransformer's rule
        text[HEADS] = max(text['hidden_size'] // 64, 1)
    # Fields nothing tells have the constructors' defaults (not the heads).
    defaults = released_arch()
    for part in PARTS:
        del defaults[part][HEADS]
    return {k: state[k] for k in sorted(state)}, canonical(arch, defaults)


def to_mmseg_checkpoint(checkpoint, path: str, name: Optional[str] = None):
    """A published checkpoint read from ``path`` (errors say ``name``, if
    given) converted, anything else unchanged."""
    parts = _published(checkpoint, path)
    if parts is None:
        return checkpoint
    state, arch = convert_source(*parts, src=name or path)
    # No dataset classes: the model names them after its vocabulary.
    return dict(
        state_dict=state, meta=dict(groupvit_arch=arch, dataset_meta={}))


def save_checkpoint(checkpoint: dict, dst: str) -> None:
    """``torch.save`` to ``dst`` atomically."""
    _write_atomically(dst, lambda f: torch.save(checkpoint, f))


def _write_atomically(dst: str, write) -> None:
    """``write(f)`` into a new temporary file, then renamed to ``dst``."""
    if osp.exists(dst) and not osp.isfile(dst):
        raise CheckpointError(f'{dst} is not a regular file; give a file '
                              f'path to write the checkpoint to.')
    tmp = f'{dst}.{os.getpid()}.partial'
    try:
        os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
        # 'x': created here, never a file or link already at that name.
        with open(tmp, 'xb') as f:
            write(f)
        os.replace(tmp, dst)
    except OSError as e:
        raise CheckpointError(
            f'cannot write {dst}: {e.strerror or e}.') from None
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def expected_state(arch: dict) -> dict:
    """The state dict (on the meta device) of the segmentor of ``arch``."""
    from mmseg.registry import MODELS
    own = {'decode_head.logit_scale': torch.empty((), device='meta')}
    types = dict(
        image_encoder=dict(type='mmseg.GroupViT'),
        text_encoder=dict(
            type='mmseg.GroupViTTextEncoder', vocabulary=['object']))
    for part, cfg in types.items():
        try:
            with torch.device('meta'):
                module = MODELS.build(dict(cfg, **arch[part]))
        except (ValueError, TypeError) as e:
            raise CheckpointError(
                f'No {part} can be built with the checkpoint\'s '
                f'architecture: {e}') from e
        own.update({f'{part}.{k}': v for k, v in module.state_dict().items()})
    return own


_CONFIG_MARK = '# Written by tools/convert_weights.py'


def _check_config_path(path: str, base_config: str) -> None:
    """Refuse to replace ``path`` unless the converter wrote it (never the
    base config it inherits)."""
    if not osp.lexists(path):
        return
    ours = False
    if osp.isfile(path) and not osp.islink(path) and not (
            osp.exists(base_config) and osp.samefile(path, base_config)):
        with open(path, 'rb') as f:
            ours = f.read(len(_CONFIG_MARK)) == _CONFIG_MARK.encode()
    if not ours:
        raise CheckpointError(
            f'{path} exists and was not written by the converter (it is '
            f'where the config of this non-default architecture goes); '
            f'nothing was written. Give DST a name whose .py is free.')


def convert_checkpoint(src: str,
                       dst: str,
                       arch_config: Optional[str] = None,
                       vision_heads: Optional[int] = None,
                       base_config: str = DEFAULT_BASE_CONFIG,
                       trust_pickle: bool = False) -> dict:
    """Convert ``src`` (NVlabs ``.pth``, transformers folder or file) to
    ``dst``, checked against the model of its architecture, and write
    ``DST.py`` inheriting ``base_config`` for a non-default one.

    Args:
        arch_config (str, optional): A ``config.json`` or NVlabs config for
            a ``src`` that carries none.
        trust_pickle (bool): Unpickle ``src`` fully.

    Returns:
        dict: ``layout``, ``arch``, ``num_tensors``, ``config`` (the
        written config or None) and ``assumed`` (fields guessed).
    """
    if dst.endswith('.py'):
        raise CheckpointError(
            f'DST {dst} ends in .py: the converter writes the weights there '
            f'and, for non-default architectures, the config to DST.py, '
            f'which would overwrite them. Give a .pth path.')
    layout, state, config = load_source_checkpoint(src, trust_pickle)
    state, arch = convert_source(layout, state, config, arch_config,
                                 vision_heads, src)
    check_arch(arch, src)
    released, assumed = released_arch(), []
    for part, option, key in zip(PARTS, ('--vision-heads N or ', ''),
                                 ('vision_config', 'text_config')):
        if HEADS in arch[part]:
            continue
        if arch_diff(released, arch, ignore=[f'{p}.{HEADS}' for p in PARTS]):
            raise CheckpointError(
                f'{src} records no {part} attention head count (no '
                f'config.json or NVlabs config says it) and its architecture '
                f'is not the released one, so it cannot be assumed: pass '
                f'{option}--arch-config with the model\'s config.json to '
                f'tools/convert_weights.py (one holding only {{"{key}": '
                f'{{"num_attention_heads": N}}}} will do).')
        arch[part][HEADS] = heads = released[part][HEADS]
        assumed.append(f'{part}.{HEADS}={heads} (the released models\')')
    arch = canonical(arch)
    own = expected_state(arch)
    # Training-only tensors (the multi-label temperature) are kept.
    own.update({
        k: torch.empty((), device='meta')
        for k in TRAINING_KEYS if k in state
    })
    check_state_dict(own, state, src, 'its architecture', _DAMAGED)
    config_path = None
    if arch_diff(released, arch):
        config_path = osp.splitext(dst)[0] + '.py'
        _check_config_path(config_path, base_config)
    state = {k: v.detach().clone() for k, v in state.items()}
    save_checkpoint(
        dict(state_dict=state, meta=dict(groupvit_arch=arch, dataset_meta={})),
        dst)
    if config_path:
        parts = ',\n'.join(f'    {part}=dict(\n' +
                           ',\n'.join(f'        {k}={v!r}'
                                      for k, v in arch[part].items()) + ')'
                           for part in PARTS)  # plain values: check_arch
        text = (f'{_CONFIG_MARK}: the architecture of a non-default\n'
                f'# GroupViT checkpoint.\n_base_ = '
                f'[{osp.abspath(base_config)!r}]\n\nmodel = dict(\n{parts})\n')
        _write_atomically(config_path, lambda f: f.write(text.encode()))
    return dict(
        layout=layout,
        arch=arch,
        num_tensors=len(state),
        config=config_path,
        assumed=assumed)
