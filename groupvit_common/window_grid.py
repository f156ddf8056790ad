# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The windows of mmseg's slide inference, without PyTorch: the segmentor
and the onnxruntime runner (tools/deployment) take them from here."""
from typing import List, Tuple

__all__ = ['window_boxes']


def window_boxes(height: int, width: int, crop: Tuple[int, int],
                 stride: Tuple[int, int]) -> List[Tuple[int, int, int, int]]:
    """The windows of mmseg's slide inference, in its order.

    Args:
        height, width (int): Image size.
        crop (tuple[int, int]): Window ``(h, w)``.
        stride (tuple[int, int]): Step ``(h, w)``.

    Returns:
        list[tuple]: ``(y1, y2, x1, x2)`` per window; the last row and
        column are shifted back inside the image, and an image smaller than
        the window gives windows of the image's size.
    """
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    boxes = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, height)
            x2 = min(w_idx * w_stride + w_crop, width)
            boxes.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return boxes
