# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Post-processing of segmentor outputs with memory bounded for large
images.

mmseg's ``BaseSegmentor.postprocess_result`` resizes the whole ``[C, h, w]``
score map to the original image size before the argmax and keeps it in the
result. For an 8000x6000 photo and 21 classes that is a 4 GB float tensor
(plus the argmax), and it grows with the number of classes. Here, when the
full-size scores would exceed ``test_cfg.max_full_size_scores_bytes``
(default 256 MiB), the argmax is computed a few channels at a time and only
the label map is kept at full size.
"""
import logging
from typing import Iterable, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from torch import Tensor

__all__ = [
    'MAX_FULL_SIZE_SCORES_BYTES', 'BoundedPostprocessMixin',
    'channels_per_step', 'running_argmax', 'resize_argmax', 'unpad_and_unflip',
    'warn_once'
]

#: Largest full-size score map kept in a result (``C * H * W * 4`` bytes);
#: the default of the segmentor's ``test_cfg.max_full_size_scores_bytes``.
MAX_FULL_SIZE_SCORES_BYTES = 256 << 20
#: Working memory for the resized channels of one step.
CHUNK_BYTES = 64 << 20


def channels_per_step(size: Tuple[int, int],
                      chunk_bytes: int = CHUNK_BYTES,
                      element_size: int = 4) -> int:
    """How many ``size`` float maps fit in ``chunk_bytes`` (at least 1)."""
    return max(1, chunk_bytes // (int(size[0]) * int(size[1]) * element_size))


def running_argmax(parts: Iterable[Tuple[int, Tensor]], size: Tuple[int, int],
                   device: torch.device) -> Tensor:
    """``argmax`` over classes whose scores come a group of channels at a
    time.

    A running maximum keeps the first class on ties, as ``argmax`` over all
    channels at once does. Memory: the ``int64`` label map, one float map of
    the best score, the current group and a mask.

    Args:
        parts (Iterable[tuple[int, Tensor]]): ``(first, scores)`` in channel
            order: the index of the group's first channel and its scores
            ``[n, H, W]``.
        size (tuple[int, int]): ``(H, W)``.
        device (torch.device): Device of the label map.

    Returns:
        Tensor: ``[1, H, W]`` int64 labels.
    """
    labels = torch.zeros((1, int(size[0]), int(size[1])),
                         dtype=torch.int64,
                         device=device)
    best = None
    for first, part in parts:
        if part.shape[0] == 1:
            value, index = part[0], None
        else:
            index = part.argmax(dim=0)
            value = part.gather(0, index[None])[0]
        del part
        if best is None:
            best = value
            if index is not None:
                labels[0] = index
            continue
        better = value > best
        torch.maximum(best, value, out=best)
        if index is None:
            labels[0].masked_fill_(better, first)
        else:
            labels[0][better] = index[better] + first
        del value, index, better
    return labels


def resize_argmax(logits: Tensor,
                  size: Tuple[int, int],
                  align_corners: bool = False,
                  chunk_bytes: int = CHUNK_BYTES) -> Tensor:
    """``argmax`` over classes of the bilinearly resized scores, without
    resizing all classes at once.

    Channels are resized in groups of as many as fit in ``chunk_bytes``
    (at least one) and reduced by :func:`running_argmax`. Each channel goes
    through the same ``F.interpolate`` as in a single call, so the values
    compared are bit-identical to mmseg's. Memory: about ``17 * H * W``
    bytes for one channel per group, whatever the number of classes.

    Args:
        logits (Tensor): ``[1, C, h, w]`` scores.
        size (tuple[int, int]): Output ``(H, W)``.
        align_corners (bool): As in ``F.interpolate``. Defaults to False.
        chunk_bytes (int): Memory for one group of resized channels.

    Returns:
        Tensor: ``[1, H, W]`` int64 labels.
    """
    size = (int(size[0]), int(size[1]))
    step = channels_per_step(size, chunk_bytes, logits.element_size())

    def parts():
        for first in range(0, logits.shape[1], step):
            yield first, F.interpolate(
                logits[:, first:first + step],
                size=size,
                mode='bilinear',
                align_corners=align_corners)[0]

    return running_argmax(parts(), size, logits.device)


def unpad_and_unflip(logits: Tensor, meta: dict) -> Tensor:
    """Undo padding and flipping, as mmseg's ``postprocess_result`` does
    (``mmseg/models/segmentors/base.py``, Apache-2.0).

    The parent method cannot serve here: it resizes all the channels it is
    given to the original size in the same step (the memory this module
    avoids), and it turns a single channel into a sigmoid probability, which
    a step of one class may be. Its unpadding and flipping rules are
    repeated on ``[1, C, h, w]`` scores, without the resize.
    """
    height, width = logits.shape[-2:]
    padding = meta.get('img_padding_size', meta.get('padding_size', None))
    left, right, top, bottom = padding or [0] * 4
    logits = logits[:, :, top:height - bottom, left:width - right]
    if meta.get('flip', None):
        direction = meta.get('flip_direction', None)
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f'Unknown flip_direction {direction!r} in the '
                             f'image meta; expected horizontal or vertical.')
        logits = logits.flip(
            dims=(3, ) if direction == 'horizontal' else (2, ))
    return logits


class BoundedPostprocessMixin:
    """mmseg's ``postprocess_result`` with bounded memory, for a segmentor
    with ``test_cfg`` and ``align_corners``."""

    def postprocess_result(self, seg_logits: Tensor, data_samples=None):
        """mmseg's post-processing (resize to the original size, argmax)
        with memory bounded for large images.

        A sample whose full-size scores fit in
        ``test_cfg.max_full_size_scores_bytes`` (default 256 MiB) goes
        through mmseg's method unchanged. For a larger one the labels come
        from :func:`resize_argmax` (the same labels, bit for bit) and
        ``seg_logits`` is kept at the network's resolution ``[C, h, w]``
        instead of the original size; a warning says so once per process.

        Args:
            seg_logits (Tensor): ``[B, C, h, w]`` scores.
            data_samples (Sequence[SegDataSample], optional): Samples with
                ``ori_shape`` (and padding/flip) metas; None only returns the
                scores (nothing is resized), as in mmseg.

        Returns:
            list[SegDataSample]: With ``pred_sem_seg`` and ``seg_logits``.
        """
        parent = super().postprocess_result
        channels = seg_logits.shape[1]
        if data_samples is None or channels == 1:
            return parent(seg_logits, data_samples)
        budget = (self.test_cfg or {}).get('max_full_size_scores_bytes',
                                           MAX_FULL_SIZE_SCORES_BYTES)
        for i, sample in enumerate(data_samples):
            height, width = sample.metainfo['ori_shape'][:2]
            full_bytes = channels * height * width * seg_logits.element_size()
            if full_bytes <= budget:
                parent(seg_logits[i:i + 1], [sample])
                continue
            logits = unpad_and_unflip(seg_logits[i:i + 1], sample.metainfo)
            labels = resize_argmax(logits, (height, width), self.align_corners)
            warn_once(
                'bounded postprocess',
                f'Scores of {channels} classes at {height}x{width} would '
                f'take {full_bytes / 2**30:.1f} GiB (more than '
                f'test_cfg.max_full_size_scores_bytes = '
                f'{budget / 2**20:.0f} MiB): the labels are computed in '
                f'steps and seg_logits is kept at the network resolution. '
                f'Raise test_cfg.max_full_size_scores_bytes to keep '
                f'full-size scores.')
            sample.set_data(
                dict(
                    seg_logits=PixelData(data=logits[0]),
                    pred_sem_seg=PixelData(data=labels)))
        return list(data_samples)


_warned_keys = set()


def warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this
    process (through mmengine's current logger)."""
    if key in _warned_keys:
        return
    _warned_keys.add(key)
    print_log(message, logger='current', level=logging.WARNING)
