# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Strict comparison of a checkpoint with its model (mmengine loads
non-strictly and only logs mismatches): called once per load."""
import weakref
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from groupvit_common.errors import CheckpointError
from .arch import arch_diff, infer_arch

#: Training-only tensors (the multi-label loss's temperature): ignored by a
#: model without them, kept at their initial value when a checkpoint lacks
#: them.
TRAINING_KEYS = ('multi_label_logit_scale', )

# id -> weak reference of the tensors check_state_dict passed last.
_PASSED = {}


def passed(state: Dict[str, torch.Tensor]) -> bool:
    """Whether :func:`check_state_dict` passed these very tensors."""
    return bool(state) and all(
        _PASSED.get(id(v), lambda: None)() is v for v in state.values())


def optional_training_keys(own: Dict[str, torch.Tensor],
                           state: Dict[str, torch.Tensor]) -> Dict:
    """``state`` with :data:`TRAINING_KEYS` as ``own`` has them."""
    state = {
        k: v
        for k, v in state.items() if k in own or k not in TRAINING_KEYS
    }
    for key in TRAINING_KEYS:
        if key in own and key not in state:
            state[key] = own[key]
    return state


def compare_state_dicts(
        own: Dict[str, torch.Tensor],
        state: Dict[str,
                    torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """Keys missing from ``state``, keys it has in excess, and keys whose
    shapes differ, each sorted."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(
        k for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape))
    return missing, unexpected, reshaped


def _listed(keys: List[str], limit: int = 5) -> str:
    return f'{keys[:limit]}{" ..." * (len(keys) > limit)}'


def _kind(dtype: torch.dtype) -> str:
    if dtype.is_floating_point:
        return 'floating-point'
    return 'boolean' if dtype == torch.bool else 'integer'


def check_entries(state: dict, source: str) -> None:
    """Refuse keys that are not strings and values that are not tensors."""
    for what, bad in (('key(s) of the state dict are not names',
                       [repr(k) for k in state if not isinstance(k, str)]),
                      ('entr(y/ies) of the state dict are not tensors', [
                          f'{k} ({type(v).__name__})'
                          for k, v in state.items()
                          if not isinstance(v, torch.Tensor)
                      ])):
        if bad:
            raise CheckpointError(
                f'{source}: {len(bad)} {what}: {_listed(sorted(bad))}. The '
                f'file is not a GroupViT checkpoint, or it is damaged.')


def check_values(state: Dict[str, torch.Tensor],
                 source: str,
                 own: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Raise :class:`CheckpointError` for values no model can use: what
    :func:`check_entries` refuses, NaN or Inf in the model's dtype,
    negative BatchNorm variances, a dtype kind (float, int, bool) other
    than the model's (``own``)."""
    check_entries(state, source)
    own = own or {}
    kinds = sorted(f'{k} ({state[k].dtype}, the model has {own[k].dtype})'
                   for k in set(own) & set(state)
                   if _kind(own[k].dtype) != _kind(state[k].dtype))
    if kinds:
        raise CheckpointError(
            f'{source}: {len(kinds)} tensor(s) have a dtype of another kind '
            f'than the model\'s: {_listed(kinds)}. The file is damaged or '
            f'from another model.')
    nonfinite = sorted(
        k for k, v in state.items() if v.is_floating_point()
        and not bool(torch.isfinite(v.to(_model_dtype(own.get(k), v))).all()))
    if nonfinite:
        raise CheckpointError(
            f'{source}: {len(nonfinite)} tensor(s) hold NaN or Inf: '
            f'{_listed(nonfinite)}. A model with these weights gives '
            f'meaningless scores (typically one class everywhere); the '
            f'training diverged or the file is damaged. Use another '
            f'checkpoint.')
    negative = sorted(
        k for k, v in state.items()
        if k.endswith('running_var') and v.is_floating_point() and bool((
            v < 0).any()))
    if negative:
        raise CheckpointError(
            f'{source}: {len(negative)} BatchNorm variance(s) hold negative '
            f'values: {_listed(negative)}. A variance cannot be negative; '
            f'the model would give NaN scores. The file is damaged; use '
            f'another checkpoint.')


def _model_dtype(own: Optional[torch.Tensor],
                 value: torch.Tensor) -> torch.dtype:
    """A float tensor's dtype in the model (float32 for float64)."""
    if own is not None and own.is_floating_point():
        return own.dtype
    return torch.float32 if value.dtype == torch.float64 else value.dtype


def describe_mismatch(own: Dict[str, torch.Tensor], state: Dict[str,
                                                                torch.Tensor],
                      missing: List[str], unexpected: List[str],
                      reshaped: List[str], owner: str) -> List[str]:
    """Lines naming the first few missing, unexpected and reshaped keys."""
    lines = []
    for name, keys in (('missing from the checkpoint', missing),
                       ('unexpected in the checkpoint', unexpected)):
        if keys:
            lines.append(f'{len(keys)} key(s) {name}: {keys[:6]}'
                         f'{" ..." * (len(keys) > 6)}')
    if reshaped:
        lines.append('shape mismatches: ' + ', '.join(
            f'{k} {tuple(state[k].shape)} vs {owner} {tuple(own[k].shape)}'
            for k in reshaped[:6]))
    return lines


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Refuse a ``state`` without exactly ``model``'s keys and shapes or
    with values :func:`check_values` refuses, naming the differing
    architecture fields and keys."""
    own = model.state_dict()
    state = optional_training_keys(own, state)
    missing, unexpected, reshaped = compare_state_dicts(own, state)
    if not (missing or unexpected or reshaped):
        check_values(state, 'The checkpoint', own)
        _PASSED.clear()
        _PASSED.update((id(v), weakref.ref(v)) for v in state.values())
        return
    if not any(
            k.startswith(('image_encoder.', 'text_encoder.')) for k in state):
        raise CheckpointError(
            f'The checkpoint has none of the model\'s keys (e.g. '
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
    lines += describe_mismatch(own, state, missing, unexpected, reshaped,
                               'model')
    raise CheckpointError(
        'The checkpoint does not match the model built from the config:\n' +
        '\n'.join(lines) + '\nUse the config written next to the converted '
        'checkpoint (tools/convert_weights.py writes DST.py for '
        'non-default architectures), or set these fields in your config.')
