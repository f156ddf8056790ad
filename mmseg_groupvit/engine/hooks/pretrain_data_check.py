# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Refuse a pretraining run whose batch is larger than its data."""
import math

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from torch.utils.data import IterableDataset

from groupvit_common.errors import TrainingDataError


@HOOKS.register_module()
class PretrainDataCheckHook(Hook):
    """Before training, stop with one error when a process's batch is
    larger than its share of the data: with ``drop_last`` the epoch would
    have no step (and without it, a batch of one image would have no
    negatives and no BatchNorm statistics)."""

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        dataset = loader.dataset
        world = get_dist_info()[1]
        total = len(dataset)
        # An iterable dataset reports its share per process already.
        share = total if isinstance(dataset, IterableDataset) else \
            math.ceil(total / world)
        if share < loader.batch_size:
            source = getattr(dataset, 'ann_file', None) or 'the shards'
            raise TrainingDataError(
                f'the training batch ({loader.batch_size} per process x '
                f'{world} process(es)) is larger than the data ({share} '
                f'samples per process from {source}): lower '
                f'train_dataloader.batch_size or add data.')
