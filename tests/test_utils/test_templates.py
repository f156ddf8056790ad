# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Prompt template sets, checked against mmseg's copy of CLIP's templates
and against GroupViT's lists (its ``datasets/imagenet_template.py``),
written out here by hand."""
import pytest
from mmseg.utils.get_templates import PREDEFINED_TEMPLATES

from mmseg_groupvit.utils import check_template, get_templates

# GroupViT's 'subset', in order (its ImageNet zero-shot prompts).
SPEC_SUBSET = [
    'itap of a {}.', 'a bad photo of a {}.', 'a origami {}.',
    'a photo of the large {}.', 'a {} in a video game.', 'art of the {}.',
    'a photo of the small {}.'
]


def test_simple_and_identity():
    assert get_templates('simple') == ['a photo of a {}.']
    assert get_templates('identity') == ['{}']
    assert [t.format('cat') for t in get_templates('identity')] == ['cat']


def test_full_matches_mmseg_imagenet_templates():
    full = get_templates('full')
    assert len(full) == 80
    assert len(set(full)) == 80
    mmseg_imagenet = PREDEFINED_TEMPLATES['imagenet']
    assert len(full) == len(mmseg_imagenet)
    for ours, theirs in zip(full, mmseg_imagenet):
        assert ours == theirs
    # CLIP's notebook (Prompt_Engineering_for_ImageNet.ipynb), by hand.
    assert full[0] == 'a bad photo of a {}.'
    assert full[7] == 'a bad photo of the {}.'
    assert full[-1] == 'a tattoo of the {}.'


def test_simple_and_subset_are_clip_templates():
    full = PREDEFINED_TEMPLATES['imagenet']
    assert set(get_templates('simple')) <= set(full)
    assert set(get_templates('subset')) <= set(full)


def test_subset_is_groupvit_order_and_within_full():
    subset = get_templates('subset')
    assert subset == SPEC_SUBSET
    assert set(subset) <= set(get_templates('full'))


@pytest.mark.parametrize('name', ['simple', 'subset', 'full', 'identity'])
def test_every_named_template_takes_one_name(name):
    for template in get_templates(name):
        check_template(template)
        prompt = template.format('traffic light')
        assert prompt.count('traffic light') == 1
        assert '{' not in prompt and '}' not in prompt


def test_named_sets_are_copies():
    get_templates('simple').append('x {}')
    assert get_templates('simple') == ['a photo of a {}.']
    get_templates('full').append('x {}')
    assert len(get_templates('full')) == 80
    assert len(PREDEFINED_TEMPLATES['imagenet']) == 80


def test_custom_list_and_tuple():
    custom = ['a photo of a {}.', 'a {{logo}} of the {}.']
    assert get_templates(custom) == custom
    assert get_templates(tuple(custom)) == custom
    assert custom[1].format('cat') == 'a {logo} of the cat.'


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match='Unknown prompt template set') as e:
        get_templates('imagenet')
    for name in ['simple', 'subset', 'full', 'identity']:
        assert name in str(e.value)


def test_single_template_string_gets_a_hint():
    with pytest.raises(ValueError, match=r"pass \['a photo of a \{\}.'\]"):
        get_templates('a photo of a {}.')


@pytest.mark.parametrize('template', [
    'a photo of a cat.',
    'a {} and a {}.',
    'a photo of a {0}.',
    'a photo of a {name}.',
    'a photo of a {!r}.',
    'a photo of a {:>10}.',
    '{{}}',
])
def test_template_needs_exactly_one_empty_field(template):
    with pytest.raises(ValueError, match='expected exactly one empty one'):
        get_templates([template])


def test_malformed_braces():
    with pytest.raises(ValueError, match='malformed braces'):
        get_templates(['a photo of a {.'])


def test_empty_list_and_repeats():
    with pytest.raises(ValueError, match='empty'):
        get_templates([])
    with pytest.raises(ValueError, match='more than once'):
        get_templates(['a photo of a {}.', 'art of {}.', 'a photo of a {}.'])


@pytest.mark.parametrize('bad', [None, 3, ['a {}.', 7]])
def test_wrong_types(bad):
    with pytest.raises(TypeError):
        get_templates(bad)
