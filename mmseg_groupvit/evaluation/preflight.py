# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Before anything is built: the test dataset's files are where its config
says (mmseg asserts without a message), the test dataloader's settings can
work, and the output folders can be written."""
import os
import os.path as osp
import tempfile

from groupvit_common.checks import check_positive_int, check_positive_pair
from groupvit_common.errors import ConfigCheckError, ConfigValueError
from groupvit_common.files import refuse_links

_KEY = 'test_dataloader.dataset'


def _is_local(path: str) -> bool:
    return '://' not in path


def check_dataset_paths(dataset: dict, key: str = _KEY) -> None:
    """Raise ConfigCheckError (naming the path, the key ``key`` and the
    fix) unless ``data_root``, the ``data_prefix`` folders and the
    ``ann_file`` of a dataset config exist."""
    data_root = dataset.get('data_root') or ''
    if not isinstance(data_root, str):
        raise ConfigCheckError(
            f'{key}.data_root must be one folder (a string), got '
            f'{data_root!r}. Give the dataset\'s folder: --cfg-options '
            f'{key}.data_root=/path/to/dataset')
    if not _is_local(data_root):
        return
    if data_root and not osp.isdir(data_root):
        raise ConfigCheckError(
            f'{key}.data_root {data_root!r} does not exist (looked in '
            f'{osp.abspath(data_root)}). Put the dataset there, or point the '
            f'config at it: --cfg-options {key}.data_root=/path/to/'
            f'{osp.basename(osp.normpath(data_root))}')
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
    ann_file = dataset.get('ann_file') or ''
    if ann_file and _is_local(ann_file):
        path = ann_file if osp.isabs(ann_file) else osp.join(
            data_root, ann_file)
        if not osp.isfile(path):
            raise ConfigCheckError(
                f'The split file {path} ({key}.ann_file) does not exist. '
                f'Check the dataset\'s layout, or set {key}.ann_file=\'\' to '
                f'use every image of the image folder.')


def _check_resize(step: dict, key: str) -> None:
    scale = step.get('scale')
    what = f'{step["type"]}: the target'
    if scale is not None:
        if isinstance(scale, int) and not isinstance(scale, bool):
            check_positive_int(scale, f'{key}.scale', f'{what} size')
        else:
            check_positive_pair(scale, f'{key}.scale',
                                f'{what} width and height', '(W,H)')
    factor = step.get('scale_factor')
    if factor is not None:
        factors = factor if isinstance(factor, (list, tuple)) else [factor]
        if not all(
                isinstance(f, (int,
                               float)) and not isinstance(f, bool) and f > 0
                for f in factors):
            raise ConfigValueError(
                f'{key}.scale_factor ({step["type"]}) must be positive, got '
                f'{factor!r}.')


def check_test_dataloader(cfg) -> None:
    """Raise ConfigValueError unless the test ``batch_size`` and the sizes
    of the ``Resize`` steps can work (else a bare error or empty images)."""
    loader = cfg.get('test_dataloader', None) or {}
    check_positive_int(
        loader.get('batch_size', 1), 'test_dataloader.batch_size',
        'images per batch')
    dataset = loader.get('dataset', None) or {}
    for index, step in enumerate(dataset.get('pipeline', None) or []):
        if isinstance(step, dict) and 'Resize' in str(step.get('type', '')):
            _check_resize(step, f'{_KEY}.pipeline.{index}')


def _first_existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists."""
    path = osp.abspath(path)
    while not osp.lexists(path):
        parent = osp.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_out_dir(path: str, option: str) -> None:
    """Create (or check) the folder of ``option`` (``--out``) and check
    that a file can be written there.

    Raises:
        ConfigCheckError: The path is or lies under a file, or cannot be
            written.
        DataFileError: A symbolic link lies in the folder.
    """
    existing = _first_existing(path)
    if osp.exists(existing) and not osp.isdir(existing):
        where = ('is a file' if existing == osp.abspath(path) else
                 f'lies under the file {existing}')
        raise ConfigCheckError(
            f'{option} {path} {where}, not a folder. Give a folder path (it '
            f'is created if missing).')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigCheckError(
            f'{option} {path} cannot be written ({e.strerror or e}). Give a '
            f'folder you can write to.') from None
    refuse_links(path, option)
