# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The background threshold, checked (standard library only, so the ONNX
runtime shares the check)."""
import math

__all__ = ['check_bg_thresh']


def check_bg_thresh(bg_thresh: float) -> float:
    """Return ``bg_thresh`` as a float, or raise naming the fix."""
    try:
        value = float(bg_thresh)
    except (TypeError, ValueError):
        value = float('nan')
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(
            f'bg_thresh must be a number in [0, 1], got {bg_thresh!r}. '
            f'A pixel is background when its group\'s best class score is '
            f'below it: 0 keeps every pixel foreground, 0.95 is the VOC '
            f'and COCO value, 0.35 the PASCAL Context one.')
    return value
