# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What ``tools/test.py`` does to a test config before anything is built:
check data and output folders, swap in the checked loading steps, lock the
work dir and record (and resume) progress."""
import fcntl
import os
import os.path as osp
from typing import List, Optional, Tuple

from groupvit_common.errors import ConfigCheckError, ProgressError
from groupvit_common.files import open_work_file
from ..datasets.transforms import use_checked_steps
from .progress import describe_run, prepare_progress


def check_dataset_paths(dataset: dict, out: Optional[str] = None) -> None:
    """Raise ConfigCheckError unless ``data_root``, the ``data_prefix``
    folders and the ``ann_file`` of the test dataset config exist, and the
    label maps' folder ``out`` (``--out``) lies in neither folder."""
    key = 'test_dataloader.dataset'
    data_root = dataset.get('data_root') or ''
    if not isinstance(data_root, str):
        raise ConfigCheckError(
            f'{key}.data_root must be one folder (a string), got '
            f'{data_root!r}. Give the dataset\'s folder: --cfg-options '
            f'{key}.data_root=/path/to/dataset')
    if '://' in data_root:
        return
    if data_root and not osp.isdir(data_root):
        is_file = osp.exists(data_root)
        what = 'is a file, not a folder' if is_file else 'does not exist'
        folder = 'dataset' if is_file else osp.basename(
            osp.normpath(data_root))
        raise ConfigCheckError(
            f'{key}.data_root {data_root!r} {what} (looked in '
            f'{osp.abspath(data_root)}). Put the dataset folder there, or '
            f'point the config at it: --cfg-options {key}.data_root=/path/to/'
            f'{folder}')
    prefix = dataset.get('data_prefix') or {}
    for name, what in (('img_path', 'image'), ('seg_map_path', 'label map')):
        if name not in prefix:
            continue
        folder = osp.join(data_root, prefix[name] or '')
        if not osp.isdir(folder):
            raise ConfigCheckError(
                f'The {what} folder {folder} does not exist ({key}.data_root '
                f'{data_root!r} + {key}.data_prefix.{name} '
                f'{prefix[name]!r}). Check both settings against the '
                f'dataset\'s layout.')
        real = osp.realpath(folder)
        if out and osp.commonpath([real, osp.realpath(out)]) == real:
            raise ConfigCheckError(
                f'--out {out} lies in the dataset\'s {what} folder {folder}: '
                f'the label maps written there would replace or join its '
                f'files. Give a folder outside the dataset.')
    ann_file = dataset.get('ann_file') or ''
    if ann_file and '://' not in ann_file:
        path = osp.join(data_root, ann_file)  # ann_file if absolute
        if not osp.isfile(path):
            raise ConfigCheckError(
                f'The split file {path} ({key}.ann_file) does not exist. '
                f'Check the dataset\'s layout, or set {key}.ann_file=\'\' to '
                f'use every image of the image folder.')


_HELD = {}  # the work-dir locks of this process, by path


def lock_work_dir(work_dir: str) -> None:
    """Hold an exclusive lock on ``WORK_DIR/.lock`` for this process.

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
    """:func:`use_checked_steps` on the test dataloader's pipeline, in
    place; returns a ``KEY.INDEX: OLD -> NEW`` line per step swapped."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    return use_checked_steps(
        dataset.get('pipeline', None),
        annotations=True,
        where='test_dataloader.dataset.pipeline')


def prepare_test_run(cfg,
                     checkpoint: str,
                     resume: bool = False,
                     rank: int = 0) -> Tuple[Optional[str], List[str]]:
    """Switch to checked loading, lock the work dir (rank 0) and, for an IoU
    evaluator, record progress in ``WORK_DIR/progress``
    (:class:`CheckedIoUMetric`, :class:`SkipDoneSampler`), in place.

    Returns:
        tuple: The progress folder (None if not recorded) and the ``KEY:
        OLD -> NEW`` lines of the config values swapped.

    Raises:
        ProgressError: Records that cannot be resumed, ``resume`` with an
            evaluator that records none, or another run in the work dir.
    """
    swaps = use_checked_loading(cfg)
    if rank == 0:
        os.makedirs(cfg.work_dir, exist_ok=True)
        lock_work_dir(cfg.work_dir)
    evaluator = cfg.test_evaluator
    if not isinstance(evaluator, dict) or evaluator.get('type') not in (
            'IoUMetric', 'PerClassIoUMetric', 'CheckedIoUMetric'):
        if resume:
            raise ProgressError(
                f'--resume needs test_evaluator to be one IoUMetric, '
                f'PerClassIoUMetric or CheckedIoUMetric, got {evaluator!r}.')
        return None, swaps
    progress_dir = osp.join(cfg.work_dir, 'progress')
    if evaluator['type'] != 'CheckedIoUMetric':
        swaps.append(f'test_evaluator.type: {evaluator["type"]} -> '
                     f'CheckedIoUMetric')
        evaluator['type'] = 'CheckedIoUMetric'
    swaps.append(f'test_evaluator.progress_dir: '
                 f'{evaluator.get("progress_dir")} -> {progress_dir}')
    evaluator['progress_dir'] = progress_dir
    sampler = cfg.test_dataloader.get('sampler', {})
    cfg.test_dataloader.sampler = dict(
        type='SkipDoneSampler',
        progress_dir=progress_dir,
        round_up=sampler.get('round_up', True))
    swaps.append(f'test_dataloader.sampler: {sampler.get("type")} -> '
                 f'SkipDoneSampler (skips the images recorded in '
                 f'{progress_dir})')
    if rank == 0:
        prepare_progress(progress_dir, describe_run(cfg, checkpoint), resume)
    return progress_dir, swaps
