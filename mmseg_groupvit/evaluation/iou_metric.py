# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmseg's ``IoUMetric`` with per-class results, checked label maps, exact
counts and per-image progress on disk."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import barrier, get_rank
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from groupvit_common.errors import LabelMapError, ProgressError
from ..datasets.transforms import exif_orientation
from .progress import ProgressWriter, read_progress

# Pixels per counting step (bounds the memory for very large images).
_COUNT_STEP = 1 << 22


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` that also keeps its per-class results.

    Attributes:
        class_results (dict | None): ``classes`` (K names) and, per metric,
            K percentages (None for a class absent from both sides).
    """

    class_results: Optional[Dict[str, List]] = None

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only or not results:
            return metrics
        totals = [sum(parts) for parts in zip(*results)]
        per_class = self.total_area_to_metrics(*totals, self.metrics,
                                               self.nan_to_num, self.beta)
        per_class.pop('aAcc', None)
        self.class_results = dict(classes=list(self.dataset_meta['classes']))
        for name, values in per_class.items():
            values = np.asarray(values, dtype=np.float64) * 100
            self.class_results[name] = [
                None if np.isnan(v) else float(v) for v in values
            ]
        return metrics


def _exif_hint(img_path: str, label_shape, image_shape) -> str:
    if tuple(label_shape) != tuple(image_shape)[::-1]:
        return ''
    try:
        with open(img_path, 'rb') as f:
            orientation = exif_orientation(f.read())
    except OSError:
        return ''
    if orientation < 5:
        return ''
    return (f' The image has EXIF orientation {orientation}, so it was '
            f'turned by 90 degrees when loaded while the label map matches '
            f'the stored pixels: load images with '
            f'color_type="color_ignore_orientation".')


def check_label_map(sample: dict, num_classes: int, ignore_index: int) -> None:
    """Raise LabelMapError if the label map of ``sample`` (``gt_sem_seg``,
    ``ori_shape``, ``img_path``, ``seg_map_path``) does not fit its image or
    holds values that are neither a class nor ``ignore_index``."""
    label = sample['gt_sem_seg']['data']
    label = label.reshape(label.shape[-2:])
    seg_map = sample.get('seg_map_path', '<label map>')
    img_path = sample.get('img_path', '<image>')
    image_shape = tuple(sample['ori_shape'][:2])
    if tuple(label.shape) != image_shape:
        raise LabelMapError(
            f'Label map {seg_map} is {label.shape[0]}x{label.shape[1]} '
            f'(height x width) but its image {img_path} is '
            f'{image_shape[0]}x{image_shape[1]}.'
            f'{_exif_hint(img_path, label.shape, image_shape)} Check that '
            f'the two files belong together (data_prefix, seg_map_suffix), '
            f'or regenerate the label map at the image\'s size.')
    bad = (label < 0) | (label >= num_classes)
    if ignore_index is not None:
        bad &= label != ignore_index
    if bool(bad.any()):
        values, counts = torch.unique(label[bad], return_counts=True)
        listed = ', '.join(f'{int(v)} ({int(c)} px)'
                           for v, c in zip(values[:8], counts[:8]))
        raise LabelMapError(
            f'Label map {seg_map} holds value(s) {listed}'
            f'{" ..." * (len(values) > 8)} outside the dataset\'s '
            f'{num_classes} classes (0..{num_classes - 1}) and the ignore '
            f'index {ignore_index}; mmseg would leave them out of every IoU '
            f'without a word. Check the dataset type and its classes, '
            f'reduce_zero_label, and that the file holds class indices (not '
            f'a colour image).')


@METRICS.register_module()
class CheckedIoUMetric(PerClassIoUMetric):
    """:class:`PerClassIoUMetric` that checks every label map, counts
    exact integer histograms (an image counted twice counts once) and, with
    ``progress_dir``, records each image's counts and adds those recorded
    earlier (:mod:`.progress`); other arguments are ``IoUMetric``'s."""

    def __init__(self, progress_dir: Optional[str] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.progress_dir = progress_dir
        self._previous = read_progress(progress_dir)
        # Every process reads the earlier records before any writes.
        barrier()
        self._writer = None
        self._size = None

    @staticmethod
    def intersect_and_union(pred_label: torch.Tensor, label: torch.Tensor,
                            num_classes: int, ignore_index: int):
        """Integer pixel histograms of one ``[H, W]`` prediction and label.

        Returns:
            tuple[Tensor]: ``area_intersect``, ``area_union``,
            ``area_pred_label``, ``area_label``, each ``[num_classes]``
            float64 (integer valued).
        """
        pred_label = pred_label.reshape(-1)
        label = label.reshape(-1)
        totals = torch.zeros(3, num_classes, dtype=torch.int64)
        for start in range(0, label.numel(), _COUNT_STEP):
            pred = pred_label[start:start + _COUNT_STEP].long()
            gt = label[start:start + _COUNT_STEP].long()
            keep = gt != ignore_index
            pred, gt = pred[keep], gt[keep]
            for row, values in enumerate((pred[pred == gt], pred, gt)):
                values = values[(values >= 0) & (values < num_classes)]
                totals[row] += torch.bincount(values, minlength=num_classes)
        intersect, area_pred, area_label = totals.double()
        return (intersect, area_pred + area_label - intersect, area_pred,
                area_label)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if self.format_only:
            return super().process(data_batch, data_samples)
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            check_label_map(sample, num_classes, self.ignore_index)
        start = len(self.results)
        super().process(data_batch, data_samples)
        for index, sample in enumerate(data_samples, start):
            counts = torch.stack(self.results[index]).long().numpy()
            self.results[index] = (sample['img_path'], counts)
            if self.progress_dir is None:
                continue
            if self._writer is None:
                self._writer = ProgressWriter(self.progress_dir, get_rank())
            files = [sample['img_path'], sample.get('seg_map_path')]
            self._writer.write(sample['img_path'], counts,
                               sample['gt_sem_seg']['data'].numel(),
                               [f for f in files if f])

    def evaluate(self, size: int) -> dict:
        self._size = size
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return super().evaluate(size)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if self.format_only:
            return super().compute_metrics(results)
        merged = dict(self._previous)
        merged.update(results)
        num_classes = len(self.dataset_meta['classes'])
        shapes = {counts.shape for counts in merged.values()}
        if shapes - {(4, num_classes)}:
            raise ProgressError(
                f'Recorded counts in {self.progress_dir} have shapes '
                f'{sorted(shapes)}, expected (4, {num_classes}). Delete the '
                f'folder to start over.')
        if self._size is not None and len(merged) != self._size:
            where = (f' (with {len(self._previous)} recorded in '
                     f'{self.progress_dir})' if self._previous else '')
            raise ProgressError(
                f'Counted {len(merged)} distinct images{where} but the '
                f'dataset has {self._size}: some image paths repeat in the '
                f'split, or the records belong to another dataset. Start '
                f'over in a new work dir.')
        # Exact integer totals, handed to the parent as one float32 "image"
        # for mmseg's dtype (its float32 sums are exact only up to 2**24).
        totals = np.sum([merged[key] for key in sorted(merged)], axis=0)
        return super().compute_metrics(
            [tuple(torch.from_numpy(row).float() for row in totals)])
