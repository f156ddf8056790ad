# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Prompt template sets, as named in ``NVlabs/GroupViT``: ``simple``,
``subset`` (7, its ImageNet evaluation), ``full`` (CLIP's 80 ImageNet
templates) and ``identity``."""
from collections import Counter
from typing import Dict, List, Sequence, Union

from mmseg.utils.get_templates import PREDEFINED_TEMPLATES

from groupvit_common.vocabulary import check_template

__all__ = ['TEMPLATE_SETS', 'get_templates', 'check_template']

TEMPLATE_SETS: Dict[str, List[str]] = dict(
    simple=['a photo of a {}.'],
    subset=[
        'itap of a {}.', 'a bad photo of a {}.', 'a origami {}.',
        'a photo of the large {}.', 'a {} in a video game.', 'art of the {}.',
        'a photo of the small {}.'
    ],
    full=PREDEFINED_TEMPLATES['imagenet'],
    identity=['{}'])


def get_templates(name_or_list: Union[str, Sequence[str]]) -> List[str]:
    """A template set by name, or a checked list of templates (each with
    one ``{}``, none twice)."""
    if isinstance(name_or_list, str):
        name = name_or_list
        if name in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[name])
        msg = (f'Unknown prompt template set {name!r}. Valid names: '
               f'{", ".join(sorted(TEMPLATE_SETS))}; or pass a list of '
               f'templates.')
        if '{' in name:
            msg += f' For a single custom template pass [{name!r}].'
        raise ValueError(msg)
    if not isinstance(name_or_list, Sequence):
        raise TypeError(
            f'Prompt templates must be a set name (str) or a list of str, '
            f'got {type(name_or_list).__name__}: {name_or_list!r}.')
    templates = [check_template(t) for t in name_or_list]
    if not templates:
        raise ValueError('The list of prompt templates is empty; pass at '
                         "least one, e.g. ['a photo of a {}.'].")
    repeated = [t for t, n in Counter(templates).items() if n > 1]
    if repeated:
        raise ValueError(f'Prompt templates listed more than once: '
                         f'{repeated}. Each one would count several times '
                         f'in the template average; list it once.')
    return templates
