# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A checkpoint's config strings are data: mmengine runs them as Python
(``Config.fromstring(..., '.py')``) in ``MMSegInferencer(model=None)``
(``meta['cfg']``, ``message_hub.runtime_info.cfg``) and in
``Runner.resume`` (``meta['config']``, for its GPU count). A real training
checkpoint (one iteration of ``tools/train.py``) gets code before its
config in each string; every route a user takes must leave the marker file
uncreated, and only the per-file trust lets the code run."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmseg_groupvit.weights import trust_checkpoint
from mmseg_groupvit.weights.safe_load import (REFUSED_CONFIG,
                                              neutralise_config_strings)
from tests.conftest import REPO, load_script, serve_folder


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    """``(config, checkpoint, marker)``: the checkpoint of a one-iteration
    run with code in its config strings and an OmegaConf ``dataset_meta``
    (which Runner.resume pickles)."""
    from tests.test_finetune import _train_config
    omegaconf = pytest.importorskip('omegaconf')
    root = tmp_path_factory.mktemp('config_strings')
    torch.set_num_threads(1)
    config = _train_config(root, None, iters=1)
    load_script('tools/train.py').main(
        [config, '--work-dir', str(root / 'train')])
    checkpoint = torch.load(root / 'train' / 'iter_1.pth', weights_only=False)
    marker = str(root / 'MARKER')
    code = f'open({marker!r}, "w").close()\n'
    meta = checkpoint['meta']
    meta['cfg'] = code + meta['cfg']  # a working config after the code
    checkpoint['message_hub']['runtime_info']['cfg'] = meta['cfg']
    meta['config'] = code + 'gpu_ids = [0]\n'
    meta['dataset_meta'] = omegaconf.OmegaConf.create({
        k:
        list(v) if isinstance(v, tuple) else v
        for k, v in meta['dataset_meta'].items()
    })
    path = str(root / 'site' / 'hostile.pth')
    os.makedirs(osp.dirname(path))
    torch.save(checkpoint, path)
    # Live: mmengine runs each string.
    for text in (meta['cfg'], meta['config']):
        Config.fromstring(text, '.py')
        assert osp.exists(marker)
        os.remove(marker)
    return config, path, marker


def test_strings_are_replaced_by_data_or_a_refusal():
    checkpoint = dict(
        meta=dict(
            cfg='import os', config='x = 1\ngpu_ids = [0, 3]\nimport os\n'),
        message_hub=dict(runtime_info=dict(cfg='import os')))
    neutralise_config_strings(checkpoint)
    assert checkpoint == dict(
        meta=dict(cfg=REFUSED_CONFIG, config='gpu_ids = [0, 3]\n'),
        message_hub=dict(runtime_info=dict(cfg=REFUSED_CONFIG)))
    for text in ('gpu_ids = range(2)', 'gpu_ids = [0, "a"]', '(' * 10**5, 3):
        checkpoint = dict(meta=dict(config=text))
        neutralise_config_strings(checkpoint)
        assert checkpoint == dict(meta={})


@pytest.mark.slow
def test_inferencer_without_a_config_asks_for_it(hostile, tmp_path,
                                                 monkeypatch):
    from mmseg.apis import MMSegInferencer
    config, path, marker = hostile
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    with serve_folder(osp.dirname(path)) as (base, _):
        for weights in (path, f'{base}/hostile.pth'):
            with pytest.raises(ValueError, match='Give the config file'):
                MMSegInferencer(model=None, weights=weights, device='cpu')
            assert not osp.exists(marker)
    # With the config it works.
    MMSegInferencer(model=config, weights=path, device='cpu')
    # Trusting the file lets its code run: the trust is the one door.
    trust_checkpoint(path)
    try:
        MMSegInferencer(model=None, weights=path, device='cpu')
        assert osp.exists(marker)
    finally:
        from mmseg_groupvit.weights import safe_load
        safe_load._TRUSTED.clear()
        if osp.exists(marker):
            os.remove(marker)


@pytest.mark.slow
def test_training_resumes_without_running_the_strings(hostile, tmp_path):
    """tools/train.py --resume with load_from, and auto-resume from a work
    dir whose last_checkpoint names the file; a user's script with
    mmengine's Runner and resume=True."""
    from mmengine.runner import Runner
    config, path, marker = hostile
    train = load_script('tools/train.py')
    runner = train.main([
        config, '--resume', '--work-dir',
        str(tmp_path / 'a'), '--cfg-options', f'load_from={path}'
    ])
    assert runner.iter == 1 and not osp.exists(marker)
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'last_checkpoint').write_text(path)
    runner = train.main(
        [config, '--resume', '--work-dir',
         str(tmp_path / 'b')])
    assert runner.iter == 1 and not osp.exists(marker)
    cfg = Config.fromfile(config)
    cfg.update(work_dir=str(tmp_path / 'c'), load_from=path, resume=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1 and not osp.exists(marker)


@pytest.mark.slow
def test_test_tool_resuming_a_fine_tuning_run(hostile, tmp_path):
    """tools/test.py with a fine-tuning config (it has a training loop, so
    mmengine resumes the training state) and --resume, as a user runs it."""
    config, path, marker = hostile
    proc = subprocess.run([
        sys.executable, 'tools/test.py', config, path, '--resume',
        '--work-dir',
        str(tmp_path / 'test')
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not osp.exists(marker)
