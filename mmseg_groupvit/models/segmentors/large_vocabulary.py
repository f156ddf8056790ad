# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Prediction with vocabularies of thousands of classes, without a dense
``[C, H, W]`` score map.

GroupViT's scores are constant on each final group, so a window is fully
described by the group of every pixel ``[h, w]`` and a ``[G, C]`` score
table (:meth:`GroupViTHead.assign`). mmseg's path expands them into dense
maps: every window's ``[C, h, w]`` scores, the slide canvas ``[C, H, W]``
and the canvas resized to the original size. For a 334x500 VOC photo
(448x671 after the test resize) that is 3.8 MiB per class (measured up to
2000 classes), about 19 GiB for 5000.

Here the windows stay compact and the canvas, its average and its resize
are built a few classes at a time, each step reduced by a running argmax.
Every value goes through the operations of mmseg's path in the same order
(the window scores added into a zero canvas in window order, the division
by the window count, the per-channel bilinear resize of
``BaseSegmentor.postprocess_result``), so the labels are bit-identical;
memory no longer grows with the number of classes beyond the ``[G, C]``
tables. The dense score map is not kept in the result (``seg_logits`` is
absent, which is logged once; ``score_channels`` in the metainfo says how
many classes were scored).

The path is taken when the dense score canvas at the network's size would
exceed ``test_cfg.max_dense_scores_bytes`` (default 256 MiB).
"""
from typing import Iterator, List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

from ..decode_heads.groupvit_head import paint_scores
from .postprocess import (channels_per_step, running_argmax, unpad_and_unflip,
                          warn_once)
from .sliding_windows import (window_batch, window_batches, window_boxes,
                              window_counts)

__all__ = [
    'LargeVocabularyMixin', 'MAX_DENSE_SCORES_BYTES', 'dense_scores_bytes'
]

#: Default of ``test_cfg.max_dense_scores_bytes``: the largest dense score
#: canvas ``[B, C, H, W]`` at the network's size built by mmseg's path.
MAX_DENSE_SCORES_BYTES = 256 << 20

Box = Tuple[int, int, int, int]
Window = Tuple[Box, Tensor, Tensor]


def dense_scores_bytes(inputs: Tensor, channels: int) -> int:
    """Bytes of the dense score canvas ``[B, channels, H, W]``."""
    return inputs[:, :1].numel() * channels * inputs.element_size()


def _score_steps(windows: List[Window], index: int, count: Tensor,
                 meta: Optional[dict], align_corners: bool,
                 step: int) -> Iterator[Tuple[int, Tensor]]:
    """Averaged (and, with a meta, resized) scores of image ``index``,
    ``step`` classes at a time: ``(first class, [n, H', W'])``."""
    channels = windows[0][2].shape[-1]
    height, width = count.shape[-2:]
    for first in range(0, channels, step):
        last = min(first + step, channels)
        canvas = count.new_zeros((1, last - first, height, width))
        for (y1, y2, x1, x2), pixel_group, table in windows:
            canvas[:, :, y1:y2, x1:x2] += paint_scores(
                pixel_group[index:index + 1], table[index:index + 1, :,
                                                    first:last])
        canvas = canvas / count
        if meta is not None:
            canvas = unpad_and_unflip(canvas, meta)
            canvas = F.interpolate(
                canvas,
                size=tuple(meta['ori_shape'][:2]),
                mode='bilinear',
                align_corners=align_corners)
        yield first, canvas[0]


class LargeVocabularyMixin:
    """Prediction whose memory does not grow with the number of classes,
    for a segmentor with ``test_cfg``, ``out_channels``, ``align_corners``,
    ``text_encoder``, ``extract_feat`` and a decode head with ``assign``
    (:class:`GroupViTHead`)."""

    def use_large_vocabulary_path(self, inputs: Tensor,
                                  data_samples: Optional[Sequence]) -> bool:
        """Whether ``predict`` should take the large-vocabulary path.

        It does when the dense score canvas ``[B, C, H, W]`` would exceed
        ``test_cfg.max_dense_scores_bytes`` (default 256 MiB) and the decode
        head gives compact scores (:meth:`GroupViTHead.assign`). In
        ``whole`` mode the head's scores must also be at the input size
        (mmseg would resize them to the meta's ``pad_shape`` otherwise).
        """
        channels = self.out_channels
        if channels < 2 or not hasattr(self.decode_head, 'assign'):
            return False
        test_cfg = self.test_cfg or {}
        budget = test_cfg.get('max_dense_scores_bytes', MAX_DENSE_SCORES_BYTES)
        if dense_scores_bytes(inputs, channels) <= budget:
            return False
        if test_cfg.get('mode', 'whole') == 'slide' or data_samples is None:
            # Without samples mmseg's metas are the input size.
            return True
        return all(
            self.decode_head.target_size(sample.metainfo) == tuple(
                inputs.shape[2:]) for sample in data_samples)

    def window_tables(self, inputs: Tensor) -> List[Window]:
        """The compact scores of every window, in mmseg's window order.

        Returns:
            list[tuple]: ``(box, pixel_group [B, h, w], table [B, G, C])``
            per window, ``box`` being ``(y1, y2, x1, x2)``.
        """
        test_cfg = self.test_cfg or {}
        batch_size, _, height, width = inputs.shape
        if test_cfg.get('mode', 'whole') == 'slide':
            boxes = window_boxes(height, width, tuple(test_cfg['crop_size']),
                                 tuple(test_cfg['stride']))
            per_pass = window_batch(test_cfg)
        else:
            boxes, per_pass = [(0, height, 0, width)], 1
        class_embeds = self.text_encoder()
        bg_thresh = test_cfg.get('bg_thresh', None)
        windows = []
        for chunk, crops in window_batches(inputs, boxes, per_pass):
            feats = self.extract_feat(crops)
            pixel_group, table = self.decode_head.assign(
                [crops, feats, class_embeds], bg_thresh=bg_thresh)
            windows += zip(chunk, pixel_group.split(batch_size),
                           table.split(batch_size))
        return windows

    def predict_large_vocabulary(
            self,
            inputs: Tensor,
            data_samples: Optional[Sequence] = None) -> list:
        """``predict`` with memory independent of the number of classes;
        the labels are bit-identical to mmseg's path.

        Args:
            inputs (Tensor): ``[B, 3, H, W]``.
            data_samples (Sequence[SegDataSample], optional): As in mmseg's
                ``predict``; without them the labels are at the input size.

        Returns:
            list[SegDataSample]: With ``pred_sem_seg`` ``[1, H, W]`` and the
            metainfo ``score_channels`` (the number of classes scored); no
            ``seg_logits``.
        """
        windows = self.window_tables(inputs)
        channels = windows[0][2].shape[-1]
        count = window_counts(inputs, [box for box, _, _ in windows])
        samples = data_samples
        if samples is None:
            samples = [SegDataSample() for _ in range(inputs.shape[0])]
        for index, sample in enumerate(samples):
            meta = None if data_samples is None else sample.metainfo
            size = inputs.shape[2:] if meta is None else meta['ori_shape'][:2]
            largest = (max(size[0],
                           inputs.shape[2]), max(size[1], inputs.shape[3]))
            steps = _score_steps(windows, index, count,
                                 meta, self.align_corners,
                                 channels_per_step(largest))
            labels = running_argmax(steps, size, inputs.device)
            sample.set_metainfo(dict(score_channels=channels))
            sample.set_data(dict(pred_sem_seg=PixelData(data=labels)))
        warn_once(
            'compact scores',
            f'Scores of {channels} classes at {inputs.shape[2]}x'
            f'{inputs.shape[3]} would take '
            f'{dense_scores_bytes(inputs, channels) / 2**20:.0f} MiB per '
            f'batch (more than test_cfg.max_dense_scores_bytes): the labels '
            f'are computed a few classes at a time from each window\'s '
            f'groups, and the results hold no seg_logits. Raise '
            f'test_cfg.max_dense_scores_bytes to keep them.')
        return list(samples)
