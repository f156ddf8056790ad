# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/dataset_converters/dominant_class.py writes the shipped
classification list of the VOC sample."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, VOC_SAMPLE, load_script

tool = load_script(
    osp.join(REPO, 'tools', 'dataset_converters', 'dominant_class.py'))


def test_rule():
    labels = np.zeros((10, 10), np.uint8)
    labels[:4] = 3
    labels[4, :2] = 5
    assert tool.dominant_class(labels) == (3, 40 / 42)
    assert tool.dominant_class(labels, min_share=0.99) is None
    assert tool.dominant_class(np.zeros((10, 10), np.uint8)) is None


def test_makes_the_shipped_list(tmp_path, capsys):
    out = tmp_path / 'list.txt'
    tool.main([VOC_SAMPLE, '-o', str(out)])
    shipped = osp.join(VOC_SAMPLE, 'ImageSets', 'Classification',
                       'val_dominant.txt')
    assert out.read_text() == open(shipped).read()
    assert '17 of 25 images kept' in capsys.readouterr().out


@pytest.mark.parametrize('case', ['missing', 'damaged', 'colour'])
def test_a_bad_label_map_is_one_error_line(tmp_path, case):
    (tmp_path / 'split.txt').write_text('a\n')
    (tmp_path / 'SegmentationClass').mkdir()
    seg = tmp_path / 'SegmentationClass' / 'a.png'
    if case == 'damaged':
        seg.write_bytes(b'not a png')
    elif case == 'colour':  # VOC's colours: would be listed as class 191
        colours = np.zeros((4, 4, 3), np.uint8)
        colours[...] = (192, 128, 128)
        Image.fromarray(colours).save(seg)
    with pytest.raises(SystemExit) as error:
        tool.main([
            str(tmp_path), '-o',
            str(tmp_path / 'list.txt'), '--split', 'split.txt'
        ])
    expected = dict(
        missing=f'error: label map not found: {seg} (its name is in the '
        f'split list); check --seg-dir and --seg-suffix.',
        damaged=f'error: cannot decode the label map {seg} (cannot identify '
        f'image file',
        colour=f'error: Label map {seg} has 3 channels (a colour picture of '
        f'the labels?): label maps must be single-channel index maps')[case]
    assert str(error.value).startswith(expected)
    assert '\n' not in str(error.value)
    assert not (tmp_path / 'list.txt').exists()
