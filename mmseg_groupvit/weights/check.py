# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Strict comparison of a checkpoint with its model, once per load
(mmengine only logs mismatches)."""
import weakref
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from groupvit_common.errors import CheckpointError, shown
from .arch import PARTS, arch_diff, infer_arch

#: Training-only tensors (the multi-label temperature): ignored by a model
#: without them, kept at their initial value when a checkpoint lacks them.
TRAINING_KEYS = ('multi_label_logit_scale', )

_PASSED = {}  # id -> weak reference of the tensors passed last

_FIX = ('Use the config written next to the converted checkpoint '
        '(tools/convert_weights.py writes DST.py for non-default '
        'architectures), or set these fields in your config.')


def passed(state: Dict[str, torch.Tensor]) -> bool:
    """Whether :func:`check_state_dict` passed these very tensors."""
    return bool(state) and all(
        _PASSED.get(id(v), lambda: None)() is v for v in state.values())


def compare_state_dicts(own: Dict, state: Dict) -> Tuple[List[str], ...]:
    """Sorted keys missing from ``state``, in excess, and reshaped."""
    return (sorted(set(own) - set(state)), sorted(set(state) - set(own)),
            sorted(
                k for k in set(own) & set(state)
                if tuple(own[k].shape) != tuple(state[k].shape)))


def listed(keys: List[str], limit: int = 5) -> str:
    return f'{keys[:limit]}{" ..." * (len(keys) > limit)}'


def _refuse(source: str, keys: List[str], what: str, why: str) -> None:
    if keys:
        raise CheckpointError(
            f'{source}: {len(keys)} {what}: {listed(keys)}. {why}')


def _kind(dtype: torch.dtype) -> tuple:  # floating-point, bool or integer
    return dtype.is_floating_point, dtype == torch.bool


def check_entries(state: dict, source: str) -> None:
    """Refuse keys that are not strings and values that are not tensors."""
    why = 'The file is not a GroupViT checkpoint, or it is damaged.'
    _refuse(source, sorted(shown(k) for k in state if not isinstance(k, str)),
            'key(s) of the state dict are not names', why)
    _refuse(
        source,
        sorted(f'{k} ({type(v).__name__})' for k, v in state.items()
               if not isinstance(v, torch.Tensor)),
        'entr(y/ies) of the state dict are not tensors', why)


def check_values(state: Dict[str, torch.Tensor],
                 source: str,
                 own: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Refuse what :func:`check_entries` refuses, a dtype kind other than
    the model's (``own``), NaN or Inf in the model's dtype (float32 for
    float64 without one), negative BatchNorm variances."""
    check_entries(state, source)
    own = own or {}
    _refuse(
        source,
        sorted(f'{k} ({state[k].dtype}, the model has {own[k].dtype})'
               for k in set(own) & set(state)
               if _kind(own[k].dtype) != _kind(state[k].dtype)),
        'tensor(s) have a dtype of another kind than the model\'s',
        'The file is damaged or from another model.')
    nonfinite, negative = [], []
    for key, value in sorted(state.items()):
        if not value.is_floating_point():
            continue
        dtype = own[key].dtype if key in own else (
            torch.float32 if value.dtype == torch.float64 else value.dtype)
        if not bool(torch.isfinite(value.to(dtype)).all()):
            nonfinite.append(key)
        elif key.endswith('running_var') and bool((value < 0).any()):
            negative.append(key)
    _refuse(
        source, nonfinite, 'tensor(s) hold NaN or Inf',
        'A model with these weights gives meaningless scores (typically one '
        'class everywhere); the training diverged or the file is damaged. '
        'Use another checkpoint.')
    _refuse(
        source, negative, 'BatchNorm variance(s) hold negative values',
        'A variance cannot be negative; the model would give NaN scores. '
        'The file is damaged; use another checkpoint.')


def describe_mismatch(own: Dict, state: Dict, missing: List[str],
                      unexpected: List[str], reshaped: List[str],
                      owner: str) -> List[str]:
    """Lines naming the first few missing, unexpected and reshaped keys."""
    lines = [
        f'{len(keys)} key(s) {name} the checkpoint: {listed(keys, 6)}'
        for name, keys in (('missing from', missing), ('unexpected in',
                                                       unexpected)) if keys
    ]
    if reshaped:
        lines.append('shape mismatches: ' + ', '.join(
            f'{k} {tuple(state[k].shape)} vs {owner} {tuple(own[k].shape)}'
            for k in reshaped[:6]))
    return lines


def check_on_load(module: nn.Module, state_dict: dict, prefix: str,
                  *args) -> None:
    """``load_state_dict`` pre-hook of a model: at the root, drop the
    :data:`TRAINING_KEYS` it lacks, then ``module.check_checkpoint``."""
    if prefix == '':
        own = module.state_dict()
        for key in TRAINING_KEYS:
            if key not in own:
                state_dict.pop(key, None)
        module.check_checkpoint(state_dict)


def check_state_dict(model,
                     state: Dict[str, torch.Tensor],
                     source: str = 'The checkpoint',
                     against: str = 'the config',
                     fix: str = _FIX) -> None:
    """Refuse a ``state`` without exactly the keys and shapes of ``model``
    (a module or its state dict; :data:`TRAINING_KEYS` as it has them) or
    with values :func:`check_values` refuses."""
    own = model.state_dict() if isinstance(model, nn.Module) else model
    state = dict(state)
    for key in TRAINING_KEYS:  # as the model has them
        if key not in own:
            state.pop(key, None)
        elif key not in state:
            state[key] = own[key]
    missing, unexpected, reshaped = compare_state_dicts(own, state)
    if not (missing or unexpected or reshaped):
        check_values(state, source, own)
        _PASSED.clear()
        _PASSED.update((id(v), weakref.ref(v)) for v in state.values())
        return
    if not any(k.startswith(tuple(p + '.' for p in PARTS)) for k in state):
        raise CheckpointError(
            f'{source} has none of the model\'s keys (e.g. '
            f'{sorted(state)[:3]}): it is not a converted GroupViT '
            f'checkpoint. Convert the published weights with '
            f'`python tools/convert_weights.py SRC DST.pth` first.')
    lines = []
    try:
        diff = arch_diff(infer_arch(own), infer_arch(state))
    except (KeyError, IndexError):
        diff = []
    if diff:
        lines.append('architecture fields that differ (config vs '
                     'checkpoint):\n  ' + '\n  '.join(diff))
    raise CheckpointError(
        f'{source} does not match the model built from {against}:\n' +
        '\n'.join(lines + describe_mismatch(own, state, missing, unexpected,
                                            reshaped, 'model')) + '\n' + fix)
