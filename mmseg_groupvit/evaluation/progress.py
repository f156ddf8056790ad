# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Per-image evaluation progress on disk, so that an interrupted evaluation
can resume where it stopped.

Layout of a progress folder (``WORK_DIR/progress`` for ``tools/test.py``)::

    progress/
    ├── meta.json      # what was evaluated: hashes of the model config, the
    │                  # test dataset config, the evaluator config and the
    │                  # checkpoint file (SHA-256)
    └── rank0.jsonl    # one line per image, written (and fsynced) as soon
                       # as the image is counted:
                       # {"img_path": ..., "counts": [[intersect], [union],
                       #                               [pred], [label]]}

Every process writes its own ``rank{R}.jsonl``, so several processes never
append to one file. A process killed while writing leaves at most one
incomplete last line, which is ignored (that image is evaluated again).
The counts are the integer pixel histograms of mmseg's ``IoUMetric``, all
that the final metrics need, so a resumed evaluation sums exactly the same
numbers as an uninterrupted one.
"""
import glob
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
from mmengine.logging import print_log

from .errors import ProgressError

__all__ = [
    'ProgressWriter', 'read_progress', 'describe_run', 'prepare_progress',
    'enable_progress'
]

META_FILE = 'meta.json'


class ProgressWriter:
    """Append per-image counts to ``progress_dir/rank{rank}.jsonl``.

    Args:
        progress_dir (str): The progress folder.
        rank (int): This process's rank.
    """

    def __init__(self, progress_dir: str, rank: int = 0):
        os.makedirs(progress_dir, exist_ok=True)
        self.path = osp.join(progress_dir, f'rank{rank}.jsonl')
        self._file = None

    def write(self, img_path: str, counts: np.ndarray) -> None:
        """Record one image, durably (flushed and fsynced).

        Args:
            img_path (str): The image path (the record's key).
            counts (ndarray): ``[4, K]`` integer histograms.
        """
        if self._file is None:
            _drop_partial_line(self.path)
            self._file = open(self.path, 'a', encoding='utf-8')
        line = json.dumps(
            dict(img_path=img_path, counts=np.asarray(counts).tolist()))
        # One write per line, so a kill leaves at most a partial last line.
        self._file.write(line + '\n')
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _drop_partial_line(path: str) -> None:
    """Cut an unfinished last line (left by a killed process) so that the
    next record starts on a line of its own."""
    if not osp.isfile(path):
        return
    with open(path, 'rb+') as f:
        data = f.read()
        if data and not data.endswith(b'\n'):
            f.truncate(data.rfind(b'\n') + 1)


def read_progress(progress_dir: Optional[str]) -> Dict[str, np.ndarray]:
    """Read every recorded image of a progress folder.

    Args:
        progress_dir (str, optional): The folder; None or a missing folder
            gives an empty dict.

    Returns:
        dict[str, ndarray]: ``img_path`` -> ``[4, K]`` int64 counts.

    Raises:
        ProgressError: A line other than the last one of a file is damaged.
    """
    records: Dict[str, np.ndarray] = {}
    if not progress_dir or not osp.isdir(progress_dir):
        return records
    for path in sorted(glob.glob(osp.join(progress_dir, 'rank*.jsonl'))):
        with open(path, encoding='utf-8') as f:
            lines = f.read().split('\n')
        # The text after the last newline is empty, or an unfinished record
        # of a killed process: skip it.
        for number, line in enumerate(lines[:-1], start=1):
            try:
                record = json.loads(line)
                counts = np.asarray(record['counts'], dtype=np.int64)
                img_path = record['img_path']
            except (ValueError, KeyError, TypeError) as e:
                raise ProgressError(
                    f'{path}, line {number} is damaged ({e}). Delete the '
                    f'line (that image is then evaluated again) or the '
                    f'folder {progress_dir} to start over.') from None
            if counts.ndim != 2 or counts.shape[0] != 4:
                raise ProgressError(
                    f'{path}, line {number}: counts of shape '
                    f'{counts.shape}, expected [4, num_classes]. Delete '
                    f'{progress_dir} to start over.')
            records[img_path] = counts
    return records


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def _file_digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            sha.update(block)
    return sha.hexdigest()


def _to_plain(cfg):
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg


def describe_run(cfg, checkpoint: str) -> dict:
    """What a test run evaluates, as hashes of the parts that change its
    results.

    Args:
        cfg (Config): The test config (``model``, ``test_dataloader``,
            ``test_evaluator``).
        checkpoint (str): The checkpoint file.

    Returns:
        dict: ``model``, ``dataset``, ``evaluator`` (config hashes) and
        ``checkpoint`` (the file's SHA-256), plus ``checkpoint_path`` for
        messages.
    """
    evaluator = dict(_to_plain(cfg.test_evaluator))
    for key in ('type', 'output_dir', 'progress_dir', 'keep_results',
                'collect_device', 'collect_dir', 'format_only'):
        evaluator.pop(key, None)
    return dict(
        model=_digest(_to_plain(cfg.model)),
        dataset=_digest(_to_plain(cfg.test_dataloader.dataset)),
        evaluator=_digest(evaluator),
        checkpoint=_file_digest(checkpoint),
        checkpoint_path=osp.abspath(checkpoint))


_PARTS = dict(
    model='model config',
    dataset='test dataset config (data, split or pipeline)',
    evaluator='evaluator config',
    checkpoint='checkpoint file')


def prepare_progress(progress_dir: str, run: dict, resume: bool) -> int:
    """Get a progress folder ready for a run (main process only).

    Without ``resume`` earlier records are deleted. With ``resume`` they
    are kept if they were recorded for the same run, which is checked.

    Args:
        progress_dir (str): The folder.
        run (dict): :func:`describe_run` of this run.
        resume (bool): Keep the images already evaluated.

    Returns:
        int: Images already evaluated (0 without ``resume``).

    Raises:
        ProgressError: ``resume`` and the records were made by a different
            model, checkpoint, dataset or evaluator.
    """
    os.makedirs(progress_dir, exist_ok=True)
    meta_path = osp.join(progress_dir, META_FILE)
    if resume and osp.isfile(meta_path):
        with open(meta_path, encoding='utf-8') as f:
            old = json.load(f)
        changed = [
            text for key, text in _PARTS.items() if old.get(key) != run[key]
        ]
        if changed:
            raise ProgressError(
                f'Cannot resume from {progress_dir}: it was recorded with a '
                f'different {", ".join(changed)} (recorded checkpoint: '
                f'{old.get("checkpoint_path")}). Give another --work-dir, '
                f'or run without --resume to start over (this deletes the '
                f'records).')
        return len(read_progress(progress_dir))
    if resume:
        print_log(
            f'Nothing to resume in {progress_dir}: evaluating every image.',
            logger='current')
    for path in glob.glob(osp.join(progress_dir, 'rank*.jsonl')):
        os.remove(path)
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(run, f, indent=2)
    return 0


def enable_progress(cfg,
                    checkpoint: str,
                    resume: bool = False,
                    rank: int = 0) -> Optional[str]:
    """Record per-image progress of a test run in ``WORK_DIR/progress`` and,
    with ``resume``, skip the images recorded by an earlier run.

    Swaps the evaluator (mmseg's ``IoUMetric`` or
    :class:`PerClassIoUMetric`) for :class:`CheckedIoUMetric` (same
    arguments and metrics, plus label checks and the records) and the test
    sampler for :class:`SkipDoneSampler`.

    Args:
        cfg (Config): The test config; ``work_dir`` must be set. Modified in
            place.
        checkpoint (str): The checkpoint file.
        resume (bool): Keep and skip the images already evaluated.
        rank (int): This process's rank; only rank 0 prepares the folder.

    Returns:
        str | None: The progress folder, or None when the evaluator is not
        an IoU metric (nothing is recorded then).

    Raises:
        ProgressError: ``resume`` with records of another run, or with an
            evaluator that cannot record progress.
    """
    evaluator = cfg.get('test_evaluator', None)
    if not isinstance(evaluator, dict) or evaluator.get('type') not in (
            'IoUMetric', 'PerClassIoUMetric', 'CheckedIoUMetric'):
        if resume:
            raise ProgressError(
                f'--resume needs test_evaluator to be one IoUMetric, '
                f'PerClassIoUMetric or CheckedIoUMetric, got {evaluator!r}.')
        return None
    progress_dir = osp.join(cfg.work_dir, 'progress')
    evaluator['type'] = 'CheckedIoUMetric'
    evaluator['progress_dir'] = progress_dir
    round_up = cfg.test_dataloader.get('sampler', {}).get('round_up', True)
    cfg.test_dataloader.sampler = dict(
        type='SkipDoneSampler', progress_dir=progress_dir, round_up=round_up)
    if rank == 0:
        prepare_progress(progress_dir, describe_run(cfg, checkpoint), resume)
    return progress_dir
