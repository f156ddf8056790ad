# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Published checkpoints loaded as they are, and the architecture a
checkpoint carries applied to the model config.

An NVlabs ``.pth``, a transformers folder or weights file, or a converted
checkpoint all load as ``{'state_dict': ..., 'meta': {'groupvit_arch':
...}}`` in this package's keys, the same tensors ``tools/convert_weights.py``
writes; nothing is written to disk.

The architecture is a property of the weights, so it comes from the
checkpoint: :func:`apply_checkpoint_arch` reads it before the model is
built (mmengine's Runner, ``init_model`` and ``MMSegInferencer`` all build
the model from the config first and load the weights afterwards) and fills
in the config's encoder fields. A field the config sets to another value is
refused, naming the fields.
"""
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.logging import print_log

from groupvit_common.errors import CheckpointError
from .arch import arch_diff, check_arch, infer_arch
from .convert_checkpoint import GUESSED_FIELDS, PARTS, convert_source
from .io import load_source_checkpoint


def source_layout(checkpoint) -> Optional[str]:
    """``'nvlabs'`` or ``'hf'`` for a loaded published checkpoint, None for
    anything else (a converted or training checkpoint, another model's)."""
    if not isinstance(checkpoint, dict) or 'state_dict' in checkpoint:
        return None
    model = checkpoint.get('model')
    keys = model if isinstance(model, dict) else checkpoint
    names = [k for k in keys if isinstance(k, str)]
    if any(k.startswith('img_encoder.') for k in names):
        return 'nvlabs'
    if model is None and any(k.startswith('vision_model.') for k in names):
        return 'hf'
    return None


def _as_checkpoint(layout: str, state: dict, config, source: str) -> dict:
    state, arch, assumed = convert_source(
        layout, state, config, src=source, assume_heads=True)
    return dict(
        state_dict=state,
        meta=dict(
            groupvit_arch=arch,
            groupvit_arch_assumed=[a.split('=')[0] for a in assumed],
            source=source,
            source_layout=layout))


def to_mmseg_checkpoint(checkpoint, path: str, trust_pickle: bool = False):
    """Convert a loaded NVlabs or transformers checkpoint to this package's
    keys; return anything else unchanged.

    Args:
        checkpoint: What the safe loader read from ``path``.
        path (str): The file (a transformers ``.bin`` has its
            ``config.json`` beside it).
        trust_pickle (bool): Passed on when the file must be read again.

    Returns:
        The checkpoint, converted when it is a published one.
    """
    layout = source_layout(checkpoint)
    if layout == 'nvlabs':
        model = checkpoint.get('model')
        state = model if isinstance(model, dict) else checkpoint
        return _as_checkpoint(layout, state, checkpoint.get('config'), path)
    if layout == 'hf':
        # Its config.json (heads, activation) lies beside it.
        return load_published(path, trust_pickle)
    return checkpoint


def load_published(path: str, trust_pickle: bool = False) -> dict:
    """Read and convert a transformers folder, ``.safetensors`` /
    ``.bin`` file or NVlabs ``.pth``."""
    layout, state, config = load_source_checkpoint(path, trust_pickle)
    if layout == 'mmseg':
        return dict(state_dict=state, meta=config or {})
    return _as_checkpoint(layout, state, config, path)


def checkpoint_arch(checkpoint: dict) -> Tuple[Optional[dict], List[str]]:
    """The architecture a converted checkpoint records (or, without a
    record, what its tensor shapes tell), and the fields only guessed.

    Returns:
        tuple: ``(arch, guessed)``; ``(None, [])`` for a checkpoint that
        holds no GroupViT.
    """
    meta = checkpoint.get('meta') or {}
    if isinstance(meta.get('groupvit_arch'), dict):
        return meta['groupvit_arch'], list(
            meta.get('groupvit_arch_assumed', []))
    state = checkpoint.get('state_dict', checkpoint)
    try:
        arch = infer_arch(state)
    except (KeyError, IndexError, AttributeError, TypeError):
        return None, []
    if set(arch) != set(PARTS):
        return None, []
    return arch, list(GUESSED_FIELDS)


def _groupvit_models(model_cfg) -> list:
    """The GroupViT segmentor configs in ``model_cfg`` (a test-time
    augmentation wrapper holds one under ``module``)."""
    found = []
    while isinstance(model_cfg, dict):
        if all(isinstance(model_cfg.get(p), dict) for p in PARTS):
            found.append(model_cfg)
        model_cfg = model_cfg.get('module')
    return found


def merge_arch(model_cfg: dict,
               arch: dict,
               guessed: List[str] = (),
               source: str = 'the checkpoint') -> List[str]:
    """Fill ``model_cfg``'s encoder fields with ``arch``.

    Args:
        model_cfg (dict): A GroupViT segmentor config; modified in place.
        arch (dict): ``{'image_encoder': {...}, 'text_encoder': {...}}``.
        guessed (list[str]): ``part.field`` names the checkpoint does not
            record: a config value wins over them.
        source (str): Named in messages.

    Returns:
        list[str]: ``part.field=value`` of the fields set.

    Raises:
        CheckpointError: The config sets a field the checkpoint records
            with another value; the message names each one.
    """
    explicit = {
        part: {
            k: v
            for k, v in model_cfg[part].items() if k in arch.get(part, {})
        }
        for part in PARTS
    }
    conflicts = arch_diff(explicit, arch, ignore=list(guessed))
    if conflicts:
        raise CheckpointError(
            f'the config contradicts the architecture recorded in '
            f'{source}:\n  ' + '\n  '.join(conflicts).replace(
                'expected', 'config says').replace('got', 'checkpoint says') +
            '\nRemove these fields from the config (the checkpoint\'s '
            'architecture is applied), or use the checkpoint that matches '
            'the config.')
    applied = []
    for part in PARTS:
        for key, value in arch.get(part, {}).items():
            if key not in model_cfg[part]:
                model_cfg[part][key] = value
                applied.append(f'{part}.{key}={value}')
    return applied


def apply_checkpoint_arch(cfg,
                          checkpoint: Optional[str] = None,
                          name: Optional[str] = None):
    """Set the model config's architecture from the checkpoint it will load
    (``checkpoint``, else ``cfg.load_from``), before the model is built, and
    log it.

    Args:
        cfg (Config): Modified in place.
        checkpoint (str, optional): Local file, folder, URL or hub id.
        name (str, optional): How the log names it (e.g. the URL of a
            downloaded file).

    Returns:
        dict | None: The architecture applied (None without a checkpoint or
        for a checkpoint that holds no GroupViT).

    Raises:
        CheckpointError: Unreadable checkpoint, failed download, or a config
            that contradicts the checkpoint.
    """
    # Imported here: the loader module registers mmengine schemes.
    from .checkpoint_loader import read_checkpoint
    source = checkpoint or cfg.get('load_from')
    models = _groupvit_models(cfg.get('model'))
    if not source or not models:
        return None
    arch, guessed = checkpoint_arch(read_checkpoint(source))
    if arch is None:
        return None
    name = name or (source if '://' in source else osp.abspath(source))
    for model_cfg in models:
        applied = merge_arch(model_cfg, arch, guessed, name)
    try:
        # A checkpoint's meta is as untrusted as its tensors: check the
        # fields it sets, as merged with the config, before any model is
        # built from them.
        check_arch({
            part: {
                k: models[0][part][k]
                for k in values
            }
            for part, values in arch.items()
        })
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f'{source}: {e}') from None
    print_log(
        f'Architecture from the checkpoint {name}: ' +
        ', '.join(f'{part}.{k}={models[0][part][k]}' for part in PARTS
                  for k in arch.get(part, {})),
        logger='current')
    assumed = [a for a in applied if a.split('=')[0] in guessed]
    if assumed:
        print_log(
            f'{name} does not record {", ".join(assumed)}; this is a guess '
            f'from the tensor shapes. Set the field in the config if the '
            f'model was trained with another value.',
            logger='current',
            level=30)
    return arch


def resolve_load_from(cfg, checkpoint: Optional[str] = None) -> str:
    """Make ``cfg`` ready to load its weights: ``checkpoint`` (else the
    config's ``load_from``) fetched into the cache if remote, its
    architecture applied to the model config, and ``cfg.load_from`` set to
    the local file.

    Args:
        cfg (Config): Modified in place.
        checkpoint (str, optional): Path, transformers folder, URL or hub
            id; overrides ``cfg.load_from``.

    Returns:
        str: The local file ``cfg.load_from`` now names.

    Raises:
        CheckpointError: No checkpoint named, a missing file, a failed
            download or a config that contradicts the checkpoint.
    """
    from .download import is_remote, resolve_checkpoint
    source = checkpoint or cfg.get('load_from')
    if not source:
        raise CheckpointError(
            'no checkpoint: the config sets no load_from. Pass CHECKPOINT (a '
            'file, a transformers folder, a URL or hf://OWNER/NAME), or set '
            'load_from in the config.')
    local = resolve_checkpoint(source)
    if not osp.exists(local):
        raise CheckpointError(
            f'checkpoint not found: {source}. Check the path, give the '
            f'published weights (a URL, hf://nvidia/groupvit-gcc-yfcc, the '
            f'NVlabs .pth or a transformers folder; see README, '
            f'"Checkpoints"), or leave CHECKPOINT out to use the config\'s.')
    apply_checkpoint_arch(cfg, local, name=source)
    cfg.load_from = local
    if is_remote(source):
        print_log(f'Weights {source}: {local}', logger='current')
    return local
