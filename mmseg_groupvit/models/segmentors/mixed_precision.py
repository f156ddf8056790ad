# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``test_cfg.autocast``: the image encoder under ``torch.autocast``
(``'fp16'`` or ``'bf16'``), its output handed to the head in fp32."""
from contextlib import nullcontext
from typing import Optional

import torch
from torch import Tensor

__all__ = ['autocast', 'autocast_dtype', 'to_float32']

_AMP_DTYPES = dict(
    fp16=torch.float16,
    float16=torch.float16,
    bf16=torch.bfloat16,
    bfloat16=torch.bfloat16)


def autocast_dtype(test_cfg) -> Optional[torch.dtype]:
    """``test_cfg.autocast`` (``'fp16'``/``'bf16'``, or None for fp32) as
    a dtype."""
    name = (test_cfg or {}).get('autocast')
    if name in (None, 'fp32', 'float32', False):
        return None
    if name not in _AMP_DTYPES:
        raise ValueError(
            f'test_cfg.autocast must be None (fp32), "fp16" or "bf16", got '
            f'{name!r}.')
    return _AMP_DTYPES[name]


def autocast(test_cfg, device: torch.device):
    """The autocast context of ``test_cfg.autocast`` on ``device`` (a
    no-op for fp32)."""
    dtype = autocast_dtype(test_cfg)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_float32(feats):
    """Floating tensors of a (nested) backbone output in fp32, so the head
    runs in full precision after an autocast backbone."""
    if isinstance(feats, Tensor):
        return feats.float() if feats.is_floating_point() else feats
    if isinstance(feats, dict):
        return {k: to_float32(v) for k, v in feats.items()}
    if isinstance(feats, (list, tuple)):
        return type(feats)(to_float32(v) for v in feats)
    return feats
