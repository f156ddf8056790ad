# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The images a folder holds for the demo and the onnxruntime runner."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from groupvit_common.drawing import save_pngs
from groupvit_common.errors import DataFileError
from groupvit_common.image_files import (list_images, unique_stems,
                                         written_by_a_tool)


def png(path, software=None):
    info = PngInfo()
    if software is not None:
        info.add_text('Software', software)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, pnginfo=info)
    return str(path)


def test_a_folder_lists_photos_not_the_pictures_the_tools_wrote(tmp_path):
    """The demo's and the runner's outputs are skipped in a folder (a second
    run into the input folder would segment them); other PNGs are photos,
    and a picture named as a file is taken as given."""
    photo = png(tmp_path / 'a_photo.png')
    edited = png(tmp_path / 'b_edited.png', 'GIMP 2.10')
    demo = png(tmp_path / 'c_overlay.png', 'mmseg-groupvit tools/demo.py')
    runner = png(tmp_path / 'c_prediction.png',
                 'mmseg-groupvit tools/deployment/onnx_segment.py')
    assert list_images([str(tmp_path)]) == [photo, edited]
    assert list_images([demo, runner]) == [demo, runner]


def test_output_stems_are_unique_and_never_another_inputs():
    """Two inputs named ``x`` and a third named ``x_2``: the second ``x``
    may not take ``x_2`` (its pictures would overwrite the third's);
    ``X`` and ``x`` are one name on a case-insensitive file system."""
    assert unique_stems(['a/x.jpg', 'b/x.jpg',
                         'x_2.png']) == ['x', 'x_3', 'x_2']
    assert unique_stems(['x_2.png', 'a/x.jpg',
                         'b/x.jpg']) == ['x_2', 'x', 'x_3']
    assert unique_stems(['a/X.jpg', 'b/x.jpg',
                         'c/x.png']) == ['X', 'x_2', 'x_3']
    assert unique_stems(['p.jpg', 'q.jpg']) == ['p', 'q']


def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack(
        '>I', zlib.crc32(kind + data))


def test_a_picture_is_known_by_its_text_before_the_pixels(tmp_path):
    """A demo panel of a 48-megapixel photo is larger than Pillow opens
    (a decompression bomb to it): its Software text still tells."""
    header = struct.pack('>IIBBBBB', 32018, 6030, 8, 2, 0, 0, 0)
    for software, ours in (('mmseg-groupvit tools/demo.py', True),
                           ('GIMP 2.10', False)):
        path = tmp_path / f'{ours}_panel.png'
        path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
                         chunk(b'tEXt', b'Software\0' + software.encode()) +
                         chunk(b'IEND', b''))
        with pytest.raises(Image.DecompressionBombError):
            Image.open(path)
        assert written_by_a_tool(str(path)) is ours


def test_pictures_replace_only_the_tools_own_or_empty_files(tmp_path):
    """Nothing is written when one name is a file of the user's; an empty
    file (a write cut short) and the tools' own pictures are replaced."""
    picture = Image.new('RGB', (4, 4))
    text = dict(Software='mmseg-groupvit tools/demo.py')
    (tmp_path / 'a_overlay.png').write_bytes(b'')
    png(tmp_path / 'a_groups_stage1.png', 'mmseg-groupvit tools/demo.py')
    png(tmp_path / 'a_prediction.png')  # the user's
    kinds = ('overlay', 'groups_stage1', 'prediction')
    with pytest.raises(DataFileError, match='a_prediction.png exists and was'):
        save_pngs(str(tmp_path), 'a', {k: (picture, text) for k in kinds})
    assert (tmp_path / 'a_overlay.png').read_bytes() == b''
    (tmp_path / 'a_prediction.png').unlink()
    save_pngs(str(tmp_path), 'a', {k: (picture, text) for k in kinds})
    assert all(written_by_a_tool(str(tmp_path / f'a_{k}.png')) for k in kinds)
