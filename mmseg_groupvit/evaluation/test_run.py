# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What ``tools/test.py`` does to a test config before running it: check the
data paths, load images with checks, and record (and resume) progress."""
import os
from typing import Optional

from ..datasets import use_checked_resize
from .preflight import check_dataset_paths, check_test_dataloader
from .progress import enable_progress
from .work_dir_lock import lock_work_dir

__all__ = ['use_checked_loading', 'prepare_test_run']


def use_checked_loading(cfg) -> None:
    """Load test images with :class:`RobustLoadImageFromFile` instead of
    mmcv's ``LoadImageFromFile`` (same arguments, same pixels; bad files are
    named with the reason and the fix), resize them with
    :class:`CheckedResize` and load label maps with
    :class:`CheckedLoadAnnotations` (images too elongated to resize are
    named; label maps with a one-pixel side keep their shape).

    Only the test dataloader's pipeline changes: ``cfg.test_pipeline``
    keeps ``LoadImageFromFile``, which ``MMSegInferencer`` looks for by name.

    Args:
        cfg (Config): Modified in place.
    """
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    pipeline = dataset.get('pipeline', None) or []
    for step in pipeline:
        if step.get('type') in ('LoadImageFromFile', 'mmcv.LoadImageFromFile'):
            step['type'] = 'RobustLoadImageFromFile'
    use_checked_resize(pipeline, annotations=True)


def prepare_test_run(cfg,
                     checkpoint: str,
                     resume: bool = False,
                     rank: int = 0) -> Optional[str]:
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
        str | None: The progress folder (None if not recorded).

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
    use_checked_loading(cfg)
    if rank == 0:
        os.makedirs(cfg.work_dir, exist_ok=True)
        lock_work_dir(cfg.work_dir)
    return enable_progress(cfg, checkpoint, resume, rank)
