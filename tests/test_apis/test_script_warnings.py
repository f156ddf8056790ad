# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A user's script of two calls (build a model, segment a photo) prints its
result and no warning about the libraries' own code: setuptools'
``pkg_resources`` notice, mmseg's ``build_loss`` and ``avg_non_ignore``
notices, and the class names mmseg's ``init_model`` guesses from another
dataset (Cityscapes for a custom vocabulary)."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import HF_SMALL, PHOTOS, REPO

SCRIPT = '''
from mmengine.config import Config
from mmseg.apis import inference_model, init_model
from mmseg_groupvit.apis import init_groupvit

photo = {photo!r}
# mmseg's API on a converted checkpoint, the config of its architecture.
cfg = Config.fromfile({config!r})
model = init_model(cfg, {checkpoint!r}, device='cpu')
print(inference_model(model, photo).pred_sem_seg.shape)
# Ours, with a custom vocabulary (3 classes: no dataset has that many).
model = init_groupvit({config!r}, {checkpoint!r},
                      vocabulary=['person, rider', 'bicycle', 'road'])
print(inference_model(model, photo).pred_sem_seg.shape)
# A fine-tuned FCN config (mmseg's cross-entropy loss), no weights.
init_model({fcn!r}, device='cpu')
print('done')
'''


@pytest.mark.slow
def test_a_two_call_script_prints_no_library_warning(tmp_path):
    transformers = pytest.importorskip('transformers')
    import torch

    from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
    torch.manual_seed(0)
    transformers.GroupViTModel(transformers.GroupViTConfig(
        **HF_SMALL)).save_pretrained(str(tmp_path / 'hf'))
    result = convert_checkpoint(
        str(tmp_path / 'hf'),
        str(tmp_path / 'small.pth'),
        base_config=osp.join(REPO, 'configs', 'groupvit_voc.py'))
    script = tmp_path / 'script.py'
    script.write_text(
        SCRIPT.format(
            photo=osp.join(PHOTOS, 'groupvit_demo_voc.jpg'),
            config=result['config'],
            checkpoint=str(tmp_path / 'small.pth'),
            fcn=osp.join(REPO, 'configs', 'finetune',
                         'fcn_groupvit_voc-sample_smoke.py')))
    proc = subprocess.run([sys.executable, str(script)],
                          cwd=str(tmp_path),
                          env=dict(os.environ, OMP_NUM_THREADS='1'),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == 'done', proc.stdout
    assert proc.stdout.count('(448, 448)') == 2, proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if 'Warning' in line]
    assert warnings == [], proc.stderr
