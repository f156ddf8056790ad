# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Image-classification datasets in mmpretrain's two layouts: class folders
``<data_prefix>/<class>/**/<image>``, or ``<filename> <label>`` lines."""
import os
import os.path as osp
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from groupvit_common.errors import ClassificationDataError
from groupvit_common.files import read_text

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')


@lru_cache(maxsize=None)
def _imagenet() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """The wnids and prompt names of ``imagenet_classes.tsv``, in class
    order (the original's names, ``missile`` and ``sunglasses`` twice)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'imagenet_classes.tsv')
    with open(path, encoding='utf-8') as f:
        rows = [
            line.rstrip('\n').split('\t') for line in f
            if line.strip() and not line.startswith('#')
        ]
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


def imagenet_wnids() -> List[str]:
    """The 1000 WordNet ids, sorted (= class index order)."""
    return list(_imagenet()[0])


def imagenet_classes() -> List[str]:
    """The 1000 prompt names, in class index order."""
    return list(_imagenet()[1])


def _class_folders(root: str) -> List[str]:
    return sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))


@DATASETS.register_module()
class CustomDataset(BaseDataset):
    """A classification dataset in mmpretrain's ``CustomDataset`` layouts.

    Args:
        data_prefix (str | dict): Image folder, or ``dict(img_path=...)``.
        extensions (Sequence[str]): Image suffixes (case-insensitive) of
            the folder layout.
        folder_names (Sequence[str], optional): The class folder of each
            label (e.g. ImageNet's wnids); others are refused.
        **kwargs: mmengine ``BaseDataset``'s: ``ann_file`` of ``filename
            label`` lines (empty: read the class folders), ``metainfo``
            ``classes`` in label order (default: the sorted folder names,
            which name the class folders unless ``folder_names`` is given).
    """

    def __init__(self,
                 data_prefix: Union[str, dict] = '',
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 folder_names: Optional[Sequence[str]] = None,
                 **kwargs):
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.extensions = tuple(e.lower() for e in extensions)
        self.folder_names = list(folder_names) if folder_names else None
        kwargs.setdefault('test_mode', True)
        super().__init__(data_prefix=data_prefix, **kwargs)

    @classmethod
    def config_classes(cls, cfg: dict) -> Optional[tuple]:
        """The classes of a dataset config, without loading it: the type's,
        or the sorted class folders (None when not known yet)."""
        classes = cls.METAINFO.get('classes')
        prefix = cfg.get('data_prefix', '')
        prefix = prefix.get('img_path', '') if isinstance(prefix,
                                                          dict) else prefix
        root = osp.join(cfg.get('data_root', ''), prefix)
        if classes is None and not cfg.get('ann_file') and osp.isdir(root) \
                and not cfg.get('folder_names'):
            classes = tuple(_class_folders(root)) or None
        return classes

    def load_data_list(self) -> List[dict]:
        if not self.ann_file:
            return self._scan_folders()
        path = self.ann_file
        if not osp.isfile(path):
            raise ClassificationDataError(
                f'Annotation file {path} does not exist. Point ann_file at '
                f'the "filename label" list, or set ann_file=\'\' to read '
                f'class folders.')
        classes = self._metainfo.get('classes')
        if classes is None:
            raise ClassificationDataError(
                f'{path}: an annotation file needs the class names '
                f'(metainfo=dict(classes=[...])) to check its labels.')
        num_classes = len(classes)
        samples, lines = [], {}
        # A class folder an image is in names its label (as in the folders).
        folders = {}
        for i, name in enumerate(self.folder_names or classes):
            folders.setdefault(name, i)
        text_lines = read_text(path, what='annotation file').splitlines()
        for number, line in enumerate(text_lines, 1):
            text = line.strip()
            if not text:
                continue
            parts = text.rsplit(maxsplit=1)
            where = f'{path} line {number} ({text!r})'
            if len(parts) != 2:
                raise ClassificationDataError(
                    f'{where} has no label. Each line is "filename '
                    f'label" with an integer label in [0, '
                    f'{num_classes - 1}].')
            filename, label = parts
            try:
                label = int(label)
            except ValueError:
                raise ClassificationDataError(
                    f'{where}: the label {label!r} is not an integer. '
                    f'Each line is "filename label".') from None
            if not 0 <= label < num_classes:
                raise ClassificationDataError(
                    f'{where}: label {label} is out of range for '
                    f'{num_classes} classes (0..{num_classes - 1}). '
                    f'Check that the file and the class list belong '
                    f'together.')
            folder = osp.basename(osp.dirname(osp.normpath(filename)))
            if folders.get(folder, label) != label:
                raise ClassificationDataError(
                    f'{where}: the image is in the folder of class '
                    f'{folders[folder]} ({folder}) but labelled {label}. '
                    f'Check that the labels follow the class order of '
                    f'the dataset (ImageNet: the sorted wnids).')
            img_path = osp.join(self.data_prefix['img_path'], filename)
            seen = lines.setdefault(osp.normpath(img_path), number)
            if seen != number:
                raise ClassificationDataError(
                    f'{where} repeats the image of line {seen}: it would '
                    f'be counted twice (or under two labels). List each '
                    f'image once.')
            samples.append(dict(img_path=img_path, gt_label=label))
        if not samples:
            raise ClassificationDataError(
                f'Annotation file {path} lists no images.')
        return samples

    def _scan_folders(self) -> List[dict]:
        root = self.data_prefix['img_path']
        if not osp.isdir(root):
            raise ClassificationDataError(
                f'Image folder {root} does not exist. Set data_root / '
                f'data_prefix to the folder of class folders (e.g. '
                f'imagenet/val).')
        folders = _class_folders(root)
        if not folders:
            raise ClassificationDataError(
                f'Image folder {root} has no class folders. Expected '
                f'{root}/<class>/<image>, or give an annotation file '
                f'(ann_file) of "filename label" lines.')
        # A folder's label is its name's index among the known names (the
        # folder names, else the class names), not its sorted position.
        names = self.folder_names or self._metainfo.get('classes')
        if names is None:
            names = self._metainfo['classes'] = tuple(folders)
        index = {name: i for i, name in enumerate(names)}
        unknown = [d for d in folders if d not in index]
        if unknown:
            raise ClassificationDataError(
                f'Image folder {root} has class folders that are not '
                f'among the {len(index)} known ones (ImageNet wnids, the '
                f'folder_names or the metainfo classes): {unknown[:5]}'
                f'{" ..." * (len(unknown) > 5)}. Remove or rename them, '
                f'or give the folder of each label as folder_names.')
        samples = []
        for folder in folders:
            for dirpath, dirnames, filenames in os.walk(
                    osp.join(root, folder)):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.lower().endswith(self.extensions):
                        samples.append(
                            dict(
                                img_path=osp.join(dirpath, name),
                                gt_label=index[folder]))
        if not samples:
            raise ClassificationDataError(
                f'Image folder {root} has class folders but no images '
                f'({", ".join(self.extensions)}) in them.')
        return samples


@DATASETS.register_module()
class ImageNet(CustomDataset):
    """ImageNet-1k in either layout (``val/<wnid>/*.JPEG`` or
    ``meta/val.txt``), with the 1000 names GroupViT prompts with."""

    METAINFO = dict(classes=tuple(imagenet_classes()))

    def __init__(self, **kwargs):
        kwargs.setdefault('folder_names', imagenet_wnids())
        super().__init__(**kwargs)
