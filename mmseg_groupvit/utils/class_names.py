# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The class names GroupViT prompts with, per dataset name: mmseg 1.2.2's
``METAINFO`` names with GroupViT's renames (:data:`PROMPT_RENAMES`)."""
from typing import Dict, List, Sequence

from mmseg.datasets import (ADE20KDataset, CityscapesDataset, COCOStuffDataset,
                            PascalContextDataset, PascalVOCDataset)

#: Prompt renames per dataset family: ``{dataset class: prompt word}``.
PROMPT_RENAMES: Dict[str, Dict[str, str]] = dict(
    voc=dict(diningtable='table', pottedplant='plant', tvmonitor='monitor'),
    context=dict(
        aeroplane='airplane', pottedplant='plant', tvmonitor='monitor'))


def _apply_renames(names: Sequence[str], renames: Dict[str, str]) -> List[str]:
    """``names`` with ``renames`` (``{old: new}``) applied; RuntimeError if
    the installed mmseg lacks a name to rename."""
    missing = sorted(set(renames) - set(names))
    if missing:
        raise RuntimeError(
            f'Cannot apply the GroupViT prompt renames: {missing} are not '
            f'dataset classes of the installed mmseg. The rename table was '
            f'written for mmsegmentation 1.2.2; install that version or '
            f'update PROMPT_RENAMES.')
    return [renames.get(name, name) for name in names]


_COCO_STUFF_CLASSES = tuple(COCOStuffDataset.METAINFO['classes'])  # 171
#: COCO-Object's classes: 'background' and the 80 COCO thing classes (the
#: first of COCO-Stuff's).
COCO_OBJECT_CLASSES = ('background', ) + _COCO_STUFF_CLASSES[:80]

_VOC_PROMPTS = _apply_renames(PascalVOCDataset.METAINFO['classes'],
                              PROMPT_RENAMES['voc'])
_CONTEXT_PROMPTS = _apply_renames(PascalContextDataset.METAINFO['classes'],
                                  PROMPT_RENAMES['context'])

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
    """A new list of the prompt class names of ``name`` (``'voc'``,
    ``'voc20'``, ``'context'``, ..., ``'imagenet'``: the original's 1000,
    two of them twice) in label order."""
    if not isinstance(name, str):
        raise TypeError(f'The prompt class set name must be a str, got '
                        f'{type(name).__name__}: {name!r}.')
    if name == 'imagenet':
        from ..datasets.imagenet import imagenet_classes
        return imagenet_classes()
    if name not in _PROMPT_CLASSES:
        raise ValueError(f'Unknown prompt class set {name!r}. Valid names: '
                         f'{", ".join(sorted([*_PROMPT_CLASSES, "imagenet"]))}'
                         f'.')
    return list(_PROMPT_CLASSES[name])
