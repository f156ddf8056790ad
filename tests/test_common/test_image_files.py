# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The images a folder holds for the demo and the onnxruntime runner."""
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from groupvit_common.image_files import list_images, unique_stems


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
