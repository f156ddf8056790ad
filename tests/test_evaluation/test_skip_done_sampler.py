# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``SkipDoneSampler`` in process: the images recorded in a progress folder
are skipped, the rest keep the dataset order and are split between
processes as mmengine's ``DefaultSampler`` splits a dataset of that size."""
import mmengine.dataset.sampler as mmengine_sampler
import numpy as np
import pytest
from mmengine.dataset import DefaultSampler

from mmseg_groupvit.evaluation import ProgressWriter, SkipDoneSampler
from tests.conftest import started_progress


class Images:
    """A dataset of ``n`` images named ``img{i}.jpg``."""

    def __init__(self, n):
        self.paths = [f'img{i}.jpg' for i in range(n)]

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, index):
        return dict(img_path=self.paths[index])


def record(progress_dir, paths, rank=0):
    if not (progress_dir / 'meta.json').exists():
        started_progress(progress_dir)
    writer = ProgressWriter(str(progress_dir), rank)
    for path in paths:
        writer.write(path, np.zeros((4, 2), np.int64), 1)
    writer.close()


def on_rank(monkeypatch, rank, world_size, make):
    """Build a sampler as process ``rank`` of ``world_size`` would."""
    monkeypatch.setattr(mmengine_sampler, 'get_dist_info', lambda:
                        (rank, world_size))
    return make()


def test_nothing_recorded_is_the_default_sampler(tmp_path, monkeypatch):
    dataset = Images(7)
    for world_size in (1, 2, 3):
        for rank in range(world_size):
            for round_up in (True, False):
                ours = on_rank(
                    monkeypatch, rank, world_size, lambda: SkipDoneSampler(
                        dataset, str(tmp_path / 'none'), round_up=round_up))
                theirs = on_rank(
                    monkeypatch, rank, world_size, lambda: DefaultSampler(
                        dataset, shuffle=False, round_up=round_up))
                assert list(ours) == list(theirs)
                assert len(ours) == len(theirs)
                assert ours.skipped == 0


def test_recorded_images_are_skipped_in_order(tmp_path):
    dataset = Images(6)
    # Two processes recorded before (one rank file each).
    record(tmp_path, ['img1.jpg', 'img4.jpg'], rank=0)
    record(tmp_path, ['img2.jpg'], rank=1)
    sampler = SkipDoneSampler(dataset, str(tmp_path))
    assert sampler.skipped == 3
    assert sampler.todo == [0, 3, 5]
    assert list(sampler) == [0, 3, 5] and len(sampler) == 3


def test_no_progress_dir_skips_nothing():
    sampler = SkipDoneSampler(Images(3), None)
    assert list(sampler) == [0, 1, 2] and sampler.skipped == 0


@pytest.mark.parametrize('world_size', [2, 3, 4])
@pytest.mark.parametrize('round_up', [True, False])
def test_processes_share_what_is_left(tmp_path, monkeypatch, world_size,
                                      round_up):
    """Every image left is given to some process, none recorded is; with
    ``round_up`` every process gets as many (repeating the first ones left),
    without it each image goes to exactly one process."""
    dataset = Images(9)
    record(tmp_path, ['img0.jpg', 'img3.jpg', 'img4.jpg', 'img8.jpg'])
    left = [1, 2, 5, 6, 7]
    shares = [
        list(
            on_rank(
                monkeypatch, rank, world_size, lambda: SkipDoneSampler(
                    dataset, str(tmp_path), round_up=round_up)))
        for rank in range(world_size)
    ]
    given = [i for share in shares for i in share]
    assert set(given) == set(left)
    if round_up:
        per_process = -(-len(left) // world_size)
        assert [len(s) for s in shares] == [per_process] * world_size
        # Padding repeats images from the start of what is left.
        assert sorted(given) == sorted(left + left[:len(given) - len(left)])
    else:
        assert sorted(given) == left
    # Interleaved as DefaultSampler interleaves indices.
    for rank, share in enumerate(shares):
        assert share == (left * 2)[rank:len(given):world_size]


def test_everything_recorded_gives_an_empty_sampler(tmp_path):
    dataset = Images(2)
    record(tmp_path, ['img0.jpg', 'img1.jpg'])
    sampler = SkipDoneSampler(dataset, str(tmp_path))
    assert list(sampler) == [] and len(sampler) == 0 and sampler.skipped == 2
