# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Sliding-window inference with the windows batched through the backbone.

mmseg's ``EncoderDecoder.slide_inference`` runs one window at a time and
adds each window's scores into the image canvas through ``F.pad`` of the
window to the full image size (a full ``[B, C, H, W]`` temporary per
window). Here the windows of an image go through ``encode_decode`` in
batches of ``test_cfg.window_batch`` and are added into the canvas slices
in the same order, so every sum is the same as mmseg's.
"""
from typing import Iterator, List, Tuple

import torch
from torch import Tensor

from groupvit_common.window_grid import window_boxes

__all__ = [
    'SlidingWindowsMixin', 'window_boxes', 'window_batch', 'window_batches',
    'window_counts', 'DEFAULT_WINDOW_BATCH'
]

#: Windows per backbone pass when ``test_cfg`` does not say: two 448x448
#: windows per pass were 8% faster per window than one on a 2-core CPU
#: (docs/benchmark.md), and most images of the shipped protocols have two.
DEFAULT_WINDOW_BATCH = 2


def window_batch(test_cfg) -> int:
    """``test_cfg.window_batch`` (checked with the rest of ``test_cfg`` by
    :func:`~.test_cfg.check_test_cfg`)."""
    value = (test_cfg or {}).get('window_batch')
    return DEFAULT_WINDOW_BATCH if value is None else value


def window_batches(inputs: Tensor, boxes: List[Tuple[int, int, int, int]],
                   per_pass: int) -> Iterator[Tuple[list, Tensor]]:
    """The windows of ``boxes``, ``per_pass`` at a time.

    Args:
        inputs (Tensor): ``[B, 3, H, W]``.
        boxes (list[tuple]): ``(y1, y2, x1, x2)`` per window, all of one
            size.
        per_pass (int): Windows per batch.

    Yields:
        tuple[list, Tensor]: The batch's boxes and its crops
        ``[n * B, 3, h, w]``, window-major: ``crops.split(B)`` gives the
        windows in the order of the boxes.
    """
    for start in range(0, len(boxes), per_pass):
        chunk = boxes[start:start + per_pass]
        yield chunk, torch.cat(
            [inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk])


def window_counts(inputs: Tensor, boxes: List[Tuple[int, int, int,
                                                    int]]) -> Tensor:
    """How many windows cover each pixel: ``[1, 1, H, W]``."""
    count = inputs.new_zeros((1, 1) + tuple(inputs.shape[2:]))
    for y1, y2, x1, x2 in boxes:
        count[:, :, y1:y2, x1:x2] += 1
    return count


class SlidingWindowsMixin:
    """``slide_inference`` for a segmentor with ``test_cfg``,
    ``out_channels`` and ``encode_decode`` (mmseg's contract)."""

    def slide_inference(self, inputs: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Slide inference as mmseg's, with ``test_cfg.window_batch``
        windows (default 2) per ``encode_decode`` call and the window scores
        added in place rather than padded to the image size; the sums are
        mmseg's.

        Args:
            inputs (Tensor): ``[B, 3, H, W]``.
            batch_img_metas (list[dict]): Image metas; as in mmseg, the
                first one's ``img_shape`` is set to the window size.

        Returns:
            Tensor: ``[B, out_channels, H, W]``, the average of the windows'
            scores at every pixel.
        """
        test_cfg = self.test_cfg
        batch_size, _, height, width = inputs.shape
        boxes = window_boxes(height, width, tuple(test_cfg['crop_size']),
                             tuple(test_cfg['stride']))
        preds = inputs.new_zeros(
            (batch_size, self.out_channels, height, width))
        for chunk, crops in window_batches(inputs, boxes,
                                           window_batch(test_cfg)):
            batch_img_metas[0]['img_shape'] = crops.shape[2:]
            logits = self.encode_decode(crops, batch_img_metas)
            for (y1, y2, x1, x2), window in zip(chunk,
                                                logits.split(batch_size)):
                preds[:, :, y1:y2, x1:x2] += window
        return preds / window_counts(inputs, boxes)
