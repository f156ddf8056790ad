# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/dataset_converters/dominant_class.py writes the shipped
classification list of the VOC sample."""
import os.path as osp

import numpy as np

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
