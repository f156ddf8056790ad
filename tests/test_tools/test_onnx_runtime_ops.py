# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The ONNX runtime's torch-free operations against the libraries they
replace: mmseg's CLIP tokenizer, mmcv's image decoding and rescale, OpenCV's
and PyTorch's bilinear resizes."""
import os
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmseg.utils import tokenize
from mmseg.utils import tokenizer as mmseg_tokenizer
from PIL import Image

from groupvit_ort import image_ops
from groupvit_ort.tokenizer import ClipTokenizer
from tests.conftest import PHOTOS, VOC_SAMPLE
from tests.test_robustness.test_image_entries import HOSTILE, crafted_png

read_rgb, rescale_size = image_ops.read_rgb, image_ops.rescale_size
resize_float_bilinear = image_ops.resize_float_bilinear
resize_uint8_bilinear = image_ops.resize_uint8_bilinear

TRICKY = [
    'a photo of a dog.', 'Café crème', 'naïve façade', '東京タワー',
    'emoji 🐶🐱 party', "don't won't it's we're I'll they've", 'dog\'s',
    '&amp; &lt;tag&gt; &amp;amp; AT&T', '<b>bold</b> &amp;', 'PÉREZ &EACUTE;',
    '&#x41;&#66; &notanentity;', 'ﬁsh ﬂower ĳs', 'ｆｕｌｌｗｉｄｔｈ ＡＢＣ１２３',
    '“curly” ‘quotes’', '\x93smart\x94', 'tab\tnew\nline  \r\n spaces',
    '  leading and trailing  ', 'x²³ ½ Ⅻ ٣٤', '12345 3.14', 'ǅemal',
    '<start_of_text> hi <end_of_text>', 'mixed-case HeLLo WORLD',
    'ümlaut Straße', '\u200bzero\u200bwidth', 'e\u0301 combining',
    'a\x00b\x07c\x1bd', 'hello\u2028world', 'Ελληνικά кириллица',
    'हिन्दी العربية', 'a' * 100, 'potted plant, tv monitor', ''
]


@pytest.fixture(scope='module')
def tokenizer():
    return ClipTokenizer(
        osp.join(
            osp.dirname(mmseg_tokenizer.__file__),
            'bpe_simple_vocab_16e6.txt.gz'))


@pytest.mark.parametrize('text', TRICKY)
def test_token_ids_equal_mmseg(tokenizer, text):
    assert tokenizer.encode(text) == mmseg_tokenizer._tokenizer.encode(text)


@pytest.mark.parametrize('texts,cut', [
    (['a photo of a cat.', 'word ' * 100, 'x'], [1]),
    (['a photo of a cat.', 'x'], []),
])
def test_tokenize_pads_and_cuts_as_mmseg(tokenizer, texts, cut):
    """mmseg's ids up to the longest text's end (the rest is padding)."""
    rows, cut_texts = tokenizer.tokenize(texts, context_length=77)
    ids = tokenize(texts, 77).numpy()
    length = int(ids.argmax(-1).max()) + 1
    assert np.array_equal(np.array(rows), ids[:, :length])
    assert not ids[:, length:].any()
    assert cut_texts == cut


def test_mojibake_is_refused_not_mistokenised(tokenizer):
    with pytest.raises(ValueError, match='decoded as'):
        tokenizer.encode('cafÃ© crÃ¨me')


def test_uint8_resize_equals_opencv():
    rng = np.random.default_rng(0)
    for case in range(40):
        height, width = (int(v) for v in rng.integers(2, 300, 2))
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if case % 8 == 0:  # an exact 2x reduction (OpenCV's area path)
            size = (width // 2 or 1, height // 2 or 1)
            image = image[:2 * size[1], :2 * size[0]].copy()
        else:
            size = tuple(int(v) for v in rng.integers(1, 500, 2))
        expected = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(resize_uint8_bilinear(image, size), expected)


def test_float_resize_equals_pytorch():
    """Every output size of a photo (height + width above 128: PyTorch
    runs another kernel below that, see docs/deployment.md), against
    PyTorch on two or more threads: on one thread, PyTorch's own result
    differs by one ulp for some sizes (38 % of the values of the
    31x197 -> 420x327 case below)."""
    torch.set_num_threads(2)  # the conftest fixture sets it for each test
    rng = np.random.default_rng(1)
    for _ in range(20):
        channels = int(rng.integers(1, 9))
        height, width = (int(v) for v in rng.integers(4, 200, 2))
        out = (int(rng.integers(65, 600)), int(rng.integers(65, 600)))
        maps = rng.random((channels, height, width), dtype=np.float32)
        expected = F.interpolate(
            torch.from_numpy(maps)[None],
            size=out,
            mode='bilinear',
            align_corners=False)[0].numpy()
        assert np.array_equal(resize_float_bilinear(maps, out), expected)


def test_rescale_size_equals_mmcv():
    for width, height in [(500, 375), (375, 500), (4000, 300), (448, 448),
                          (97, 1031), (2049, 449)]:
        expected = mmcv.rescale_size((width, height), (2048, 448))
        assert rescale_size(width, height, (2048, 448)) == tuple(expected)


def exif_rotated(path, tmp_path):
    image = Image.open(path)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    target = str(tmp_path / 'rotated.jpg')
    image.save(target, exif=exif, quality=90)
    return target


def test_decoding_equals_mmcv(tmp_path):
    photo = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')
    grey = str(tmp_path / 'grey.png')
    Image.open(photo).convert('L').save(grey)
    rgba = str(tmp_path / 'rgba.png')
    Image.open(photo).convert('RGBA').save(rgba)
    paths = [
        photo,
        osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000033.jpg'), grey, rgba,
        exif_rotated(photo, tmp_path)
    ]
    for path in paths:
        with open(path, 'rb') as f:
            expected = mmcv.imfrombytes(f.read(), flag='color')[..., ::-1]
        assert np.array_equal(image_ops.read_rgb(path), expected), path


@pytest.mark.parametrize('ext', ['.png', '.tif', '.pgm'])
def test_16_bit_grey_decodes_as_mmcv(tmp_path, ext):
    """Every 16-bit level, as tools/test.py and the demo read it (mmcv's
    default cv2 backend keeps the high byte): the same pixels, not a
    refusal (Pillow opens a 16-bit PGM as 32-bit 'I')."""
    levels = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    path = str(tmp_path / f'grey16{ext}')
    assert cv2.imwrite(path, levels)
    assert Image.open(path).mode in ('I;16', 'I;16B', 'I')
    with open(path, 'rb') as f:
        expected = mmcv.imfrombytes(f.read(), flag='color')[..., ::-1]
    assert np.array_equal(expected[..., 1], levels >> 8)  # independent
    assert np.array_equal(image_ops.read_rgb(path), expected)


def test_cmyk_jpeg_decodes_as_opencv(tmp_path):
    """mmcv (tools/test.py) reads images with cv2: a CMYK JPEG written by
    Pillow gives the runner OpenCV's pixels exactly (Pillow's conversion
    is one level apart at most pixels)."""
    path = str(tmp_path / 'cmyk.jpg')
    Image.open(osp.join(PHOTOS, 'groupvit_demo_voc.jpg')).convert('CMYK').save(
        path, quality=90)
    expected = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]
    assert (np.asarray(Image.open(path).convert('RGB')) != expected).any()
    assert np.array_equal(image_ops.read_rgb(path), expected)


@pytest.mark.parametrize('name, size, message', HOSTILE)
def test_runner_refuses_what_tools_test_refuses_before_decoding(
        tmp_path, name, size, message):
    """The runner reads images through the package's header check: a
    decompression bomb or a strip is refused before a pixel is decoded,
    with tools/test.py's words; a FIFO is named, not opened."""
    path = tmp_path / name
    path.write_bytes(crafted_png(*size))
    with pytest.raises(image_ops.UnreadableImage, match=message):
        image_ops.read_rgb(str(path))
    fifo = tmp_path / 'pipe.png'
    os.mkfifo(fifo)
    with pytest.raises(image_ops.UnreadableImage, match='a FIFO'):
        image_ops.read_rgb(str(fifo))
