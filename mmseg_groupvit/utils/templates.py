# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Prompt template sets for GroupViT's text encoder.

A template is a string with exactly one ``{}`` field that receives a class
name, e.g. ``'a photo of a {}.'.format('cat')``. Four named sets exist, the
ones GroupViT names in ``NVlabs/GroupViT:datasets/imagenet_template.py``:

* ``simple``: ``['a photo of a {}.']``, used by GroupViT's zero-shot
  segmentation (``configs/default.yml``: ``evaluate.seg.template: simple``).
* ``subset``: 7 templates, used by GroupViT's ImageNet zero-shot
  classification. Note that GroupViT's second template is
  ``'a bad photo of a {}.'`` where CLIP's notebook has
  ``'a bad photo of the {}.'``; both are in ``full``.
* ``full``: the 80 ImageNet templates of CLIP (Radford et al., 2021,
  `arXiv:2103.00020 <https://arxiv.org/abs/2103.00020>`_;
  ``openai/CLIP:notebooks/Prompt_Engineering_for_ImageNet.ipynb``, MIT
  licence), taken from mmseg, which ships the same 80 strings in the same
  order as ``mmseg.utils.get_templates.PREDEFINED_TEMPLATES['imagenet']``.
* ``identity``: ``['{}']``, the bare class name.

The text encoder averages the projected, un-normalised text embeddings over
the templates of a class, then L2-normalises the average.
"""
from collections import Counter
from typing import Dict, List, Sequence, Union

from mmseg.utils.get_templates import PREDEFINED_TEMPLATES

from groupvit_common.vocabulary import check_template

__all__ = ['TEMPLATE_SETS', 'get_templates', 'check_template']

# yapf: disable
TEMPLATE_SETS: Dict[str, List[str]] = {
    'simple': ['a photo of a {}.'],
    'subset': [
        'itap of a {}.',
        'a bad photo of a {}.',
        'a origami {}.',
        'a photo of the large {}.',
        'a {} in a video game.',
        'art of the {}.',
        'a photo of the small {}.',
    ],
    'full': PREDEFINED_TEMPLATES['imagenet'],
    'identity': ['{}'],
}
# yapf: enable


def get_templates(name_or_list: Union[str, Sequence[str]]) -> List[str]:
    """Return a prompt template set by name, or check a custom one.

    Args:
        name_or_list (str | Sequence[str]): A set name (``'simple'``,
            ``'subset'``, ``'full'``, ``'identity'``) or a non-empty
            sequence of templates, each with exactly one ``{}``.

    Returns:
        list[str]: A new list of T templates, in order.

    Raises:
        ValueError: For an unknown name (the message lists the valid ones),
            an empty sequence, a template without exactly one ``{}`` field,
            or a template listed twice (it would count double in the
            template average).
        TypeError: If the argument is neither a str nor a sequence of str.

    Example:
        >>> get_templates('simple')
        ['a photo of a {}.']
        >>> get_templates(['a photo of a {}.', 'art of the {}.'])
        ['a photo of a {}.', 'art of the {}.']
    """
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
