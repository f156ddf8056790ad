# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What ``tools/test.py`` does to a test config before running it: check the
data paths, load images with checks, and record (and resume) progress.

The shipped dataset configs already name what runs (``CheckedResize``,
``CheckedIoUMetric``), except for two steps that keep mmseg's names because
mmseg's inference APIs look for them by name: ``MMSegInferencer`` needs
``LoadImageFromFile`` in the test dataloader's pipeline (it swaps it for its
own loader), and it and ``inference_model`` drop ``LoadAnnotations``. The
tool swaps those two, plus what only the run knows (the progress folder,
the sampler that skips what is recorded); every swap is returned as one
``KEY: OLD -> NEW`` line, which ``tools/test.py`` logs.
"""
import os
from typing import List, NamedTuple, Optional

from ..datasets.checked_transforms import use_checked_steps
from .preflight import check_dataset_paths, check_test_dataloader
from .progress import enable_progress
from .work_dir_lock import lock_work_dir

__all__ = ['use_checked_loading', 'prepare_test_run', 'TestRun']

_PIPELINE = 'test_dataloader.dataset.pipeline'


class TestRun(NamedTuple):
    """What :func:`prepare_test_run` set up.

    Attributes:
        progress (str | None): The progress folder (None if not recorded).
        swaps (list[str]): One ``KEY: OLD -> NEW`` line per config value
            the run changed.
    """
    progress: Optional[str]
    swaps: List[str]


def use_checked_loading(cfg) -> List[str]:
    """Load test images with :class:`RobustLoadImageFromFile` instead of
    mmcv's ``LoadImageFromFile`` (same arguments, same pixels; bad files are
    named with the reason and the fix), resize them with
    :class:`CheckedResize` and load label maps with
    :class:`CheckedLoadAnnotations` (images too elongated to resize are
    named; label maps with a one-pixel side keep their shape).

    Only the test dataloader's pipeline changes: ``cfg.test_pipeline``
    keeps ``LoadImageFromFile``, which ``inference_model`` reads. Steps
    that are already checked are left as they are.

    Args:
        cfg (Config): Modified in place.

    Returns:
        list[str]: One ``KEY.INDEX: OLD -> NEW`` line per step swapped.
    """
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    return use_checked_steps(
        dataset.get('pipeline', None), annotations=True, where=_PIPELINE)


def prepare_test_run(cfg,
                     checkpoint: str,
                     resume: bool = False,
                     rank: int = 0) -> TestRun:
    """Check the test data paths and dataloader settings, switch to checked
    image loading, lock the work dir (main process) and record progress
    (see :func:`.progress.enable_progress`).

    Args:
        cfg (Config): The test config, ``work_dir`` set. Modified in place.
        checkpoint (str): The checkpoint file.
        resume (bool): Skip the images an earlier run of the same config
            and checkpoint in the same work dir already evaluated.
        rank (int): This process's rank.

    Returns:
        TestRun: The progress folder and the config values swapped.

    Raises:
        ConfigCheckError: Missing data folders or split file.
        ConfigValueError: A dataloader setting that cannot work.
        ProgressError: Records that cannot be resumed, or another run in
            the same work dir.
    """
    check_test_dataloader(cfg)
    dataset = cfg.get('test_dataloader', {}).get('dataset', None)
    if isinstance(dataset, dict):
        check_dataset_paths(dataset)
    swaps = use_checked_loading(cfg)
    if rank == 0:
        os.makedirs(cfg.work_dir, exist_ok=True)
        lock_work_dir(cfg.work_dir)
    progress = enable_progress(cfg, checkpoint, resume, rank, swaps)
    return TestRun(progress, swaps)
