# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Every shipped zero-shot config (``configs/groupvit_*.py``) loads with
``Config.fromfile``, builds its model and its test data, and evaluates the
classes it says, with the background handled as its protocol says.

Expectations are written out per config below (class counts from the
datasets' definitions: VOC 21 / 20, PASCAL Context 60 / 59, COCO-Object 81,
COCO-Stuff 171, ADE20K 150, Cityscapes 19). Where the repository has a
sample (VOC, Context, COCO-Object) the test dataloader is built on it and
its label maps are compared with the raw PNGs read with PIL; for the other
sets only the dataset's definition is built (``lazy_init``), since no data
ships for them.
"""
import glob
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.runner import Runner
from mmseg.registry import DATASETS, MODELS
from PIL import Image

from mmseg_groupvit.utils import get_prompt_classes
from tests.conftest import (COCO_SAMPLE, CONTEXT_SAMPLE, REPO, SMALL_ARCH,
                            VOC_SAMPLE)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

CONFIG_DIR = osp.join(REPO, 'configs')
# config: (dataset type, classes evaluated, background channel, bg_thresh,
#          prompt list, default data root, sample data root, how raw label
#          values map to evaluated labels)
EXPECTED = {
    'groupvit_voc.py': ('PascalVOCDataset', 21, True, 0.95, 'voc',
                        'data/VOCdevkit/VOC2012', VOC_SAMPLE, 'same'),
    'groupvit_context.py': ('PascalContextDataset', 60, True, 0.35, 'context',
                            'data/VOCdevkit/VOC2010', CONTEXT_SAMPLE, 'same'),
    'groupvit_coco.py': ('COCOObjectDataset', 81, True, 0.95, 'coco_object',
                         'data/coco_stuff164k', COCO_SAMPLE, 'same'),
    'groupvit_voc20.py':
    ('PascalVOCDataset', 20, False, None, 'voc20', 'data/VOCdevkit/VOC2012',
     VOC_SAMPLE, 'drop_background'),
    'groupvit_context59.py':
    ('PascalContextDataset59', 59, False, None, 'context59',
     'data/VOCdevkit/VOC2010', CONTEXT_SAMPLE, 'drop_background'),
    'groupvit_coco-stuff171.py':
    ('COCOStuffDataset', 171, False, None, 'coco_stuff', 'data/coco_stuff164k',
     None, None),
    'groupvit_ade20k.py': ('ADE20KDataset', 150, False, None, 'ade20k',
                           'data/ade/ADEChallengeData2016', None, None),
    'groupvit_cityscapes.py': ('CityscapesDataset', 19, False, None,
                               'cityscapes', 'data/cityscapes', None, None),
}
SHIPPED = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, 'groupvit_*.py')))


def test_every_shipped_config_is_covered():
    assert SHIPPED == sorted(EXPECTED)


def load(name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    # The architecture does not matter here: build the small one.
    cfg.model.image_encoder.update(SMALL_ARCH['image_encoder'])
    cfg.model.text_encoder.update(SMALL_ARCH['text_encoder'])
    return cfg


# ImageNet mean and std of RGB pixels in 0..255 (the original's protocol).
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53])
IMAGENET_STD = np.array([58.395, 57.12, 57.375])


@pytest.mark.parametrize('name', SHIPPED)
def test_pipeline_pixels_are_the_hand_normalised_image(name, tmp_path):
    """A real photo through the config's test pipeline and data
    preprocessor equals the photo normalised by hand, channel by channel
    in RGB order. The PNG is 448 high, so the resize leaves it as is."""
    photo = Image.open(
        osp.join(REPO, 'samples', 'images',
                 'groupvit_demo_voc.jpg')).convert('RGB')
    photo = photo.resize((600, 448), Image.BILINEAR)
    path = tmp_path / 'photo.png'
    photo.save(path)
    cfg = load(name)
    pipeline = Compose([
        t for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] != 'LoadAnnotations'
    ])
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    data = pipeline(dict(img_path=str(path)))
    inputs = preprocessor(dict(inputs=[data['inputs']]), False)['inputs']
    expected = (np.asarray(photo, dtype=np.float64) -
                IMAGENET_MEAN) / IMAGENET_STD
    assert inputs.shape == (1, 3, 448, 600)
    np.testing.assert_allclose(
        inputs[0].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize('name', SHIPPED)
def test_protocol_settings(name):
    """The original evaluation protocol (short side 448, 448x448 windows
    with stride 224, ImageNet mean and std), in every config."""
    cfg = load(name)
    assert 'mmseg_groupvit' in cfg.custom_imports['imports']
    assert cfg.default_scope == 'mmseg'
    pre = cfg.model.data_preprocessor
    assert pre.mean == [123.675, 116.28, 103.53]
    assert pre.std == [58.395, 57.12, 57.375]
    assert pre.bgr_to_rgb
    pipeline = cfg.test_dataloader.dataset.pipeline
    assert [t['type'] for t in pipeline][-1] == 'PackSegInputs'
    # mmcv's Resize that names an image it cannot resize.
    resize = [t for t in pipeline if t['type'] == 'CheckedResize']
    assert len(resize) == 1
    assert tuple(resize[0]['scale']) == (2048, 448)
    assert resize[0]['keep_ratio']
    # Labels are loaded after the resize, so they keep the original size.
    types = [t['type'] for t in pipeline]
    assert types.index('LoadAnnotations') > types.index('CheckedResize')
    # mmseg's inference APIs find the loading steps by these names.
    assert types[0] == 'LoadImageFromFile'
    test_cfg = cfg.model.test_cfg
    assert test_cfg.mode == 'slide'
    assert tuple(test_cfg.crop_size) == (448, 448)
    assert tuple(test_cfg.stride) == (224, 224)
    assert cfg.model.text_encoder.templates == 'simple'
    assert cfg.test_dataloader.batch_size == 1
    evaluator = cfg.test_evaluator
    assert evaluator.type == 'CheckedIoUMetric'
    assert evaluator.get('ignore_index', 255) == 255
    assert evaluator.iou_metrics == ['mIoU']
    assert cfg.test_cfg.type == 'TestLoop'
    # mmengine refuses half-defined train / val parts.
    assert cfg.get('train_dataloader') is None
    assert cfg.get('val_dataloader') is None


@pytest.mark.parametrize('name', SHIPPED)
def test_model_classes_and_background(name):
    (dataset_type, num_classes, with_bg, bg_thresh, prompts, _, _,
     _) = EXPECTED[name]
    cfg = load(name)
    model = MODELS.build(ConfigDict(cfg.model))
    head = model.decode_head
    assert head.num_classes == model.num_classes == num_classes
    assert head.with_bg is with_bg
    names = list(get_prompt_classes(prompts))
    if with_bg:
        # No background prompt: the head thresholds it into channel 0.
        assert names[0] == 'background'
        names = names[1:]
        assert model.test_cfg['bg_thresh'] == bg_thresh
    assert model.text_encoder.class_names == names
    assert len(names) + int(with_bg) == num_classes
    # The dataset evaluates exactly these classes, background first when
    # the model predicts one.
    dataset_cfg = cfg.test_dataloader.dataset
    assert dataset_cfg.type == dataset_type
    metainfo = dataset_cfg.get('metainfo', None)
    classes = (metainfo or DATASETS.get(dataset_type).METAINFO)['classes']
    assert len(classes) == num_classes
    assert (classes[0] == 'background') is with_bg


@pytest.mark.parametrize('name', SHIPPED)
def test_default_data_root(name):
    cfg = load(name)
    assert cfg.test_dataloader.dataset.data_root == EXPECTED[name][5]


def raw_to_evaluated(raw, rule):
    """The labels the metric should see, from the raw PNG values."""
    if rule == 'same':
        return raw
    # Background (0) is ignored; classes move down by one.
    out = raw.astype(np.int64) - 1
    out[(raw == 0) | (raw == 255)] = 255
    return out


@pytest.mark.parametrize('name',
                         [n for n in SHIPPED if EXPECTED[n][6] is not None])
def test_dataloader_on_the_sample(name):
    (_, num_classes, _, _, _, _, sample, rule) = EXPECTED[name]
    cfg = load(name)
    loader_cfg = cfg.test_dataloader
    loader_cfg.dataset.data_root = sample
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader = Runner.build_dataloader(loader_cfg)
    dataset = loader.dataset
    assert len(dataset.metainfo['classes']) == num_classes
    batch = next(iter(loader))
    sample_ = batch['data_samples'][0]
    raw = np.asarray(Image.open(sample_.seg_map_path))
    label = sample_.gt_sem_seg.data[0].numpy()
    # Full-resolution labels, while the image is resized to short side 448.
    assert label.shape == raw.shape == tuple(sample_.ori_shape)
    assert min(batch['inputs'][0].shape[1:]) == 448
    np.testing.assert_array_equal(label, raw_to_evaluated(raw, rule))
    valid = label[label != 255]
    assert valid.size and valid.max() < num_classes
    if rule != 'same':
        assert (raw == 0).any()  # the sample does have background to drop
    ann_file = loader_cfg.dataset.get('ann_file', None)
    if ann_file:
        with open(osp.join(sample, ann_file)) as f:
            expected = len(f.read().split())
    else:
        expected = len(
            glob.glob(
                osp.join(sample, loader_cfg.dataset.data_prefix.img_path,
                         '*.jpg')))
    assert len(dataset) == expected > 0


@pytest.mark.parametrize('name',
                         [n for n in SHIPPED if EXPECTED[n][6] is None])
def test_dataset_definition_without_data(name):
    """No sample ships for these sets: build the dataset lazily and its
    test pipeline."""
    dataset_type, num_classes = EXPECTED[name][:2]
    cfg = load(name)
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    assert type(dataset).__name__ == dataset_type
    assert len(dataset.metainfo['classes']) == num_classes
    Compose(cfg.test_dataloader.dataset.pipeline)
