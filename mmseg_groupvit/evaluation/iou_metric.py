# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmseg's ``IoUMetric`` that also keeps its per-class results."""
from typing import Dict, List, Optional

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

__all__ = ['PerClassIoUMetric']


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` whose per-class results stay readable after evaluation.

    mmseg's ``IoUMetric`` logs the per-class table and returns only the
    summary (``aAcc``, ``mIoU``, ``mAcc``). This subclass computes exactly
    the same values (it calls the parent) and also stores the per-class
    ones in :attr:`class_results`, unrounded, so ``tools/test.py`` can save
    them in ``results.json``. Only the process that computes the metrics
    (rank 0) fills it.

    Args:
        **kwargs: Passed to :class:`mmseg.evaluation.IoUMetric`.

    Attributes:
        class_results (dict | None): After evaluation: ``classes`` (the
            dataset's K names) and, for every computed metric (``IoU``,
            ``Acc``, ...), K percentages; None where the class is absent
            from both prediction and ground truth (the summary's
            ``nanmean`` skips those).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_results: Optional[Dict[str, List]] = None

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the parent's summary and keep the per-class values.

        Args:
            results (list): Per image, ``(intersect, union, pred_area,
                label_area)``, each ``[K]``.

        Returns:
            dict[str, float]: The parent's summary metrics, unchanged.
        """
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
