# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Unusual and broken image files: RobustLoadImageFromFile gives the right
pixels or one error naming the file."""
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from PIL import Image

import mmseg_groupvit.datasets.transforms as transforms_module
from groupvit_common.errors import ImageLoadError
from mmseg_groupvit.datasets import RobustLoadImageFromFile
from tests.conftest import VOC_SAMPLE

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (24, 36, 3), dtype=np.uint8)


def load(path, **kwargs):
    return RobustLoadImageFromFile(**kwargs)(dict(img_path=str(path)))


def test_voc_jpegs_are_bit_identical_to_mmcv():
    folder = osp.join(VOC_SAMPLE, 'JPEGImages')
    names = sorted(os.listdir(folder))
    assert len(names) == 25
    for name in names:
        path = osp.join(folder, name)
        ours = load(path)
        theirs = LoadImageFromFile()(dict(img_path=path))
        assert ours['img'].dtype == np.uint8
        np.testing.assert_array_equal(ours['img'], theirs['img'])
        assert ours['ori_shape'] == theirs['ori_shape']
        assert ours['exif_orientation'] == 1


@pytest.mark.parametrize('suffix', ['png', 'jpg'])
def test_grayscale_becomes_three_equal_channels(tmp_path, suffix):
    gray = RGB[..., 0]
    path = tmp_path / f'gray.{suffix}'
    Image.fromarray(gray).save(path, quality=100)
    img = load(path)['img']
    assert img.shape == (24, 36, 3)
    np.testing.assert_array_equal(img[..., 0], img[..., 1])
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    if suffix == 'png':  # lossless: the exact gray values
        np.testing.assert_array_equal(img[..., 0], gray)


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_rgba_drops_alpha(tmp_path, backend):
    alpha = RNG.integers(0, 256, (24, 36, 1), dtype=np.uint8)
    path = tmp_path / 'rgba.png'
    Image.fromarray(np.concatenate([RGB, alpha], axis=2)).save(path)
    # BGR order, colour channels unchanged by the alpha values.
    np.testing.assert_array_equal(
        load(path, imdecode_backend=backend)['img'], RGB[..., ::-1])


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_gray_with_alpha_drops_alpha(tmp_path, backend):
    """As RGBA, by either decoder (mmcv's Pillow decoding laid it on a
    (124, 117, 104) canvas where transparent)."""
    gray = RGB[..., 0]
    alpha = RNG.integers(0, 256, (24, 36), dtype=np.uint8)
    path = tmp_path / 'gray_alpha.png'
    Image.fromarray(np.stack([gray, alpha], axis=2), 'LA').save(path)
    np.testing.assert_array_equal(
        load(path, imdecode_backend=backend)['img'],
        np.repeat(gray[..., None], 3, axis=2))


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('channels', [1, 3])
def test_16_bit_png_is_scaled_to_8_bits(tmp_path, channels, backend):
    """By either decoder (Pillow, the classification configs', clipped
    16-bit gray at 255)."""
    shape = (24, 36) if channels == 1 else (24, 36, 3)
    deep = RNG.integers(0, 65536, shape, dtype=np.uint16)
    path = tmp_path / 'deep.png'
    assert cv2.imwrite(str(path), deep)  # cv2 writes (and keeps) BGR order
    img = load(path, imdecode_backend=backend)['img']
    expected = (deep >> 8).astype(np.uint8)
    if channels == 1:
        expected = np.repeat(expected[..., None], 3, axis=2)
    np.testing.assert_array_equal(img, expected)


@pytest.mark.parametrize('cmyk', [(0, 0, 0, 0), (255, 0, 0, 0), (0, 255, 0, 0),
                                  (0, 0, 255, 0), (0, 0, 0, 128),
                                  (64, 128, 0, 32)])
def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, cmyk):
    path = tmp_path / 'cmyk.jpg'
    Image.new('CMYK', (16, 16), cmyk).save(path, quality=100)
    c, m, y, k = (v / 255 for v in cmyk)
    # The standard CMYK -> RGB formula.
    rgb = np.array([1 - c, 1 - m, 1 - y]) * (1 - k) * 255
    img = load(path)['img']
    assert img.shape == (16, 16, 3)
    np.testing.assert_allclose(img[8, 8, ::-1], rgb, atol=2)


def test_exif_rotated_jpeg_is_turned_upright_with_one_warning(
        tmp_path, monkeypatch):
    monkeypatch.setattr(transforms_module, '_warned_exif', False)
    stored = Image.fromarray(RGB)
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / 'rotated.jpg'
    stored.save(path, exif=exif, quality=95)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = load(path)
        load(path)
    raw = load(path, color_type='color_ignore_orientation')['img']
    assert raw.shape == (24, 36, 3)
    np.testing.assert_array_equal(result['img'], np.rot90(raw, k=-1))
    assert result['ori_shape'] == (36, 24)
    assert result['exif_orientation'] == 6
    messages = [str(w.message) for w in caught if 'EXIF' in str(w.message)]
    assert len(messages) == 1
    assert str(path) in messages[0]
    assert 'color_ignore_orientation' in messages[0]


def _truncated_jpeg(path):
    data = open(osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000129.jpg'),
                'rb').read()
    path.write_bytes(data[:int(len(data) * 0.9)])


def _truncated_png(path):
    Image.fromarray(RGB).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize(
    'name, make, reason',
    [('missing.jpg', lambda p: None, 'does not exist'),
     ('empty.jpg', lambda p: p.write_bytes(b''), 'empty'),
     ('garbage.jpg', lambda p: p.write_bytes(b'not an image' * 20),
      'truncated or corrupt'),
     ('truncated.jpg', _truncated_jpeg, 'truncated or corrupt'),
     ('truncated.png', _truncated_png, 'truncated or corrupt')])
def test_bad_files_are_named(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageLoadError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and reason in message
    # ignore_empty keeps mmcv's meaning: skip the file instead.
    assert load(path, ignore_empty=True) is None


def test_truncated_jpeg_decoded_partially_is_still_refused(
        tmp_path, monkeypatch):
    """Some OpenCV builds return a partly grey image for a truncated JPEG
    instead of None; the missing end marker sends it to Pillow, which
    refuses it."""
    path = tmp_path / 'truncated.jpg'
    _truncated_jpeg(path)
    monkeypatch.setattr(transforms_module.mmcv, 'imfrombytes',
                        lambda *args, **kwargs: RGB.copy())
    with pytest.raises(ImageLoadError, match='truncated or corrupt'):
        load(path)
    # Trailing bytes after a complete JPEG are not an error.
    good = tmp_path / 'trailing.jpg'
    good.write_bytes(
        open(osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000129.jpg'),
             'rb').read() + b'trailing metadata')
    assert load(good)['img'].shape == RGB.shape


def test_format_opencv_cannot_read_names_the_fix(tmp_path, monkeypatch):
    path = tmp_path / 'image.png'
    Image.fromarray(RGB).save(path)
    monkeypatch.setattr(transforms_module.mmcv, 'imfrombytes',
                        lambda *args, **kwargs: None)
    with pytest.raises(ImageLoadError, match='imdecode_backend="pillow"'):
        load(path)


def test_an_image_larger_than_the_bound_is_refused_unread(
        tmp_path, monkeypatch):
    """A photo made 1.5 GB by a sparse tail (segmented as if fine after
    reading it all): refused from its size, unread."""
    from groupvit_common.files import MAX_IMAGE_BYTES
    path = tmp_path / 'huge.jpg'
    Image.fromarray(RGB).save(path)
    os.truncate(path, MAX_IMAGE_BYTES + 1)  # sparse: no disk taken
    monkeypatch.setattr(transforms_module.fileio, 'get',
                        lambda *args, **kwargs: pytest.fail('read'))
    with pytest.raises(ImageLoadError) as info:
        load(path)
    assert str(info.value) == (
        f'Cannot load image {path}: it is {MAX_IMAGE_BYTES + 1:,} bytes, '
        f'more than the {MAX_IMAGE_BYTES:,} an image file may take. It is '
        f'not an image, or it was damaged: remove the name from the split '
        f'file.')
    assert load(path, ignore_empty=True) is None


def test_a_nul_byte_in_a_name_is_a_missing_file(tmp_path):
    path = f'{tmp_path}/2007_000033\0.jpg'
    with pytest.raises(ImageLoadError) as info:
        load(path)
    assert 'the file does not exist' in str(info.value)


@pytest.mark.parametrize('mode', ['F', 'I'])
@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_32_bit_and_float_pixels_are_refused(tmp_path, mode, backend):
    """Both decoders clip them (Pillow classified a float image as a black
    one): refused, whichever decoder is set."""
    gray = RGB[..., 0].astype(np.float32) / 255
    path = tmp_path / f'{mode}.tiff'
    Image.fromarray(gray if mode == 'F' else (gray *
                                              1e6).astype(np.int32)).save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(ImageLoadError) as info:
        load(path, imdecode_backend=backend)
    assert str(info.value) == (
        f'Cannot load image {path}: its pixels are 32-bit integers or floats '
        f'(mode {mode}), which both decoders clip. Convert it to 8-bit RGB '
        f'first, or remove it from the split file.')


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_16_bit_netpbm_loads_as_the_png_of_its_pixels(tmp_path, backend):
    """Pillow opens 16-bit gray PGM as 32-bit 'I': it holds 16 bits a
    sample, so it loads as the 16-bit PNG of the same pixels does."""
    gray = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    for ext in ('pgm', 'png'):
        assert cv2.imwrite(str(tmp_path / f'g.{ext}'), gray)
    assert Image.open(tmp_path / 'g.pgm').mode.startswith('I')
    pgm = load(tmp_path / 'g.pgm', imdecode_backend=backend)['img']
    png = load(tmp_path / 'g.png', imdecode_backend=backend)['img']
    assert np.array_equal(pgm, png)
    assert png.max() > 200  # not clipped at 255 from 16 bits
