# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Class names for evaluation (dataset order) and for GroupViT prompts.

Two kinds of list live here, one pair per dataset name:

* **Dataset classes** (:func:`get_dataset_classes`): the canonical names of
  mmseg 1.2.2's dataset ``METAINFO``, in label-id order. Evaluation and the
  dataset configs use these; they are never renamed, because
  ``BaseSegDataset.get_label_map`` rejects class names that are not in
  ``METAINFO`` (spec §11).
* **Prompt classes** (:func:`get_prompt_classes`): the words put into the
  prompt templates. They are the dataset classes with the documented
  renames of :data:`PROMPT_RENAMES` applied, index for index, so prompt
  ``i`` always describes label ``i``.

The lists are derived from mmseg's ``METAINFO`` at import time rather than
copied. The renames are the ones GroupViT's evaluation configs make
(``NVlabs/GroupViT:segmentation/configs/_base_/datasets/*.py``, read for
reference only; that code is under the NVIDIA Source Code License), checked
against mmseg 1.2.2 in ``docs/groupvit-spec.md`` §6:

=============  ====  ==========================================================
name           size  prompt classes
=============  ====  ==========================================================
voc            21    VOC with 'background' first; diningtable -> table,
                     pottedplant -> plant, tvmonitor -> monitor
voc20          20    ``voc`` without 'background'
context        60    PASCAL Context with 'background' first; aeroplane ->
                     airplane, pottedplant -> plant, tvmonitor -> monitor
context59      59    ``context`` without 'background'
coco_object    81    'background' + the 80 COCO thing classes (the first 80
                     names of ``COCOStuffDataset``), unchanged
coco_stuff     171   ``COCOStuffDataset`` names, unchanged
ade20k         150   ``ADE20KDataset`` names, surrounding whitespace stripped
                     (mmseg 1.2.2 spells one class ``'bed '``)
cityscapes     19    ``CityscapesDataset`` names, unchanged
=============  ====  ==========================================================

GroupViT has no 'background' prompt: a text encoder drops a leading
'background' entry before prompting, and the head writes the background
channel from a threshold instead (spec §6).
"""
from typing import Dict, List, Mapping, Sequence, Tuple

from mmseg.datasets import (ADE20KDataset, CityscapesDataset, COCOStuffDataset,
                            PascalContextDataset, PascalContextDataset59,
                            PascalVOCDataset)

__all__ = [
    'BACKGROUND', 'PROMPT_RENAMES', 'VOC_CLASSES', 'VOC20_CLASSES',
    'CONTEXT_CLASSES', 'CONTEXT59_CLASSES', 'COCO_OBJECT_CLASSES',
    'COCO_STUFF_CLASSES', 'ADE20K_CLASSES', 'CITYSCAPES_CLASSES',
    'VOC_PROMPT_CLASSES', 'VOC20_PROMPT_CLASSES', 'CONTEXT_PROMPT_CLASSES',
    'CONTEXT59_PROMPT_CLASSES', 'COCO_OBJECT_PROMPT_CLASSES',
    'COCO_STUFF_PROMPT_CLASSES', 'ADE20K_PROMPT_CLASSES',
    'CITYSCAPES_PROMPT_CLASSES', 'get_dataset_classes', 'get_prompt_classes'
]

BACKGROUND = 'background'

#: Number of COCO thing classes; they come first in ``COCOStuffDataset``.
NUM_COCO_THINGS = 80

#: Prompt renames per dataset family: ``{dataset class: prompt word}``.
PROMPT_RENAMES: Dict[str, Dict[str, str]] = {
    'voc': {
        'diningtable': 'table',
        'pottedplant': 'plant',
        'tvmonitor': 'monitor',
    },
    'context': {
        'aeroplane': 'airplane',
        'pottedplant': 'plant',
        'tvmonitor': 'monitor',
    },
}


def _metainfo_classes(dataset_type: type) -> Tuple[str, ...]:
    """``METAINFO['classes']`` of an mmseg dataset class, as a tuple."""
    return tuple(dataset_type.METAINFO['classes'])


def _apply_renames(names: Sequence[str], renames: Dict[str, str]) -> List[str]:
    """Rename classes in place of position.

    Args:
        names (Sequence[str]): Dataset class names, in label order.
        renames (dict[str, str]): ``{old name: new name}``.

    Returns:
        list[str]: A new list, same length and order as ``names``.

    Raises:
        RuntimeError: If a name to rename is not in ``names``, which means
            the installed mmseg spells its classes differently from 1.2.2.
    """
    missing = sorted(set(renames) - set(names))
    if missing:
        raise RuntimeError(
            f'Cannot apply the GroupViT prompt renames: {missing} are not '
            f'dataset classes of the installed mmseg. The rename table was '
            f'written for mmsegmentation 1.2.2; install that version or '
            f'update PROMPT_RENAMES.')
    return [renames.get(name, name) for name in names]


# --- dataset classes: mmseg METAINFO, label order, never renamed ----------
VOC_CLASSES = _metainfo_classes(PascalVOCDataset)  # 21
VOC20_CLASSES = VOC_CLASSES[1:]  # 20
CONTEXT_CLASSES = _metainfo_classes(PascalContextDataset)  # 60
CONTEXT59_CLASSES = _metainfo_classes(PascalContextDataset59)  # 59
COCO_STUFF_CLASSES = _metainfo_classes(COCOStuffDataset)  # 171
COCO_OBJECT_CLASSES = (BACKGROUND, ) + COCO_STUFF_CLASSES[:NUM_COCO_THINGS]
ADE20K_CLASSES = _metainfo_classes(ADE20KDataset)  # 150
CITYSCAPES_CLASSES = _metainfo_classes(CityscapesDataset)  # 19

# --- prompt classes: the words that go into the templates -----------------
VOC_PROMPT_CLASSES = _apply_renames(VOC_CLASSES, PROMPT_RENAMES['voc'])
VOC20_PROMPT_CLASSES = VOC_PROMPT_CLASSES[1:]
CONTEXT_PROMPT_CLASSES = _apply_renames(CONTEXT_CLASSES,
                                        PROMPT_RENAMES['context'])
CONTEXT59_PROMPT_CLASSES = CONTEXT_PROMPT_CLASSES[1:]
COCO_OBJECT_PROMPT_CLASSES = list(COCO_OBJECT_CLASSES)
COCO_STUFF_PROMPT_CLASSES = list(COCO_STUFF_CLASSES)
ADE20K_PROMPT_CLASSES = [name.strip() for name in ADE20K_CLASSES]
CITYSCAPES_PROMPT_CLASSES = list(CITYSCAPES_CLASSES)

_DATASET_CLASSES: Dict[str, Tuple[str, ...]] = {
    'voc': VOC_CLASSES,
    'voc20': VOC20_CLASSES,
    'context': CONTEXT_CLASSES,
    'context59': CONTEXT59_CLASSES,
    'coco_object': COCO_OBJECT_CLASSES,
    'coco_stuff': COCO_STUFF_CLASSES,
    'ade20k': ADE20K_CLASSES,
    'cityscapes': CITYSCAPES_CLASSES,
}

_PROMPT_CLASSES: Dict[str, List[str]] = {
    'voc': VOC_PROMPT_CLASSES,
    'voc20': VOC20_PROMPT_CLASSES,
    'context': CONTEXT_PROMPT_CLASSES,
    'context59': CONTEXT59_PROMPT_CLASSES,
    'coco_object': COCO_OBJECT_PROMPT_CLASSES,
    'coco_stuff': COCO_STUFF_PROMPT_CLASSES,
    'ade20k': ADE20K_PROMPT_CLASSES,
    'cityscapes': CITYSCAPES_PROMPT_CLASSES,
}


def _lookup(table: Mapping[str, Sequence[str]], name: str,
            kind: str) -> List[str]:
    """Return a fresh list from ``table[name]`` or raise a clear error."""
    if not isinstance(name, str):
        raise TypeError(f'The {kind} set name must be a str, got '
                        f'{type(name).__name__}: {name!r}.')
    if name not in table:
        raise ValueError(f'Unknown {kind} set {name!r}. Valid names: '
                         f'{", ".join(sorted(table))}.')
    return list(table[name])


def get_prompt_classes(name: str) -> List[str]:
    """Class names GroupViT puts into its prompt templates.

    Args:
        name (str): One of ``'voc'``, ``'voc20'``, ``'context'``,
            ``'context59'``, ``'coco_object'``, ``'coco_stuff'``,
            ``'ade20k'``, ``'cityscapes'``.

    Returns:
        list[str]: A new list of K names in label order (K = 21, 20, 60, 59,
        81, 171, 150, 19). ``voc``, ``context`` and ``coco_object`` start
        with ``'background'``, which is not meant to be prompted.

    Raises:
        ValueError: If ``name`` is unknown; the message lists valid names.

    Example:
        >>> get_prompt_classes('voc')[11]
        'table'
    """
    return _lookup(_PROMPT_CLASSES, name, 'prompt class')


def get_dataset_classes(name: str) -> List[str]:
    """Canonical mmseg class names of a dataset, for evaluation.

    Same names as :func:`get_prompt_classes` accepts. The result equals the
    mmseg ``METAINFO['classes']`` of the matching dataset (``voc20``: VOC
    without 'background'; ``coco_object``: 'background' + the first 80
    ``COCOStuffDataset`` classes).

    Args:
        name (str): A dataset name, e.g. ``'voc'``.

    Returns:
        list[str]: A new list of the K class names in label order.

    Raises:
        ValueError: If ``name`` is unknown; the message lists valid names.
    """
    return _lookup(_DATASET_CLASSES, name, 'dataset class')
