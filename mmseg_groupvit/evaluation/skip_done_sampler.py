# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A test sampler that skips the images an interrupted run already
evaluated."""
import math
from typing import Iterator, Sized

from mmengine.dataset import DefaultSampler
from mmengine.logging import print_log
from mmseg.registry import DATA_SAMPLERS

from .progress import read_progress

__all__ = ['SkipDoneSampler']


@DATA_SAMPLERS.register_module()
class SkipDoneSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (no shuffling) over the images whose
    ``img_path`` is not yet recorded in ``progress_dir``.

    The remaining indices keep the dataset order and are split between
    processes as ``DefaultSampler`` splits them; with ``round_up`` the last
    ones are repeated so every process gets as many (a repeated image is
    counted once by :class:`CheckedIoUMetric`).

    Args:
        dataset (Sized): The test dataset (``get_data_info(i)['img_path']``).
        progress_dir (str, optional): See :mod:`.progress`; None skips
            nothing.
        seed (int, optional): Unused (no shuffling); kept for the registry's
            ``default_args``.
        round_up (bool): See ``DefaultSampler``. Defaults to True.
    """

    def __init__(self,
                 dataset: Sized,
                 progress_dir: str = None,
                 seed: int = None,
                 round_up: bool = True) -> None:
        super().__init__(dataset, shuffle=False, seed=seed, round_up=round_up)
        done = set(read_progress(progress_dir))
        self.todo = [
            i for i in range(len(dataset))
            if dataset.get_data_info(i)['img_path'] not in done
        ]
        self.skipped = len(dataset) - len(self.todo)
        if self.skipped:
            print_log(
                f'Resuming: {self.skipped} of {len(dataset)} images were '
                f'already evaluated (recorded in {progress_dir}); '
                f'{len(self.todo)} remain.',
                logger='current')
        if round_up:
            self.num_samples = math.ceil(len(self.todo) / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = max(
                0, math.ceil((len(self.todo) - self.rank) / self.world_size))
            self.total_size = len(self.todo)

    def __iter__(self) -> Iterator[int]:
        indices = list(self.todo)
        if self.round_up and indices:
            indices = (indices * math.ceil(self.total_size / len(indices)))
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.world_size])
