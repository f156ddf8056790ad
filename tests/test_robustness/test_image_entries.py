# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Every way an image file enters the package (the loading transform of
``tools/test.py`` and the classification pipeline, the demo in both modes,
``inference_model`` and ``classify_image``) refuses a decompression bomb, a
long strip, a FIFO and a device by what the header or the file system says,
before any pixel is decoded.

The crafted PNGs hold two rows of pixel data: decoding them would claim
gigabytes (or, for the strip, produce a 100000-pixel-wide row that the
classification resize grows to gigabytes), and could at best report a
truncated file. The size named in each message therefore comes from the
header."""
import os
import os.path as osp
import re
import struct
import zlib

import pytest
from mmseg.apis import inference_model
from PIL import Image

from groupvit_common.errors import ImageLoadError
from groupvit_common.image_files import list_images
from mmseg_groupvit.apis import classify_image, init_classifier, init_groupvit
from mmseg_groupvit.datasets import RobustLoadImageFromFile
from tests.conftest import REPO, SMALL_ARCH, load_script

#: File, (width, height) stated in its header, what the message says.
HOSTILE = [
    ('bomb.png', (30000, 30000),
     '900,000,000 pixels, more than the 134,217,728 accepted'),
    ('strip.png', (100000, 4), '100000x4 pixels, more elongated than 64:1'),
    ('tower.png', (4, 100000), '4x100000 pixels, more elongated than 64:1')
]


def crafted_png(width, height):
    """An 8-bit RGB PNG whose header states ``width x height`` and whose
    data holds two rows."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xffffffff
        return struct.pack('>I', len(data)) + kind + data + struct.pack(
            '>I', crc)

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b'\0' * (1 + 3 * width) * 2)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
            chunk(b'IDAT', rows) + chunk(b'IEND', b''))


@pytest.fixture
def hostile(tmp_path):
    """A folder of the crafted PNGs (each a few hundred bytes)."""
    folder = tmp_path / 'in'
    folder.mkdir()
    for name, (width, height), _ in HOSTILE:
        (folder / name).write_bytes(crafted_png(width, height))
        assert (folder / name).stat().st_size < 2000
    return folder


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    """The VOC and ImageNet configs with the small architecture."""
    tmp = tmp_path_factory.mktemp('configs')
    arch = (f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r}, '
            f'text_encoder={SMALL_ARCH["text_encoder"]!r})\n')
    paths = []
    for name, base in (('seg.py', 'groupvit_voc.py'),
                       ('cls.py', 'classification/groupvit_imagenet.py')):
        (tmp /
         name).write_text(f'_base_ = [{osp.join(REPO, "configs", base)!r}]\n' +
                          arch)
        paths.append(str(tmp / name))
    return paths


@pytest.mark.parametrize('name, size, words', HOSTILE)
def test_loader_refuses_from_the_header(tmp_path, name, size, words):
    path = tmp_path / name
    path.write_bytes(crafted_png(*size))
    with pytest.raises(ImageLoadError) as info:
        RobustLoadImageFromFile()(dict(img_path=str(path)))
    assert str(info.value).startswith(f'{path} is {words}')
    # ignore_empty skips it, as it skips any bad file.
    assert RobustLoadImageFromFile(ignore_empty=True)(
        dict(img_path=str(path))) is None


def test_elongation_at_the_bound_loads(tmp_path):
    path = tmp_path / 'panorama.png'
    Image.new('RGB', (640, 10), (1, 2, 3)).save(path)
    assert RobustLoadImageFromFile()(
        dict(img_path=str(path)))['img'].shape == (10, 640, 3)
    Image.new('RGB', (641, 10)).save(path)
    with pytest.raises(ImageLoadError, match='more elongated than 64:1'):
        RobustLoadImageFromFile()(dict(img_path=str(path)))


def test_fifo_and_device_are_named_without_being_opened(tmp_path):
    fifo = tmp_path / 'photo.png'
    os.mkfifo(fifo)
    # Opening the FIFO would wait for a writer forever: the test would hang.
    for path, kind in ((fifo, 'a FIFO (named pipe)'), ('/dev/zero',
                                                       'a device')):
        with pytest.raises(ImageLoadError) as info:
            RobustLoadImageFromFile()(dict(img_path=str(path)))
        assert str(info.value).startswith(
            f'Cannot load image {path}: it is {kind}, not an image file.')
        with pytest.raises(ImageLoadError) as info:
            list_images([str(path)])
        assert str(info.value).startswith(
            f'{path} is {kind}, not an image file or a folder.')
    # Listed in a folder (its name ends in .png), it is named when loaded.
    assert list_images([str(tmp_path)]) == [str(fifo)]


@pytest.mark.parametrize('mode', ['segment', 'classify'])
def test_demo_refuses_each_before_decoding(hostile, configs, tmp_path, capsys,
                                           mode):
    seg, cls = configs
    os.mkfifo(hostile / 'pipe.png')
    argv = [str(hostile), '--random-weights', '--out', str(tmp_path / 'out')]
    argv += ['--config', cls, '--classify'
             ] if mode == 'classify' else ['--config', seg]
    with pytest.raises(SystemExit) as info:
        load_script('tools/demo.py').main(argv)
    assert str(info.value.code).startswith('error: 4 of 4 image(s)')
    errors = [
        line for line in capsys.readouterr().err.splitlines()
        if line.startswith('error: ')
    ]
    expected = [
        f'error: {hostile / name} is {words}' for name, _, words in HOSTILE
    ]
    expected.append(f'error: Cannot load image {hostile / "pipe.png"}: it '
                    f'is a FIFO (named pipe)')
    for start in expected:
        assert sum(line.startswith(start) for line in errors) == 1, start
    assert len(errors) == len(expected)


def test_inference_apis_refuse_before_decoding(hostile, configs):
    seg, cls = configs
    model = init_groupvit(seg, random_weights=True)
    classifier = init_classifier(cls, random_weights=True)
    for name, _, words in HOSTILE:
        path = str(hostile / name)
        start = re.escape(f'{path} is {words}')
        with pytest.raises(ImageLoadError, match=f'^{start}'):
            inference_model(model, path)
        with pytest.raises(ImageLoadError, match=f'^{start}'):
            classify_image(classifier, path)


def radiance_hdr(width, height):
    """A Radiance HDR file (a format OpenCV reads and Pillow does not) of
    black pixels, run-length encoded: about 6 bytes per row."""
    runs = bytearray()
    left = width
    while left:
        run = min(127, left)
        runs += bytes([128 + run, 0])
        left -= run
    row = bytes([2, 2, width >> 8, width & 255]) + bytes(runs) * 4
    return (b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n' +
            f'-Y {height} +X {width}\n'.encode() + row * height)


def test_opencv_decodes_within_the_package_bound(tmp_path):
    """A format whose header the package cannot read first is bounded by
    OpenCV itself: the start-up hook sets OPENCV_IO_MAX_IMAGE_PIXELS to the
    package's bound before OpenCV is imported."""
    import _mmseg_groupvit_mmcv_shim
    from groupvit_common.files import MAX_IMAGE_PIXELS
    assert _mmseg_groupvit_mmcv_shim.MAX_DECODE_PIXELS == MAX_IMAGE_PIXELS
    assert os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'] == str(MAX_IMAGE_PIXELS)
    small, bomb = tmp_path / 'small.hdr', tmp_path / 'bomb.hdr'
    small.write_bytes(radiance_hdr(64, 48))
    bomb.write_bytes(radiance_hdr(12000, 12000))  # 144,000,000 pixels
    assert bomb.stat().st_size < 10 * 2**20
    loaded = RobustLoadImageFromFile()(dict(img_path=str(small)))
    assert loaded['img'].shape == (48, 64, 3)
    with pytest.raises(ImageLoadError, match='bomb.hdr'):
        RobustLoadImageFromFile()(dict(img_path=str(bomb)))
