# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""COCOObjectDataset on the real COCO val2017 samples shipped in samples/."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.datasets import COCOStuffDataset, PascalVOCDataset
from mmseg.registry import DATASETS

from mmseg_groupvit.datasets import COCOObjectDataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA_ROOT = osp.join(REPO, 'samples', 'coco_sample')


def build(**kwargs):
    init_default_scope('mmseg')
    cfg = dict(
        type='COCOObjectDataset',
        data_root=DATA_ROOT,
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'),
        ann_file='val.txt',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ],
        test_mode=True)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def expected_labels_per_image():
    """Thing labels each image should contain, from the instances JSON.

    Label = 1 + rank of the category id among the file's 80 category ids.
    """
    with open(
            osp.join(DATA_ROOT, 'annotations',
                     'instances_val2017_sample.json')) as f:
        coco = json.load(f)
    ids = sorted(c['id'] for c in coco['categories'])
    labels = {}
    for ann in coco['annotations']:
        name = f'{ann["image_id"]:012d}'
        labels.setdefault(name, set()).add(ids.index(ann['category_id']) + 1)
    return labels


def test_registered():
    assert DATASETS.get('COCOObjectDataset') is COCOObjectDataset


def test_metainfo():
    classes = COCOObjectDataset.METAINFO['classes']
    assert len(classes) == 81
    assert classes[0] == 'background'
    assert list(classes[1:]) == list(COCOStuffDataset.METAINFO['classes'][:80])
    palette = COCOObjectDataset.METAINFO['palette']
    assert len(palette) == 81
    assert len({tuple(c) for c in palette}) == 81, 'colours must differ'
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in palette)
    assert palette[0] == [0, 0, 0]
    # The palette follows the VOC colour map, which mmseg lists literally.
    assert palette[:21] == [
        list(c) for c in PascalVOCDataset.METAINFO['palette']
    ]


def test_loads_real_samples_through_mmseg_pipeline():
    dataset = build()
    assert len(dataset) == 3
    assert dataset.metainfo['classes'] == COCOObjectDataset.METAINFO['classes']
    expected = expected_labels_per_image()
    seen = set()
    for index in range(len(dataset)):
        item = dataset[index]
        sample = item['data_samples']
        name = osp.basename(sample.img_path)[:-len('.jpg')]
        assert sample.img_path.endswith('.jpg')
        assert sample.seg_map_path.endswith(name + '_instanceTrainIds.png')
        assert sample.reduce_zero_label is False
        image = item['inputs']  # [3, H, W] uint8
        labels = sample.gt_sem_seg.data  # [1, H, W]
        assert image.shape[0] == 3
        assert tuple(labels.shape) == (1, ) + tuple(image.shape[1:])
        assert tuple(image.shape[1:]) == tuple(sample.ori_shape)
        values = set(np.unique(labels.numpy()).tolist())
        assert values <= set(range(81)), values
        assert 0 in values, 'stuff and unlabeled pixels are background'
        assert values - {0} == expected[name]
        seen.add(name)
    assert seen == set(expected)


def test_rejects_reduce_zero_label():
    with pytest.raises(ValueError, match='reduce_zero_label=False'):
        build(reduce_zero_label=True)
