# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Reading the checkpoints that mmengine's ``Runner`` writes while training.

mmengine 0.10.7 loads checkpoints with ``torch.load`` and no
``weights_only`` argument, which means ``weights_only=True`` from torch 2.6
on. Its training checkpoints (``iter_*.pth``) also pickle the message hub:
``HistoryBuffer`` objects holding numpy arrays (and dtypes), whose
``statistics_methods`` are stored as ``getattr(HistoryBuffer, name)``. The
weights-only unpickler refuses those, so ``--resume``, ``load_from`` and
``tools/test.py`` fail on them (open-mmlab/mmengine#1655). Allowing exactly
these globals keeps the safe unpickler: it still calls nothing else
(``getattr`` only looks up attributes of allowed objects, and what it
returns cannot be called unless it is allowed too).
"""
import builtins

import numpy as np
import torch


def mmengine_state_globals() -> list:
    """The globals besides tensors in an mmengine training checkpoint."""
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(
        np, '_core') else np.core.multiarray
    # numpy >= 1.25 rebuilds a dtype through its class (Float64DType, ...).
    dtype_classes = {
        type(np.dtype(t))
        for t in set(np.sctypeDict.values()) if t is not np.object_
    }
    return [
        HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct,
        multiarray.scalar, builtins.getattr
    ] + sorted(
        dtype_classes, key=lambda c: c.__name__)


def allow_mmengine_training_state() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine training
    checkpoints (process-wide, via ``torch.serialization.add_safe_globals``).
    """
    torch.serialization.add_safe_globals(mmengine_state_globals())
