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


@pytest.mark.parametrize('options, expected', [
    (['--min-share', 'nan'], 'argument --min-share: must be a share in '
     '[0, 1], got nan'),
    (['--min-object', '1.5'], 'argument --min-object: must be a share in '
     '[0, 1], got 1.5'),
    (['--offset', '100'], '--offset 100 would give class 1 the label -99; '
     'give 0 to 1, the lowest class value not in --ignore.'),
    (['-o', '.'], '-o . is a folder; give the path of the list to write'),
    (['-o', 'no/list.txt'], 'which is no folder; give the path of the list'),
])
def test_bad_options_are_refused_before_reading(options, expected, tmp_path,
                                                monkeypatch, capsys):
    """A share of nan kept 22 images instead of 17, --offset 100 wrote
    labels such as -99, an -o folder or missing folder a traceback."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as error:
        tool.main([VOC_SAMPLE, '-o', 'list.txt', *options])
    assert error.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ': error: ' in last and expected in last, last
    assert not (tmp_path / 'list.txt').exists()


def test_a_split_list_not_in_utf8_is_one_error_line(tmp_path):
    (tmp_path / 'split.txt').write_bytes(b'caf\xe9\n')
    with pytest.raises(SystemExit) as error:
        tool.main([
            str(tmp_path), '-o',
            str(tmp_path / 'list.txt'), '--split', 'split.txt'
        ])
    assert str(error.value) == (
        f'error: the split list {tmp_path / "split.txt"} is not UTF-8 text '
        f'(byte 3); save it as UTF-8.')
