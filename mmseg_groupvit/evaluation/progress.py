# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Per-image evaluation progress on disk, so that an interrupted evaluation
can resume where it stopped.

Layout of a progress folder (``WORK_DIR/progress`` for ``tools/test.py``)::

    progress/
    ├── meta.json      # what was evaluated: hashes of the model config, the
    │                  # test dataset config, the evaluator config, the
    │                  # checkpoint file and every file the model config
    │                  # names, e.g. a vocabulary (SHA-256); the --out
    │                  # folder; a random run id; a keyed digest of it all
    └── rank0.jsonl    # one line per image, written (and fsynced) as soon
                       # as the image is counted: the keyed digest of the
                       # record, a space, the record
                       # {"img_path": ..., "counts": [[intersect], [union],
                       #                               [pred], [label]],
                       #  "pixels": ..., "files": {path: sha256}}

Every process writes its own ``rank{R}.jsonl``, so several processes never
append to one file. A process killed while writing leaves at most one
incomplete last line, which is ignored (that image is evaluated again).
The counts are the integer pixel histograms of mmseg's ``IoUMetric``, all
that the final metrics need, so a resumed evaluation sums exactly the same
numbers as an uninterrupted one.

The work dir may be shared, so what is read back is trusted only when it is
tied to this user and this run: ``meta.json`` and every record carry an
HMAC-SHA256 with a secret key of the user, kept outside the work dir
(:func:`key_path`), and a record's digest covers the run id of
``meta.json``, so records cannot be edited, planted or copied from another
run. The counts of each record are checked too (non-negative integers, at
most the label map's pixels).

``--resume`` refuses records whose inputs changed since: another
checkpoint, config or vocabulary file (hashes in ``meta.json``), an image or
label map of other content (SHA-256 per record, hashed once per run), or
another ``--out`` folder (the label maps of the images already evaluated
are in the first one).
"""
import functools
import glob
import hashlib
import hmac
import json
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from groupvit_common.errors import DataFileError, ProgressError
from groupvit_common.files import (file_sha256, open_work_file, read_bytes,
                                   read_json)

__all__ = [
    'ProgressWriter', 'read_progress', 'read_records', 'describe_run',
    'prepare_progress', 'enable_progress', 'key_path', 'named_file_digests'
]

META_FILE = 'meta.json'
#: The file of the secret key (instead of the cache's ``progress.key``).
KEY_ENV = 'MMSEG_GROUPVIT_PROGRESS_KEY'
_KEY_BYTES = 32
#: Most bytes of one ``rank{R}.jsonl``: a 5000-image, 171-class run writes
#: about 30 MB; more is refused before it is read.
MAX_RECORD_BYTES = 1 << 30
#: The last :func:`read_records` of this process and the files' state.
_LAST_READ: dict = {}


def _refuse(progress_dir: str, problem: str) -> ProgressError:
    return ProgressError(
        f'Cannot resume from {progress_dir}: {problem}. Run without --resume '
        f'to evaluate every image again, or use a fresh --work-dir.')


def key_path() -> str:
    """The file of this user's secret key for progress records:
    ``$MMSEG_GROUPVIT_PROGRESS_KEY``, else ``mmseg_groupvit/progress.key``
    in ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    cache = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(cache, 'mmseg_groupvit', 'progress.key')


@functools.lru_cache(maxsize=None)
def _secret_key(path: str) -> bytes:
    """The key of ``path``, created (random, mode 0600) when missing."""
    if not osp.lexists(path):
        folder = osp.dirname(path) or '.'
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder)  # mode 0600
        try:
            os.write(fd, os.urandom(_KEY_BYTES))
            os.close(fd)
            os.link(tmp, path)  # atomic; another process may have won
        except FileExistsError:
            pass
        finally:
            os.remove(tmp)
    key = read_bytes(path, _KEY_BYTES, 'progress key file')
    if len(key) != _KEY_BYTES or os.stat(path).st_mode & 0o077:
        raise ProgressError(
            f'The progress key file {path} is not {_KEY_BYTES} bytes that '
            f'only you can read. Delete it (a new one is made; records '
            f'signed with the old one cannot be resumed).')
    return key


def _mac(nonce: str, text: str) -> str:
    message = f'{nonce}\n{text}'.encode('utf-8')
    return hmac.new(_secret_key(key_path()), message,
                    hashlib.sha256).hexdigest()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=repr)


def _read_meta(progress_dir: str) -> Optional[dict]:
    """``meta.json`` if its digest is this user's, None if there is none.

    Raises:
        ProgressError: Damaged, or not written by this user's runs.
    """
    path = osp.join(progress_dir, META_FILE)
    if not osp.lexists(path):
        return None
    try:
        meta = read_json(path, limit=1 << 20, what='progress file')
    except DataFileError as e:
        raise _refuse(progress_dir, str(e).rstrip('.')) from None
    body = dict(meta) if isinstance(meta, dict) else {}
    mac = body.pop('mac', None)
    if not (isinstance(mac, str) and isinstance(body.get('nonce'), str)
            and hmac.compare_digest(mac, _mac('meta', _canonical(body)))):
        raise _refuse(
            progress_dir, f'{path} was not written by a run of yours (its '
            f'keyed digest does not match; it was changed, or comes from an '
            f'older version or another user)')
    return body


def _data_digest(path: str) -> Optional[str]:
    """SHA-256 of an image or label map, None when it cannot be read (a
    remote path, or a missing file)."""
    try:
        return file_sha256(path)
    except (OSError, ValueError, TypeError):
        return None


class ProgressWriter:
    """Append per-image counts to ``progress_dir/rank{rank}.jsonl``, signed
    for the run that :func:`prepare_progress` started there.

    Args:
        progress_dir (str): The progress folder (prepared).
        rank (int): This process's rank.
    """

    def __init__(self, progress_dir: str, rank: int = 0):
        self.progress_dir = progress_dir
        self.name = f'rank{rank}.jsonl'
        meta = _read_meta(progress_dir)
        if meta is None:
            raise ProgressError(
                f'{progress_dir} has no {META_FILE}: prepare it with '
                f'prepare_progress (tools/test.py does).')
        self._nonce = meta['nonce']
        self._file = None

    def write(self,
              img_path: str,
              counts: np.ndarray,
              pixels: int,
              files: Sequence[str] = ()) -> None:
        """Record one image, durably (flushed and fsynced).

        Args:
            img_path (str): The image path (the record's key).
            counts (ndarray): ``[4, K]`` integer histograms.
            pixels (int): Pixels of the label map (bound of the counts).
            files (Sequence[str]): The files the counts depend on (the
                image and its label map); their SHA-256 is recorded, so
                that a resume can tell that they changed.
        """
        if self._file is None:
            work_dir, folder = osp.split(osp.normpath(self.progress_dir))
            _drop_partial_line(work_dir, f'{folder}/{self.name}')
            self._file = open_work_file(work_dir, f'{folder}/{self.name}', 'a')
        record = _canonical(
            dict(
                img_path=img_path,
                counts=np.asarray(counts).tolist(),
                pixels=int(pixels),
                files={path: _data_digest(path)
                       for path in files}))
        # One write per line, so a kill leaves at most a partial last line.
        self._file.write(f'{_mac(self._nonce, record)} {record}\n')
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _drop_partial_line(work_dir: str, name: str) -> None:
    """Cut an unfinished last line (left by a killed process) so that the
    next record starts on a line of its own."""
    if not osp.isfile(osp.join(work_dir, name)):
        return
    with open_work_file(work_dir, name, 'r+b') as f:
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
        ProgressError: See :func:`read_records`.
    """
    return {
        path: counts
        for path, (counts, _) in read_records(progress_dir).items()
    }


def _check_counts(counts: np.ndarray, pixels) -> bool:
    """Whether ``[4, K]`` counts can be one image's: non-negative integers,
    intersection within prediction and label, union their sum less the
    intersection, at most ``pixels`` predicted and labelled pixels."""
    if counts.ndim != 2 or counts.shape[0] != 4 or counts.dtype.kind != 'i':
        return False
    intersect, union, pred, label = counts
    return bool(
        isinstance(pixels, int) and (counts >= 0).all()
        and (intersect <= np.minimum(pred, label)).all()
        and (union == pred + label - intersect).all() and pred.sum() <= pixels
        and label.sum() <= pixels)


def read_records(progress_dir: Optional[str]) -> Dict[str, tuple]:
    """Every record of a progress folder, with the digests of its files.

    Returns:
        dict[str, tuple]: ``img_path`` -> (``[4, K]`` int64 counts,
        ``{path: sha256}``).

    Raises:
        ProgressError: A record (other than an unfinished last line) is not
            one of this run's (its keyed digest does not match), or its
            counts cannot be an image's; ``meta.json`` is missing, damaged
            or not this user's.
    """
    records: Dict[str, tuple] = {}
    if not progress_dir or not osp.isdir(progress_dir):
        return records
    paths = sorted(glob.glob(osp.join(progress_dir, 'rank*.jsonl')))
    meta = _read_meta(progress_dir)
    if meta is None:
        if paths:
            raise _refuse(progress_dir, f'it has records but no {META_FILE}')
        return records
    # Read once per process (the run's check, the sampler and the metric
    # ask): the same files, unchanged, give the same records.
    state = tuple((path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
                  for path in paths)
    if _LAST_READ.get('state') == (progress_dir, meta['nonce'], state):
        return dict(_LAST_READ['records'])
    for path in paths:
        text = read_bytes(path, MAX_RECORD_BYTES,
                          'progress file').decode('utf-8', 'replace')
        # The text after the last newline is empty, or an unfinished record
        # of a killed process: skip it.
        for number, line in enumerate(text.split('\n')[:-1], start=1):
            mac, _, body = line.partition(' ')
            if not hmac.compare_digest(mac, _mac(meta['nonce'], body)):
                raise _refuse(
                    progress_dir, f'{path}, line {number} was not recorded '
                    f'by this run (its keyed digest does not match: it was '
                    f'changed, planted or copied)')
            record = json.loads(body)
            try:
                counts = np.asarray(record['counts'])
            except ValueError:  # ragged lists
                counts = np.zeros(0)
            if not _check_counts(counts, record.get('pixels')):
                raise _refuse(
                    progress_dir, f'{path}, line {number}: the counts cannot '
                    f'be those of one image of {record.get("pixels")} pixels')
            records[record['img_path']] = (counts.astype(np.int64),
                                           record['files'])
    _LAST_READ.update(
        state=(progress_dir, meta['nonce'], state), records=dict(records))
    return records


def _digest(obj) -> str:
    return hashlib.sha256(_canonical(obj).encode('utf-8')).hexdigest()[:16]


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
        checkpoint=file_sha256(checkpoint) if checkpoint else random,
        files=named_file_digests(model),
        output_dir=osp.abspath(output_dir) if output_dir else None,
        checkpoint_path=osp.abspath(checkpoint) if checkpoint else random)


def named_file_digests(model) -> Dict[str, str]:
    """The SHA-256 of every local file a model config names (a vocabulary
    file), by absolute path."""
    return {path: file_sha256(path) for path in sorted(_named_files(model))}


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

    Without ``resume`` earlier records are deleted and a new run id is
    recorded. With ``resume`` they are kept if they were recorded for the
    same run, which is checked.

    Args:
        progress_dir (str): The folder, ``WORK_DIR/progress``.
        run (dict): :func:`describe_run` of this run.
        resume (bool): Keep the images already evaluated.

    Returns:
        int: Images already evaluated (0 without ``resume``).

    Raises:
        ProgressError: ``resume`` and the records were made by a different
            model, checkpoint, dataset, evaluator or data files, or cannot
            be tied to this user's run.
        DataFileError: The folder or one of its files is a symbolic link.
    """
    work_dir, folder = osp.split(osp.normpath(progress_dir))
    # Creates the folder, and refuses a symbolic link in its place.
    open_work_file(work_dir, f'{folder}/{META_FILE}', 'a').close()
    old = _read_meta(progress_dir) if resume and osp.getsize(
        osp.join(progress_dir, META_FILE)) else None
    if old is not None:
        changed = [
            text for key, text in _PARTS.items() if old.get(key) != run[key]
        ]
        old_files = old.get('files', {})
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
        _check_output_dir(progress_dir, old.get('output_dir'),
                          run['output_dir'], len(records))
        _check_record_files(progress_dir, records)
        return len(records)
    if resume:
        print_log(
            f'Nothing to resume in {progress_dir}: evaluating every image.',
            logger='current')
    for path in glob.glob(osp.join(progress_dir, 'rank*.jsonl')):
        os.remove(path)
    meta = dict(run, nonce=os.urandom(16).hex())
    meta['mac'] = _mac('meta', _canonical(meta))
    with open_work_file(work_dir, f'{folder}/{META_FILE}', 'w') as f:
        json.dump(meta, f, indent=2)
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
    """Refuse records whose image or label map changed (content) since it
    was counted; each file is hashed once."""
    recorded = {
        path: digest
        for _, files in records.values()
        for path, digest in files.items()
    }
    changed = [
        path for path, digest in recorded.items()
        if _data_digest(path) != digest
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
