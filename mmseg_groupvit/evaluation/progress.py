# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Per-image evaluation progress in ``WORK_DIR/progress``: ``meta.json`` (what
is evaluated, a run id) and fsynced ``rank{R}.jsonl`` lines ``MAC {"img_path",
"counts" [4, K], "pixels", "files"}``, HMAC-signed with :func:`key_path`."""
import functools
import glob
import hashlib
import hmac
import json
import os
import os.path as osp
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Sized

import numpy as np
from mmengine.dataset import DefaultSampler
from mmengine.logging import print_log
from mmseg.registry import DATA_SAMPLERS

from groupvit_common.errors import DataFileError, ProgressError
from groupvit_common.files import (file_sha256, open_work_file, read_bytes,
                                   read_json)

META_FILE = 'meta.json'
#: The file of the secret key (instead of the cache's ``progress.key``).
KEY_ENV = 'MMSEG_GROUPVIT_PROGRESS_KEY'
_KEY_BYTES = 32
#: Most bytes of one ``rank{R}.jsonl`` (5000 images x 171 classes: 30 MB).
MAX_RECORD_BYTES = 1 << 30
#: The last :func:`read_records` of this process and the files' state.
_LAST_READ: dict = {}


def _refuse(progress_dir: str, problem: str) -> ProgressError:
    return ProgressError(
        f'Cannot resume from {progress_dir}: {problem}. Run without --resume '
        f'to evaluate every image again, or use a fresh --work-dir.')


def key_path() -> str:
    """``$MMSEG_GROUPVIT_PROGRESS_KEY``, else
    ``$XDG_CACHE_HOME/mmseg_groupvit/progress.key``."""
    cache = os.environ.get('XDG_CACHE_HOME') or osp.expanduser('~/.cache')
    default = osp.join(cache, 'mmseg_groupvit', 'progress.key')
    return os.environ.get(KEY_ENV) or default


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
    """``meta.json`` if signed by this user, None if missing."""
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
    """SHA-256 of a data file, None when it cannot be read."""
    try:
        return file_sha256(path)
    except (OSError, ValueError, TypeError):
        return None


class ProgressWriter:
    """Append signed per-image counts to ``progress_dir/rank{rank}.jsonl``."""

    def __init__(self, progress_dir: str, rank: int = 0):
        meta = _read_meta(progress_dir)
        if meta is None:
            raise ProgressError(
                f'{progress_dir} has no {META_FILE}: prepare it with '
                f'prepare_progress (tools/test.py does).')
        self._nonce = meta['nonce']
        work_dir, folder = osp.split(osp.normpath(progress_dir))
        name = f'{folder}/rank{rank}.jsonl'
        if osp.isfile(osp.join(work_dir, name)):
            with open_work_file(work_dir, name, 'r+b') as f:
                data = f.read()  # cut a killed process's partial line
                f.truncate(data.rfind(b'\n') + 1)
        self._file = open_work_file(work_dir, name, 'a')

    def write(self,
              img_path: str,
              counts: np.ndarray,
              pixels: int,
              files: Sequence[str] = ()) -> None:
        """Record one image durably: ``counts`` ``[4, K]``, ``pixels`` of
        its label map, and the SHA-256 of ``files``."""
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
        self._file.close()


def read_progress(progress_dir: Optional[str]) -> Dict[str, np.ndarray]:
    """``img_path`` -> ``[4, K]`` int64 counts of every recorded image."""
    return {path: rec[0] for path, rec in read_records(progress_dir).items()}


def _check_counts(counts: np.ndarray, pixels) -> bool:
    """Whether ``[4, K]`` counts can be one image's of ``pixels`` pixels."""
    if counts.ndim != 2 or counts.shape[0] != 4 or counts.dtype.kind != 'i':
        return False
    intersect, union, pred, label = counts
    return bool(
        isinstance(pixels, int) and (counts >= 0).all()
        and (intersect <= np.minimum(pred, label)).all()
        and (union == pred + label - intersect).all() and pred.sum() <= pixels
        and label.sum() <= pixels)


def read_records(progress_dir: Optional[str]) -> Dict[str, tuple]:
    """``img_path`` -> (``[4, K]`` int64 counts, ``{path: sha256}``).

    Raises:
        ProgressError: A record is not this run's or cannot be an image's;
            ``meta.json`` is missing, damaged or not this user's.
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
    # The check, the sampler and the metric ask: read unchanged files once.
    state = tuple((path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
                  for path in paths)
    if _LAST_READ.get('state') == (progress_dir, meta['nonce'], state):
        return dict(_LAST_READ['records'])
    for path in paths:
        text = read_bytes(path, MAX_RECORD_BYTES,
                          'progress file').decode('utf-8', 'replace')
        # After the last newline: nothing, or a killed process's record.
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


def _digest(obj, length: int = 16) -> str:
    return hashlib.sha256(_canonical(obj).encode('utf-8')).hexdigest()[:length]


def describe_run(cfg, checkpoint: str) -> dict:
    """Digests of what a test run evaluates (configs, checkpoint file or
    the files of a transformers folder, files the model names), its
    ``output_dir`` and ``checkpoint_path``."""
    evaluator = dict(cfg.test_evaluator)
    output_dir = evaluator.get('output_dir')
    for key in ('type', 'output_dir', 'progress_dir', 'keep_results',
                'collect_device', 'collect_dir', 'format_only'):
        evaluator.pop(key, None)
    weights = f'random (seed {cfg.get("randomness", {}).get("seed")})'
    if checkpoint and osp.isdir(checkpoint):
        paths = (osp.join(checkpoint, n) for n in os.listdir(checkpoint))
        weights = _digest(
            {osp.basename(p): file_sha256(p)
             for p in paths if osp.isfile(p)}, 64)
    elif checkpoint:
        weights = file_sha256(checkpoint)
    return dict(
        model=_digest(cfg.model),
        dataset=_digest(cfg.test_dataloader.dataset),
        evaluator=_digest(evaluator),
        checkpoint=weights,
        files=named_file_digests(cfg.model),
        output_dir=osp.abspath(output_dir) if output_dir else None,
        checkpoint_path=osp.abspath(checkpoint) if checkpoint else weights)


def named_file_digests(obj) -> Dict[str, str]:
    """SHA-256 of every local file the strings of a nested config name."""
    if isinstance(obj, str):
        return {osp.abspath(obj): file_sha256(obj)} if osp.isfile(obj) else {}
    if isinstance(obj, dict):
        obj = list(obj.values())
    digests = {}
    for item in obj if isinstance(obj, (list, tuple)) else ():
        digests.update(named_file_digests(item))
    return dict(sorted(digests.items()))


_PARTS = dict(
    model='model config',
    dataset='test dataset config (data, split or pipeline)',
    evaluator='evaluator config',
    checkpoint='checkpoint file')


def _first_five(names: list) -> str:
    more = f' and {len(names) - 5} more' if len(names) > 5 else ''
    return ', '.join(names[:5]) + more


def prepare_progress(progress_dir: str, run: dict, resume: bool) -> int:
    """Start a new run in a progress folder or, with ``resume``, keep the
    records of the same ``run`` (:func:`describe_run`).

    Returns:
        int: Images already evaluated (0 without ``resume``).

    Raises:
        ProgressError: ``resume`` with records of other inputs or users.
        DataFileError: A symbolic link in the folder.
    """
    work_dir, folder = osp.split(osp.normpath(progress_dir))
    open_work_file(work_dir, f'{folder}/{META_FILE}', 'a').close()
    old = _read_meta(progress_dir) if resume and osp.getsize(
        osp.join(progress_dir, META_FILE)) else None
    if old is not None:
        changed = [
            text for key, text in _PARTS.items() if old.get(key) != run[key]
        ]
        old_files, new_files = old.get('files', {}), run['files']
        changed += [
            f'content of {path}' for path in sorted({*old_files, *new_files})
            if old_files.get(path) != new_files.get(path)
        ]
        if changed:
            raise ProgressError(
                f'Cannot resume from {progress_dir}: it was recorded with a '
                f'different {", ".join(changed)} (recorded checkpoint: '
                f'{old.get("checkpoint_path")}). Give another --work-dir, '
                f'or run without --resume to start over (this deletes the '
                f'records).')
        records = read_records(progress_dir)
        out, new_out = old.get('output_dir'), run['output_dir']
        if records and new_out is not None:
            if new_out != out:
                where = f'in {out}' if out else \
                    'not written (the run had no --out)'
                raise ProgressError(
                    f'Cannot resume from {progress_dir} with --out '
                    f'{new_out}: the label maps of the {len(records)} images '
                    f'already evaluated are {where}, so {new_out} would miss '
                    f'them. Resume with ' +
                    (f'--out {out}' if out else 'no --out') +
                    ', or run without --resume to evaluate every image again.')
            # As mmseg's IoUMetric names them; a resumed run writes only
            # those of the images it evaluates.
            written = set(os.listdir(out)) if osp.isdir(out) else set()
            missing = sorted({
                osp.splitext(osp.basename(path))[0] + '.png'
                for path in records
            } - written)
            if missing:
                raise ProgressError(
                    f'Cannot resume from {progress_dir} with --out {out}: '
                    f'the label maps of {len(missing)} of the {len(records)} '
                    f'images already evaluated are missing there '
                    f'({_first_five(missing)}), and a resumed run does not '
                    f'write them again. Run without --resume to evaluate '
                    f'every image again.')
        changed = sorted({
            p
            for _, files in records.values()
            for p, d in files.items() if _data_digest(p) != d
        })
        if changed:
            raise _refuse(
                progress_dir, f'{len(changed)} image or label file(s) changed '
                f'since they were counted: {_first_five(changed)}')
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


@DATA_SAMPLERS.register_module()
class SkipDoneSampler(DefaultSampler):
    """``DefaultSampler`` (no shuffling) over the images not recorded in
    ``progress_dir``; ``seed`` is unused, for the registry's defaults."""

    def __init__(self,
                 dataset: Sized,
                 progress_dir: str = None,
                 seed: int = None,
                 round_up: bool = True) -> None:
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
        super().__init__(
            self.todo, shuffle=False, seed=seed, round_up=round_up)

    def __iter__(self) -> Iterator[int]:
        if not self.todo:  # DefaultSampler would divide by zero
            return iter([])
        return (self.todo[i] for i in super().__iter__())
