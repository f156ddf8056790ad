# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What ``tools/test.py`` does to a test config before running it: check
the data paths, load with checks, lock the work dir, record (and resume)
progress. Every config value swapped is returned as a ``KEY: OLD -> NEW``
line.

The shipped configs name the checked steps and metric already, except the
loading steps mmseg's inference APIs look for by name
(``LoadImageFromFile``, ``LoadAnnotations``), swapped here.
"""
import fcntl
import os
import os.path as osp
from typing import List, NamedTuple, Optional

from groupvit_common.errors import ProgressError
from groupvit_common.files import open_work_file
from ..datasets.checked_transforms import use_checked_steps
from .preflight import check_dataset_paths, check_test_dataloader
from .progress import enable_progress

# The work-dir locks this process holds, by path (a process may run several
# evaluations in one work dir one after the other).
_HELD = {}


class TestRun(NamedTuple):
    """The progress folder (None if not recorded) and the swap lines."""
    progress: Optional[str]
    swaps: List[str]


def lock_work_dir(work_dir: str) -> None:
    """Hold an exclusive ``fcntl`` lock on ``WORK_DIR/.lock`` for the rest
    of this process (two runs would mix their records and results).

    Raises:
        ProgressError: Another process holds it, naming its id.
        DataFileError: The lock file is a symbolic link.
    """
    path = osp.abspath(osp.join(work_dir, '.lock'))
    if path in _HELD:
        return
    lock = open_work_file(work_dir, '.lock', 'a+')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(lock.fileno(), 32, 0).decode('ascii',
                                                       'replace').strip()
        lock.close()
        raise ProgressError(
            f'Another evaluation (process {holder or "unknown"}) is running '
            f'in the work dir {work_dir}: two runs would mix their records. '
            f'Wait for it to end, or give this run another --work-dir.'
        ) from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    _HELD[path] = lock


def use_checked_loading(cfg) -> List[str]:
    """Load the test dataloader's images with ``RobustLoadImageFromFile``,
    resize with ``CheckedResize`` and load label maps with
    ``CheckedLoadAnnotations`` (same arguments and pixels; bad files named
    with the fix). ``cfg.test_pipeline`` keeps mmseg's names.

    Returns:
        list[str]: One ``KEY.INDEX: OLD -> NEW`` line per step swapped.
    """
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    return use_checked_steps(
        dataset.get('pipeline', None),
        annotations=True,
        where='test_dataloader.dataset.pipeline')


def prepare_test_run(cfg,
                     checkpoint: str,
                     resume: bool = False,
                     rank: int = 0) -> TestRun:
    """Check the test data and dataloader, switch to checked loading, lock
    the work dir (rank 0) and record progress (:func:`enable_progress`;
    ``resume`` skips what an earlier run of the same inputs evaluated).
    ``cfg`` (``work_dir`` set) is modified in place.

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
    return TestRun(
        enable_progress(cfg, checkpoint, resume, rank, swaps), swaps)
