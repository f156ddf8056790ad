# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``CheckedResize`` and ``CheckedLoadAnnotations`` against mmcv's and
mmseg's own transforms: the same output where those work, a named error or
the right shape where they fail."""
import cv2
import numpy as np
import pytest
from mmcv.transforms import Resize
from mmengine.config import Config
from mmseg.apis import inference_model
from mmseg.datasets.transforms import LoadAnnotations
from PIL import Image

from groupvit_common.errors import ImageLoadError, ImageSizeError
from mmseg_groupvit.datasets import (CheckedLoadAnnotations, CheckedResize,
                                     RobustLoadImageFromFile,
                                     use_checked_steps)
from tests.conftest import REPO, build_small_segmentor, varied_segmentor

VOC_RESIZE = dict(scale=(2048, 448), keep_ratio=True)


@pytest.mark.parametrize('shape', [(10, 100000), (100000, 10)])
def test_too_elongated_image_is_named(shape):
    img = np.zeros(shape + (3, ), np.uint8)
    with pytest.raises(cv2.error):  # mmcv: an assertion naming nothing
        Resize(**VOC_RESIZE)(dict(img=img))
    with pytest.raises(ImageSizeError) as info:
        CheckedResize(**VOC_RESIZE)(dict(img=img, img_path='strip.png'))
    assert f'strip.png ({shape[0]}x{shape[1]}) cannot be resized by the ' \
           f'test pipeline (Resize scale=(2048, 448), keep_ratio=True)' in \
           str(info.value)


@pytest.mark.parametrize('shape', [(0, 0, 3), (0, 5, 3), (0, )])
def test_empty_image_is_named(shape):
    with pytest.raises(ImageSizeError, match='the image array is empty'):
        CheckedResize(**VOC_RESIZE)(dict(img=np.zeros(shape, np.uint8)))


def test_ordinary_image_is_resized_as_mmcv_does():
    img = np.random.default_rng(0).integers(0, 256, (37, 91, 3), np.uint8)
    ours = CheckedResize(**VOC_RESIZE)(dict(img=img.copy()))
    mmcv = Resize(**VOC_RESIZE)(dict(img=img.copy()))
    assert np.array_equal(ours['img'], mmcv['img'])
    assert ours['img_shape'] == mmcv['img_shape'] == (448, 1102)


@pytest.mark.parametrize('size', [(1, 1), (1, 7), (7, 1)])
def test_label_map_with_a_one_pixel_side_keeps_its_shape(size, tmp_path):
    height, width = size
    values = np.arange(height * width, dtype=np.uint8).reshape(size) + 3
    path = tmp_path / 'label.png'
    Image.fromarray(values).save(path)
    results = dict(
        seg_map_path=str(path), reduce_zero_label=False, seg_fields=[])
    mmseg = LoadAnnotations()(dict(results, seg_fields=[]))
    assert mmseg['gt_seg_map'].ndim < 2  # mmseg squeezes the side away
    ours = CheckedLoadAnnotations()(results)
    assert np.array_equal(ours['gt_seg_map'], values)


def test_folder_given_as_an_image_is_named(tmp_path):
    with pytest.raises(ImageLoadError) as info:
        RobustLoadImageFromFile()(dict(img_path=str(tmp_path)))
    assert str(info.value) == (
        f'Cannot load image {tmp_path}: it is a folder, not an image file. '
        f'Name an image file, or remove the name from the split file.')


@pytest.fixture(scope='module')
def api_model():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    model = build_small_segmentor()
    model.cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    use_checked_steps(model.cfg.test_pipeline)
    return model


def test_inference_model_names_four_channels(api_model):
    with pytest.raises(ValueError) as info:
        inference_model(api_model, np.zeros((50, 60, 4), np.uint8))
    assert 'GroupViT expects 3-channel images, got 4 channels' in str(
        info.value)
    assert 'array[..., :3]' in str(info.value)


def test_inference_model_names_an_empty_array(api_model):
    with pytest.raises(ImageSizeError, match='the image array is empty'):
        inference_model(api_model, np.zeros((0, 0, 3), np.uint8))


def test_inference_model_takes_a_gray_array_as_three_channels(api_model):
    """A 2-D array is spread to three equal channels by the data
    preprocessor: the same labels as the same array stacked three times."""
    gray = np.random.default_rng(1).integers(0, 256, (40, 50), np.uint8)
    ours = inference_model(api_model, gray).pred_sem_seg.data
    stacked = inference_model(api_model, np.repeat(gray[..., None], 3,
                                                   2)).pred_sem_seg.data
    assert torch_equal(ours, stacked)


@pytest.mark.parametrize(
    'convert, dtype', [(lambda a: a.astype(np.uint16) * 257, 'uint16'),
                       (lambda a: a.astype(np.float32) / 255, 'float32'),
                       (lambda a: a > 127, 'bool')],
    ids=['16_bit', 'float_0_1', 'bool'])
def test_inference_model_names_an_array_of_other_values(
        api_model, convert, dtype):
    """The same picture as 16-bit values or floats in [0, 1] was normalised
    as 0..255 pixels: other labels, silently. Refused, naming the fix."""
    image = np.random.default_rng(2).integers(0, 256, (40, 50, 3), np.uint8)
    with pytest.raises(ValueError) as info:
        inference_model(api_model, convert(image))
    assert f'the image array ({dtype}, values' in str(info.value)
    assert 'does not hold pixel values 0..255' in str(info.value)


def test_inference_model_takes_pixel_values_of_any_dtype():
    """Pixel values 0..255 as floats give the labels of uint8 (an image the
    pipeline does not resize: no interpolation rounds); as other integers
    too, also where it resizes (int64 was refused as "one side would be
    under one pixel": cv2 does not resize it)."""
    api_model = varied_segmentor(seed=4, text_encoder=True)
    api_model.cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    use_checked_steps(api_model.cfg.test_pipeline)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (448, 560, 3), np.uint8)
    labels = inference_model(api_model, image).pred_sem_seg.data
    assert len(labels.unique()) > 1  # labels that can differ
    for dtype in (np.float64, np.float32, np.int64):
        assert torch_equal(
            inference_model(api_model, image.astype(dtype)).pred_sem_seg.data,
            labels)
    small = rng.integers(0, 256, (40, 50, 3), np.uint8)
    labels = inference_model(api_model, small).pred_sem_seg.data
    assert len(labels.unique()) > 1
    for dtype in (np.int64, np.int32, np.uint16, np.int16):
        assert torch_equal(
            inference_model(api_model, small.astype(dtype)).pred_sem_seg.data,
            labels), dtype


def torch_equal(a, b):
    return bool((a == b).all()) and a.shape == b.shape
