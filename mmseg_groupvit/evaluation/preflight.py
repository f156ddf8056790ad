# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Check, before anything is built, that a test dataset's files are where
its config says.

mmseg's datasets assert this without a message (``assert
fileio.exists(...)``). Class counts are checked by :mod:`.consistency`.
"""
import os.path as osp

from .errors import ConfigCheckError

__all__ = ['check_dataset_paths']

_KEY = 'test_dataloader.dataset'


def _is_local(path: str) -> bool:
    return '://' not in path


def check_dataset_paths(dataset: dict, key: str = _KEY) -> None:
    """Check that ``data_root``, the image and label folders and the split
    file of a dataset config exist.

    Args:
        dataset (dict): A dataset config (``data_root``, ``data_prefix``,
            ``ann_file``).
        key (str): Where it sits in the config, for messages.

    Raises:
        ConfigCheckError: Naming the missing path, the config key and the
            fix.
    """
    data_root = dataset.get('data_root') or ''
    if not _is_local(data_root):
        return
    if data_root and not osp.isdir(data_root):
        raise ConfigCheckError(
            f'{key}.data_root {data_root!r} does not exist (looked in '
            f'{osp.abspath(data_root)}). Put the dataset there, or point the '
            f'config at it: --cfg-options {key}.data_root=/path/to/'
            f'{osp.basename(osp.normpath(data_root)) or "dataset"}')
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
