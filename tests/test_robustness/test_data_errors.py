# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``tools/test.py`` on a broken copy of the VOC sample: every problem stops
the run with one ``error: ...`` line naming the input and the fix."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from PIL import Image

from groupvit_common.errors import (ConfigCheckError, ImageLoadError,
                                    user_error_message)
from mmseg_groupvit.evaluation import check_dataset_paths
from tests.conftest import (REPO, SMALL_ARCH, build_small_segmentor,
                            load_script, voc_subset)
from tests.test_robustness.test_image_entries import crafted_png

NAMES = ['2007_000033', '2007_000129']
# Small windows on images resized to a short side of 224: quick.
CONFIG = """_base_ = {base!r}
model = dict(
    image_encoder={image_encoder!r},
    text_encoder={text_encoder!r},
    test_cfg=dict(crop_size=(224, 224), stride=(224, 224)))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root={data_root!r},
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(1024, 224), keep_ratio=True),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ]))
"""


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    init_default_scope('mmseg')
    path = tmp_path_factory.mktemp('checkpoint') / 'small.pth'
    torch.save(
        dict(state_dict=build_small_segmentor().state_dict(), meta={}), path)
    return path


@pytest.fixture
def dataset(tmp_path, checkpoint):
    """Two VOC pairs in the VOC layout, a config and a small checkpoint."""
    root = tmp_path / 'VOC2012'
    voc_subset(root, NAMES)
    config = tmp_path / 'config.py'
    config.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs', 'groupvit_voc.py'),
            data_root=str(root),
            **SMALL_ARCH))
    return root, config, checkpoint


def run_tool(dataset, *options):
    root, config, checkpoint = dataset
    argv = [
        str(config),
        str(checkpoint), '--work-dir',
        str(root.parent / 'work'), *options
    ]
    with pytest.raises(SystemExit) as info:
        load_script('tools/test.py', 'groupvit_test_tool').main(argv)
    message = str(info.value.code)
    assert message.startswith('error: ')
    assert 'Traceback' not in message
    return message


def test_missing_split_file(dataset):
    root = dataset[0]
    split = root / 'ImageSets' / 'Segmentation' / 'val.txt'
    split.unlink()
    message = run_tool(dataset)
    assert f'split file {split}' in message
    assert 'test_dataloader.dataset.ann_file' in message


def test_missing_image_folder(dataset):
    message = run_tool(dataset, '--cfg-options',
                       'test_dataloader.dataset.data_prefix.img_path=Images')
    assert f'image folder {dataset[0] / "Images"} does not exist' in message


def test_missing_data_root(dataset):
    missing = dataset[0].parent / 'nowhere'
    message = run_tool(dataset, '--cfg-options',
                       f'test_dataloader.dataset.data_root={missing}')
    assert str(missing) in message and 'data_root' in message


def test_check_dataset_paths_names_data_root(tmp_path):
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_paths(
            dict(data_root=str(tmp_path / 'VOC'), data_prefix={}))
    message = str(info.value)
    assert 'test_dataloader.dataset.data_root' in message
    assert '--cfg-options test_dataloader.dataset.data_root=' in message


def test_corrupt_image_is_named(dataset):
    path = dataset[0] / 'JPEGImages' / (NAMES[0] + '.jpg')
    path.write_bytes(path.read_bytes()[:2000])
    message = run_tool(dataset)
    assert f'Cannot load image {path}' in message
    assert 'truncated or corrupt' in message


def test_label_map_size_mismatch_stops_the_tool(dataset):
    path = dataset[0] / 'SegmentationClass' / (NAMES[0] + '.png')
    label = Image.open(path)
    label.crop((0, 0, label.width - 7, label.height)).save(path)
    message = run_tool(dataset)
    assert f'Label map {path} is 366x493' in message
    assert 'is 366x500' in message


@pytest.mark.parametrize('mode', ['RGB', 'RGBA'])
@pytest.mark.slow
def test_colour_label_map_stops_the_tool(dataset, mode):
    """A label map saved as a colour picture (mmseg loads it as HxWx3 and
    fails with a traceback)."""
    path = dataset[0] / 'SegmentationClass' / (NAMES[1] + '.png')
    Image.open(path).convert(mode).save(path)
    message = run_tool(dataset)
    assert message == (
        f'error: Label map {path} has {len(mode)} channels (a colour picture '
        f'of the labels?): label maps must be single-channel index maps, '
        f'each pixel the index of its class (grayscale or palette PNG). '
        f'Convert the colours to class indices first.')


def test_checkpoint_of_another_architecture(dataset, tmp_path):
    other = tmp_path / 'other.pth'
    model = build_small_segmentor(image_encoder=dict(depths=[2, 1, 1]))
    torch.save(dict(state_dict=model.state_dict(), meta={}), other)
    message = run_tool((dataset[0], dataset[1], other))
    assert 'image_encoder.depths' in message


def test_worker_traceback_is_stripped():
    """DataLoader workers re-raise errors with their traceback in the
    message; the tools print the original message only."""
    wrapped = ImageLoadError(
        'Caught ImageLoadError in DataLoader worker process 0.\n'
        'Original Traceback (most recent call last):\n'
        '  File "x.py", line 1, in <module>\n'
        'mmseg_groupvit.datasets.transforms.ImageLoadError: Cannot load '
        'image /d/a.jpg: the file is empty (0 bytes). Copy it again.\n')
    assert user_error_message(wrapped) == (
        'Cannot load image /d/a.jpg: the file is empty (0 bytes). Copy it '
        'again.')


@pytest.mark.parametrize('size, words', [
    ((30000, 30000), '900,000,000 pixels, more than the 134,217,728 accepted'),
    ((60000, 10), '60000x10 pixels, more elongated than 64:1')
])
@pytest.mark.slow
def test_bomb_and_strip_are_refused_before_decoding(dataset, size, words):
    """A PNG whose header states 30000x30000 (2.5 GiB decoded) or a 60000x10
    strip (a side under one pixel after the resize; mmcv fails with an
    OpenCV assertion naming nothing), holding two rows of data: refused
    from the header, so never decoded."""
    image = dataset[0] / 'JPEGImages' / (NAMES[0] + '.jpg')
    image.write_bytes(crafted_png(*size))
    message = run_tool(dataset)
    assert message.startswith(f'error: {image} is {words}')


def test_one_pixel_image_with_a_label_is_evaluated(dataset):
    """mmseg squeezes a 1x1 label map to 0 dimensions and fails; it is
    counted as one pixel."""
    root, config, checkpoint = dataset
    other = np.asarray(
        Image.open(root / 'SegmentationClass' / (NAMES[1] + '.png')))
    # A class that only the 1x1 image's label holds.
    label = min(set(range(1, 21)) - set(np.unique(other).tolist()))
    Image.new('RGB', (1, 1),
              (90, 120, 30)).save(root / 'JPEGImages' / (NAMES[0] + '.jpg'))
    Image.new('L', (1, 1),
              label).save(root / 'SegmentationClass' / (NAMES[0] + '.png'))
    work = root.parent / 'work'
    load_script('tools/test.py', 'groupvit_test_tool').main(
        [str(config), str(checkpoint), '--work-dir',
         str(work)])
    with open(work / 'results.json') as f:
        record = json.load(f)
    assert record['images'] == 2
    # Exactly one pixel of that class is labelled: its accuracy is 0 or 100.
    assert record['per_class']['Acc'][label] in (0.0, 100.0)
