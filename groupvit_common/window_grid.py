# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The windows of mmseg's slide inference, for the segmentor and the
onnxruntime runner."""
from typing import List, Tuple


def window_boxes(height: int, width: int, crop: Tuple[int, int],
                 stride: Tuple[int, int]) -> List[Tuple[int, int, int, int]]:
    """The ``(y1, y2, x1, x2)`` windows of mmseg's slide inference, in its
    order: ``crop`` ``(h, w)`` every ``stride``, the last ones shifted back
    inside the image (an image smaller than ``crop``: its size)."""
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
