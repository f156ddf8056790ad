# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Prompt and dataset class names against mmseg METAINFO and real COCO data.

The expected renames are written out by hand from GroupViT's evaluation
configs (index, mmseg name -> GroupViT name), so these tests do not just
re-run the module's own rename table.
"""
import json
import os.path as osp

import pytest
from mmseg.datasets import (ADE20KDataset, CityscapesDataset, COCOStuffDataset,
                            PascalContextDataset, PascalContextDataset59,
                            PascalVOCDataset)

from mmseg_groupvit.utils import get_prompt_classes
from mmseg_groupvit.utils.class_names import _apply_renames

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COCO_JSON = osp.join(REPO, 'samples', 'coco_sample', 'annotations',
                     'instances_val2017_sample.json')

ALL_NAMES = [
    'voc', 'voc20', 'context', 'context59', 'coco_object', 'coco_stuff',
    'ade20k', 'cityscapes'
]
SIZES = dict(
    voc=21,
    voc20=20,
    context=60,
    context59=59,
    coco_object=81,
    coco_stuff=171,
    ade20k=150,
    cityscapes=19)


def metainfo(dataset_type):
    return list(dataset_type.METAINFO['classes'])


def diff(prompt, canonical):
    """``{index: (canonical, prompt)}`` where the two lists differ."""
    assert len(prompt) == len(canonical)
    return {
        i: (c, p)
        for i, (c, p) in enumerate(zip(canonical, prompt)) if c != p
    }


@pytest.mark.parametrize('name', ALL_NAMES)
def test_sizes(name):
    prompts = get_prompt_classes(name)
    assert len(prompts) == SIZES[name]
    assert all(isinstance(n, str) and n and n == n.strip() for n in prompts)
    assert len(set(prompts)) == len(prompts), 'duplicate prompt names'


def test_voc_only_documented_renames():
    prompts = get_prompt_classes('voc')
    assert prompts[0] == 'background' and prompts[1] == 'aeroplane'
    assert diff(prompts, metainfo(PascalVOCDataset)) == {
        11: ('diningtable', 'table'),
        16: ('pottedplant', 'plant'),
        20: ('tvmonitor', 'monitor'),
    }


def test_voc20_is_voc_without_background():
    voc20 = get_prompt_classes('voc20')
    assert voc20 == get_prompt_classes('voc')[1:]
    assert 'background' not in voc20
    assert diff(voc20,
                metainfo(PascalVOCDataset)[1:]) == {
                    10: ('diningtable', 'table'),
                    15: ('pottedplant', 'plant'),
                    19: ('tvmonitor', 'monitor'),
                }


def test_context_only_documented_renames_in_mmseg_order():
    prompts = get_prompt_classes('context')
    assert prompts[0] == 'background'
    assert diff(prompts, metainfo(PascalContextDataset)) == {
        1: ('aeroplane', 'airplane'),
        40: ('pottedplant', 'plant'),
        55: ('tvmonitor', 'monitor'),
    }


def test_context59_against_its_own_metainfo():
    prompts = get_prompt_classes('context59')
    assert prompts == get_prompt_classes('context')[1:]
    assert diff(prompts, metainfo(PascalContextDataset59)) == {
        0: ('aeroplane', 'airplane'),
        39: ('pottedplant', 'plant'),
        54: ('tvmonitor', 'monitor'),
    }


def test_coco_object_is_background_plus_coco_things():
    prompts = get_prompt_classes('coco_object')
    assert prompts[0] == 'background'
    assert prompts[1:] == metainfo(COCOStuffDataset)[:80]
    # Independent source: the categories of a real COCO instances file,
    # which lists the 80 things with their category ids.
    with open(COCO_JSON) as f:
        categories = json.load(f)['categories']
    by_id = [c['name'] for c in sorted(categories, key=lambda c: c['id'])]
    assert prompts[1:] == by_id
    assert (prompts[1], prompts[12], prompts[80]) == ('person', 'stop sign',
                                                      'toothbrush')


@pytest.mark.parametrize('name, dataset_type',
                         [('coco_stuff', COCOStuffDataset),
                          ('cityscapes', CityscapesDataset)])
def test_unrenamed_sets_equal_metainfo(name, dataset_type):
    assert get_prompt_classes(name) == metainfo(dataset_type)


def test_ade20k_only_strips_whitespace():
    canonical = metainfo(ADE20KDataset)
    # mmseg 1.2.2 spells class 7 'bed ' with a trailing space.
    assert diff(get_prompt_classes('ade20k'), canonical) == {
        7: ('bed ', 'bed')
    }


def test_returns_fresh_lists():
    get_prompt_classes('voc').append('oops')
    assert len(get_prompt_classes('voc')) == 21


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match='Unknown') as info:
        get_prompt_classes('pascal_voc')
    for name in ALL_NAMES:
        assert name in str(info.value)
    with pytest.raises(TypeError, match='must be a str'):
        get_prompt_classes(None)


def test_rename_table_checked_against_dataset_names():
    with pytest.raises(RuntimeError, match='dinnertable'):
        _apply_renames(['background', 'table'], {'dinnertable': 'table'})
