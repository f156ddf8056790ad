# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmpretrain's top-k ``Accuracy`` for single-label classification."""
from typing import Dict, List, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from groupvit_common.checks import check_topk


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent: a sample counts for ``k`` when its label
    is among its ``k`` highest ``pred_score`` entries. Keys
    ``accuracy/top1``, ``accuracy/top5``, ... as in mmpretrain."""
    default_prefix = 'accuracy'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, ),
                 collect_device: str = 'cpu',
                 prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = check_topk(topk, 'test_evaluator.topk')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                dict(
                    pred_score=sample['pred_score'].detach().cpu(),
                    gt_label=int(sample['gt_label'].reshape(-1)[0])))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        scores = torch.stack([r['pred_score'] for r in results])
        labels = torch.tensor([r['gt_label'] for r in results])
        num_classes = scores.shape[1]
        too_large = [k for k in self.topk if k > num_classes]
        if too_large:
            raise ValueError(
                f'Accuracy: top-{max(too_large)} needs more than the '
                f'{num_classes} classes of the vocabulary; set '
                f'test_evaluator.topk to values up to {num_classes}.')
        ranked = scores.topk(max(self.topk), dim=1).indices
        hits = ranked == labels[:, None]
        return {
            f'top{k}': float(hits[:, :k].any(dim=1).float().mean() * 100)
            for k in self.topk
        }
