# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The ImageNet classification config is GroupViT's zero-shot protocol:
short side resized to 256 (bilinear), 224 centre crop, ImageNet mean/std,
the 7 'subset' templates over the 1000 classes, top-1 and top-5."""
import os.path as osp

from mmengine.config import Config
from mmseg.registry import DATASETS

from mmseg_groupvit.evaluation import (describe_protocol,
                                       is_classification_config)
from tests.conftest import REPO

CONFIG = osp.join(REPO, 'configs', 'classification', 'groupvit_imagenet.py')


def test_imagenet_config_is_the_original_protocol():
    cfg = Config.fromfile(CONFIG)
    assert is_classification_config(cfg)
    assert not is_classification_config(
        osp.join(REPO, 'configs', 'groupvit_voc.py'))
    protocol = describe_protocol(cfg)
    assert protocol['resize'] == dict(scale=256, edge='short')
    assert protocol['crop'] == 224
    assert protocol['templates'] == 'subset'
    assert protocol['vocabulary'] == dict(dataset_name='imagenet')
    assert protocol['topk'] == [1, 5]
    resize = cfg.test_pipeline[1]
    assert (resize.backend, resize.interpolation) == ('pillow', 'bilinear')
    pre = cfg.model.data_preprocessor
    assert pre.mean == [123.675, 116.28, 103.53]
    assert pre.std == [58.395, 57.12, 57.375]
    assert pre.bgr_to_rgb


def test_imagenet_dataset_builds_lazily():
    cfg = Config.fromfile(CONFIG)
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    assert len(dataset.metainfo['classes']) == 1000
