# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""One meaning of a left-out checkpoint in every tool: the config's weights
(its ``load_from``); random weights only with ``--random-weights``, said on
the console and recorded, for segmentation and classification configs."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from PIL import Image

from groupvit_common.tool_options import RANDOM_BANNER
from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            varied_segmentor)

TEST_PY = osp.join(REPO, 'tools', 'test.py')
CLS_LIST = osp.join(VOC_SAMPLE, 'ImageSets', 'Classification',
                    'val_dominant.txt')


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A small checkpoint and leaf configs (segmentation on one VOC image,
    classification on two) whose ``load_from`` is that checkpoint."""
    root = tmp_path_factory.mktemp('random_weights')
    init_default_scope('mmseg')
    checkpoint = str(root / 'small.pth')
    torch.save(
        dict(state_dict=varied_segmentor(seed=1).state_dict()), checkpoint)
    split = root / 'two.txt'
    split.write_text('2007_000033\n')
    with open(CLS_LIST) as f:
        (root / 'two_cls.txt').write_text(''.join(f.readlines()[:2]))
    arch = (f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r}, '
            f'text_encoder={SMALL_ARCH["text_encoder"]!r})\n'
            f'load_from = {checkpoint!r}\n')
    configs = {}
    for name, base, data in [
        ('seg', 'groupvit_voc.py',
         f'num_workers=0, persistent_workers=False, dataset=dict('
         f'data_root={VOC_SAMPLE!r}, ann_file={str(split)!r})'),
        ('cls', 'classification/groupvit_voc-dominant-sample.py',
         f'num_workers=0, dataset=dict(data_root={VOC_SAMPLE!r}, '
         f'ann_file={str(root / "two_cls.txt")!r})'),
    ]:
        configs[name] = str(root / f'{name}.py')
        with open(configs[name], 'w') as f:
            f.write(f'_base_ = [{osp.join(REPO, "configs", base)!r}]\n' +
                    arch + f'test_dataloader = dict({data})\n')
    return configs, checkpoint


def run(config, work_dir, *extra):
    """tools/test.py in this process: its results.json."""
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    tool.main([config, *extra, '--work-dir', str(work_dir)])
    with open(osp.join(work_dir, 'results.json')) as f:
        return json.load(f)


def predictions(folder):
    return {
        name: np.asarray(Image.open(osp.join(folder, name)))
        for name in sorted(os.listdir(folder))
    }


@pytest.mark.slow
def test_segmentation_random_weights_are_seeded_said_and_recorded(
        small, tmp_path, capsys):
    configs, checkpoint = small
    runs = {}
    for key, extra in [('seed1', ['--random-weights', '--seed', '1']),
                       ('seed1_again', ['--random-weights', '--seed', '1']),
                       ('seed2', ['--random-weights', '--seed', '2'])]:
        capsys.readouterr()
        record = run(configs['seg'], tmp_path / key, '--out',
                     str(tmp_path / key / 'pred'), *extra)
        runs[key] = (record, ''.join(capsys.readouterr()),
                     predictions(tmp_path / key / 'pred'))
    record, text, seed1 = runs['seed1']
    assert record['checkpoint'] == 'random (seed 1)'
    assert record['checkpoint_file'] is None
    assert record['random_weights'] == RANDOM_BANNER
    assert f'warning: {RANDOM_BANNER}' in text
    assert 'checkpoint  random (seed 1)' in text.splitlines()
    # The same seed gives the same model, another seed another one.
    again = runs['seed1_again'][2]
    assert all((seed1[k] == again[k]).all() for k in seed1)
    assert any((seed1[k] != runs['seed2'][2][k]).any() for k in seed1)


@pytest.mark.slow
def test_classification_left_out_is_the_configs_weights(
        small, tmp_path, capsys):
    configs, checkpoint = small
    given = run(configs['cls'], tmp_path / 'given', checkpoint)
    capsys.readouterr()
    left_out = run(configs['cls'], tmp_path / 'left_out')
    text = ''.join(capsys.readouterr())
    assert left_out['checkpoint'] == checkpoint
    assert left_out['metrics'] == given['metrics']
    assert left_out['random_weights'] is None and 'RANDOM' not in text
    random = run(configs['cls'], tmp_path / 'random', '--random-weights')
    assert random['checkpoint'] == 'random (seed 0)'
    assert random['random_weights'] == RANDOM_BANNER
    assert f'warning: {RANDOM_BANNER}' in ''.join(capsys.readouterr())


@pytest.mark.parametrize('config', ['seg', 'cls'])
def test_left_out_looks_for_the_configs_weights(config, small, tmp_path):
    """A config whose load_from is missing: the weights looked for are the
    config's, not random ones."""
    configs, _ = small
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(f'_base_ = [{configs[config]!r}]\n'
                    f'load_from = {str(tmp_path / "gone.pth")!r}\n')
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    with pytest.raises(SystemExit) as error:
        tool.main([str(leaf), '--work-dir', str(tmp_path / 'work')])
    assert str(error.value.code).startswith(
        f'error: checkpoint not found: {tmp_path / "gone.pth"}')
