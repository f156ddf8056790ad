# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""One evaluation at a time in a work dir.

Two runs in one work dir would interleave their progress records and
overwrite each other's ``results.json``. The main process of a run holds an
exclusive ``fcntl`` lock on ``WORK_DIR/.lock`` until it exits (the
operating system releases it even when the process is killed); a second
run is refused.
"""
import fcntl
import os
import os.path as osp

from groupvit_common.errors import ProgressError
from groupvit_common.files import open_work_file

__all__ = ['lock_work_dir']

LOCK_FILE = '.lock'
# Locks held by this process, by path: a process may run several
# evaluations in one work dir one after the other (tests, notebooks).
_HELD = {}


def lock_work_dir(work_dir: str) -> None:
    """Take the work dir's lock for the rest of this process, or raise.

    Args:
        work_dir (str): The work dir (it exists).

    Raises:
        ProgressError: Another process holds the lock, naming its id.
        DataFileError: The lock file is a symbolic link.
    """
    path = osp.abspath(osp.join(work_dir, LOCK_FILE))
    if path in _HELD:
        return
    lock = open_work_file(work_dir, LOCK_FILE, 'a+')
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
