# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The 1000 ImageNet-1k classes: WordNet ids and the names GroupViT
prompts with.

The data is ``imagenet_classes.tsv`` next to this file: one class per line,
``wnid<TAB>name``, in class-index order (the sorted wnids, the order of
``val/<wnid>/`` folders and of the usual ``val.txt`` labels). The names are
the ones the original GroupViT evaluation uses for its ImageNet zero-shot
number (the cleaned names of CLIP's ImageNet notebook); two names occur
twice there (``missile``, ``sunglasses``) and are kept, so that the logits
are the original's.
"""
import os.path as osp
from functools import lru_cache
from typing import List, Tuple

__all__ = ['imagenet_classes', 'imagenet_wnids']

_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'imagenet_classes.tsv')


@lru_cache(maxsize=None)
def _read() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    wnids, names = [], []
    with open(_FILE, encoding='utf-8') as f:
        for line in f:
            if not line.strip() or line.startswith('#'):
                continue
            wnid, name = line.rstrip('\n').split('\t')
            wnids.append(wnid)
            names.append(name)
    return tuple(wnids), tuple(names)


def imagenet_wnids() -> List[str]:
    """The 1000 WordNet ids, sorted (= class index order)."""
    return list(_read()[0])


def imagenet_classes() -> List[str]:
    """The 1000 prompt names, in class index order."""
    return list(_read()[1])
