# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The class names GroupViT puts into its prompt templates.

One list per dataset name (:func:`get_prompt_classes`): the class names of
mmseg 1.2.2's dataset ``METAINFO``, in label-id order, with the documented
renames of :data:`PROMPT_RENAMES` applied index for index, so prompt ``i``
always describes label ``i``. The dataset configs keep mmseg's own names,
because ``BaseSegDataset.get_label_map`` rejects class names that are not
in ``METAINFO``.

The lists are derived from mmseg's ``METAINFO`` at import time rather than
copied. The renames are the ones GroupViT's evaluation configs make
(``NVlabs/GroupViT:segmentation/configs/_base_/datasets/*.py``, read for
reference only; that code is under the NVIDIA Source Code License), checked
against mmseg 1.2.2's class names:

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
channel from a threshold instead.
"""
from typing import Dict, List, Sequence, Tuple

from mmseg.datasets import (ADE20KDataset, CityscapesDataset, COCOStuffDataset,
                            PascalContextDataset, PascalVOCDataset)

__all__ = ['PROMPT_RENAMES', 'COCO_OBJECT_CLASSES', 'get_prompt_classes']

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


_COCO_STUFF_CLASSES = _metainfo_classes(COCOStuffDataset)  # 171
#: mmseg-style class names of the COCO-Object dataset (label order): the
#: 80 COCO thing classes after 'background'.
COCO_OBJECT_CLASSES = (BACKGROUND, ) + _COCO_STUFF_CLASSES[:NUM_COCO_THINGS]

_VOC_PROMPTS = _apply_renames(
    _metainfo_classes(PascalVOCDataset), PROMPT_RENAMES['voc'])
_CONTEXT_PROMPTS = _apply_renames(
    _metainfo_classes(PascalContextDataset), PROMPT_RENAMES['context'])

_PROMPT_CLASSES: Dict[str, List[str]] = {
    'voc': _VOC_PROMPTS,  # 21
    'voc20': _VOC_PROMPTS[1:],  # 20
    'context': _CONTEXT_PROMPTS,  # 60
    'context59': _CONTEXT_PROMPTS[1:],  # 59
    'coco_object': list(COCO_OBJECT_CLASSES),  # 81
    'coco_stuff': list(_COCO_STUFF_CLASSES),  # 171
    'ade20k': [name.strip() for name in ADE20KDataset.METAINFO['classes']],
    'cityscapes': list(CityscapesDataset.METAINFO['classes']),  # 19
}


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
    if not isinstance(name, str):
        raise TypeError(f'The prompt class set name must be a str, got '
                        f'{type(name).__name__}: {name!r}.')
    if name not in _PROMPT_CLASSES:
        raise ValueError(f'Unknown prompt class set {name!r}. Valid names: '
                         f'{", ".join(sorted(_PROMPT_CLASSES))}.')
    return list(_PROMPT_CLASSES[name])
