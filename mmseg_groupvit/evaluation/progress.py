# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Per-image evaluation progress on disk, so that an interrupted evaluation
can resume where it stopped.

Layout of a progress folder (``WORK_DIR/progress`` for ``tools/test.py``)::

    progress/
    ├── meta.json      # what was evaluated: hashes of the model config, the
    │                  # test dataset config, the evaluator config, the
    │                  # checkpoint file and every file the model config
    │                  # names, e.g. a vocabulary (SHA-256); the --out folder
    └── rank0.jsonl    # one line per image, written (and fsynced) as soon
                       # as the image is counted:
                       # {"img_path": ..., "counts": [[intersect], [union],
                       #                               [pred], [label]],
                       #  "files": {path: [size, mtime_ns]}}  (image, label)

Every process writes its own ``rank{R}.jsonl``, so several processes never
append to one file. A process killed while writing leaves at most one
incomplete last line, which is ignored (that image is evaluated again).
The counts are the integer pixel histograms of mmseg's ``IoUMetric``, all
that the final metrics need, so a resumed evaluation sums exactly the same
numbers as an uninterrupted one.

``--resume`` refuses records whose inputs changed since: another
checkpoint, config or vocabulary file (hashes in ``meta.json``), an image or
label map of another size or modification time (per record), or another
``--out`` folder (the label maps of the images already evaluated are in the
first one).
"""
import glob
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from groupvit_common.errors import ProgressError

__all__ = [
    'ProgressWriter', 'read_progress', 'read_records', 'file_stamp',
    'describe_run', 'prepare_progress', 'enable_progress'
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

    def write(self,
              img_path: str,
              counts: np.ndarray,
              files: Sequence[str] = ()) -> None:
        """Record one image, durably (flushed and fsynced).

        Args:
            img_path (str): The image path (the record's key).
            counts (ndarray): ``[4, K]`` integer histograms.
            files (Sequence[str]): The files the counts depend on (the
                image and its label map); their size and modification time
                are recorded, so that a resume can tell that they changed.
        """
        if self._file is None:
            _drop_partial_line(self.path)
            self._file = open(self.path, 'a', encoding='utf-8')
        record = dict(img_path=img_path, counts=np.asarray(counts).tolist())
        if files:
            record['files'] = {path: file_stamp(path) for path in files}
        line = json.dumps(record)
        # One write per line, so a kill leaves at most a partial last line.
        self._file.write(line + '\n')
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def file_stamp(path: str) -> Optional[List[int]]:
    """``[size, mtime_ns]`` of a local file, None when it cannot be read
    (a remote path, or a missing file)."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    return [stat.st_size, stat.st_mtime_ns]


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
    return {
        path: counts
        for path, (counts, _) in read_records(progress_dir).items()
    }


def read_records(progress_dir: Optional[str]) -> Dict[str, tuple]:
    """Every record of a progress folder, with the stamps of its files.

    Returns:
        dict[str, tuple]: ``img_path`` -> (``[4, K]`` int64 counts,
        ``{path: [size, mtime_ns]}``, empty for older records).

    Raises:
        ProgressError: A line other than the last one of a file is damaged.
    """
    records: Dict[str, tuple] = {}
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
                files = dict(record.get('files') or {})
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
            records[img_path] = (counts, files)
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
        checkpoint (str): The checkpoint file; None for random weights
            (``cfg.randomness.seed`` names them).

    Returns:
        dict: ``model``, ``dataset``, ``evaluator`` (config hashes),
        ``checkpoint`` (the file's SHA-256), ``files`` (the SHA-256 of every
        file the model config names, such as a vocabulary file) and
        ``output_dir`` (the absolute ``--out`` folder or None), plus
        ``checkpoint_path`` for messages.
    """
    evaluator = dict(_to_plain(cfg.test_evaluator))
    output_dir = evaluator.get('output_dir')
    for key in ('type', 'output_dir', 'progress_dir', 'keep_results',
                'collect_device', 'collect_dir', 'format_only'):
        evaluator.pop(key, None)
    model = _to_plain(cfg.model)
    random = f'random (seed {cfg.get("randomness", {}).get("seed")})'
    return dict(
        model=_digest(model),
        dataset=_digest(_to_plain(cfg.test_dataloader.dataset)),
        evaluator=_digest(evaluator),
        checkpoint=_file_digest(checkpoint) if checkpoint else random,
        files={
            path: _file_digest(path)
            for path in sorted(_named_files(model))
        },
        output_dir=osp.abspath(output_dir) if output_dir else None,
        checkpoint_path=osp.abspath(checkpoint) if checkpoint else random)


def _named_files(obj) -> set:
    """The local files named by the strings of a (nested) config."""
    if isinstance(obj, str):
        return {osp.abspath(obj)} if osp.isfile(obj) else set()
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return set().union(*(_named_files(item) for item in obj))
    return set()


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
        # Records of older versions have no 'files' or 'output_dir'.
        old_files = old.get('files', run['files'])
        changed += [
            f'content of {path}'
            for path in sorted(set(old_files)
                               | set(run['files']))
            if old_files.get(path) != run['files'].get(path)
        ]
        if changed:
            raise ProgressError(
                f'Cannot resume from {progress_dir}: it was recorded with a '
                f'different {", ".join(changed)} (recorded checkpoint: '
                f'{old.get("checkpoint_path")}). Give another --work-dir, '
                f'or run without --resume to start over (this deletes the '
                f'records).')
        records = read_records(progress_dir)
        if 'output_dir' in old:
            _check_output_dir(progress_dir, old['output_dir'],
                              run['output_dir'], len(records))
        _check_record_files(progress_dir, records)
        return len(records)
    if resume:
        print_log(
            f'Nothing to resume in {progress_dir}: evaluating every image.',
            logger='current')
    for path in glob.glob(osp.join(progress_dir, 'rank*.jsonl')):
        os.remove(path)
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(run, f, indent=2)
    return 0


def _check_output_dir(progress_dir: str, old: Optional[str],
                      new: Optional[str], done: int) -> None:
    """Refuse to resume into another ``--out`` folder: the label maps of the
    images already evaluated are in the first one (or were not written),
    and the new folder would be incomplete."""
    if new is None or new == old or not done:
        return
    where = (f'in {old}' if old else 'not written (the run had no --out)')
    raise ProgressError(
        f'Cannot resume from {progress_dir} with --out {new}: the label maps '
        f'of the {done} images already evaluated are {where}, so {new} would '
        f'miss them. Resume with ' + (f'--out {old}' if old else 'no --out') +
        ', or run without --resume to evaluate every image again.')


def _check_record_files(progress_dir: str, records: Dict[str, tuple]) -> None:
    """Refuse records whose image or label map changed (size or
    modification time) since it was counted."""
    changed = [
        path for _, files in records.values() for path, stamp in files.items()
        if file_stamp(path) != stamp
    ]
    if changed:
        shown = ', '.join(sorted(changed)[:5])
        more = f' and {len(changed) - 5} more' if len(changed) > 5 else ''
        raise ProgressError(
            f'Cannot resume from {progress_dir}: {len(changed)} image or '
            f'label file(s) changed since they were counted: {shown}{more}. '
            f'Run without --resume to evaluate every image again.')


def enable_progress(cfg,
                    checkpoint: str,
                    resume: bool = False,
                    rank: int = 0,
                    swaps: Optional[List[str]] = None) -> Optional[str]:
    """Record per-image progress of a test run in ``WORK_DIR/progress`` and,
    with ``resume``, skip the images recorded by an earlier run.

    The evaluator becomes :class:`CheckedIoUMetric` (the shipped configs
    name it already; mmseg's ``IoUMetric`` and :class:`PerClassIoUMetric`
    take the same arguments and give the same metrics) with the progress
    folder, and the test sampler :class:`SkipDoneSampler`.

    Args:
        cfg (Config): The test config; ``work_dir`` must be set. Modified in
            place.
        checkpoint (str): The checkpoint file.
        resume (bool): Keep and skip the images already evaluated.
        rank (int): This process's rank; only rank 0 prepares the folder.
        swaps (list[str], optional): Gets one ``KEY: OLD -> NEW`` line per
            config value changed.

    Returns:
        str | None: The progress folder, or None when the evaluator is not
        an IoU metric (nothing is recorded then).

    Raises:
        ProgressError: ``resume`` with records of another run, or with an
            evaluator that cannot record progress.
    """
    swaps = [] if swaps is None else swaps
    evaluator = cfg.get('test_evaluator', None)
    if not isinstance(evaluator, dict) or evaluator.get('type') not in (
            'IoUMetric', 'PerClassIoUMetric', 'CheckedIoUMetric'):
        if resume:
            raise ProgressError(
                f'--resume needs test_evaluator to be one IoUMetric, '
                f'PerClassIoUMetric or CheckedIoUMetric, got {evaluator!r}.')
        return None
    progress_dir = osp.join(cfg.work_dir, 'progress')
    if evaluator['type'] != 'CheckedIoUMetric':
        swaps.append(f'test_evaluator.type: {evaluator["type"]} -> '
                     f'CheckedIoUMetric')
        evaluator['type'] = 'CheckedIoUMetric'
    swaps.append(f'test_evaluator.progress_dir: '
                 f'{evaluator.get("progress_dir")} -> {progress_dir}')
    evaluator['progress_dir'] = progress_dir
    sampler = cfg.test_dataloader.get('sampler', {})
    round_up = sampler.get('round_up', True)
    cfg.test_dataloader.sampler = dict(
        type='SkipDoneSampler', progress_dir=progress_dir, round_up=round_up)
    swaps.append(f'test_dataloader.sampler: {sampler.get("type")} -> '
                 f'SkipDoneSampler (skips the images recorded in '
                 f'{progress_dir})')
    if rank == 0:
        prepare_progress(progress_dir, describe_run(cfg, checkpoint), resume)
    return progress_dir
