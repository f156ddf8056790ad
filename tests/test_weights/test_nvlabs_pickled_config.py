# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The released NVlabs checkpoints pickle an OmegaConf config next to the
weights: they load safely (no code runs) and the config gives the
architecture."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import REPO

omegaconf = pytest.importorskip('omegaconf')


@pytest.fixture(scope='module')
def released_style_checkpoint(fixture_a, tmp_path_factory):
    """The fixture's NVlabs weights saved the way the NVlabs training code
    saves them: with the OmegaConf config and training state."""
    with open(osp.join(fixture_a, 'nvlabs_config.json')) as f:
        config = omegaconf.OmegaConf.create(dict(model=json.load(f)['model']))
    weights = torch.load(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'), weights_only=True)['model']
    path = tmp_path_factory.mktemp('nvlabs') / 'group_vit.pth'
    torch.save(dict(model=weights, config=config, epoch=29, metrics={}), path)
    return path


@pytest.mark.slow
def test_converts_without_unpickling_code(released_style_checkpoint, fixture_a,
                                          tmp_path):
    # omegaconf is hidden from the converter's process: nothing of it runs.
    script = ('import sys; sys.modules["omegaconf"] = None; '
              'sys.argv = ["convert_weights.py"] + sys.argv[1:]; '
              f'sys.path.insert(0, {REPO!r}); '
              'import runpy; runpy.run_path('
              f'{osp.join(REPO, "tools", "convert_weights.py")!r}, '
              'run_name="__main__")')
    out = tmp_path / 'converted.pth'
    proc = subprocess.run([
        sys.executable, '-c', script,
        str(released_style_checkpoint),
        str(out)
    ],
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'assumed' not in proc.stdout  # heads came from the config
    ours = torch.load(out)
    assert ours['meta']['groupvit_arch']['image_encoder'][
        'num_attention_heads'] == 4
    reference = tmp_path / 'hf.pth'
    convert_checkpoint(osp.join(fixture_a, 'hf'), str(reference))
    expected = torch.load(reference)['state_dict']
    # The NVlabs file keeps its training-only temperature; transformers'
    # has none.
    assert 'multi_label_logit_scale' in ours['state_dict']
    del ours['state_dict']['multi_label_logit_scale']
    assert ours['state_dict'].keys() == expected.keys()
    assert all(
        torch.equal(v, expected[k]) for k, v in ours['state_dict'].items())
