# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""No evaluation work lost, and the same labels every time.

``tools/test.py`` runs on 12 images of the VOC sample with a small random
GroupViT (images resized to a short side of 224 and 224 windows, to keep it
quick): once uninterrupted; once stopped with Ctrl-C, resumed, SIGKILLed and
resumed again; and once with two processes. Metrics and every predicted
label map must be identical.
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from PIL import Image

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            shell_signals, varied_segmentor, vary_weights)

# Runs of the tools over the shipped samples: the full suite only.
pytestmark = pytest.mark.slow

TEST_PY = osp.join(REPO, 'tools', 'test.py')
NUM_IMAGES = 12

CONFIG = """_base_ = {base!r}
model = dict(
    image_encoder={image_encoder!r},
    text_encoder={text_encoder!r},
    test_cfg=dict(crop_size=(224, 224), stride=(112, 112), bg_thresh=0.5))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root={data_root!r},
        indices={num_images},
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(1024, 224), keep_ratio=True),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ]))
default_hooks = dict(logger=dict(interval=1))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    config = root / 'small_voc.py'
    config.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs', 'groupvit_voc.py'),
            data_root=VOC_SAMPLE,
            num_images=NUM_IMAGES,
            **SMALL_ARCH))
    checkpoint = root / 'small.pth'
    init_default_scope('mmseg')
    torch.save(
        dict(state_dict=varied_segmentor().state_dict(), meta={}), checkpoint)
    return root, str(config), str(checkpoint)


def command(config, checkpoint, work_dir, *extra):
    return [
        sys.executable, TEST_PY, config, checkpoint, '--work-dir',
        str(work_dir), '--out',
        str(work_dir / 'pred'), *extra
    ]


def run(cmd, **kwargs):
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, timeout=300, **kwargs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def load_run(work_dir):
    with open(work_dir / 'results.json') as f:
        results = json.load(f)
    preds = {
        name: np.asarray(Image.open(work_dir / 'pred' / name))
        for name in sorted(os.listdir(work_dir / 'pred'))
    }
    return results, preds


def progress_lines(work_dir):
    path = work_dir / 'progress' / 'rank0.jsonl'
    if not path.exists():
        return 0
    return path.read_bytes().count(b'\n')


@pytest.fixture(scope='module')
def uninterrupted(setup):
    root, config, checkpoint = setup
    work_dir = root / 'uninterrupted'
    run(command(config, checkpoint, work_dir))
    results, preds = load_run(work_dir)
    assert len(preds) == NUM_IMAGES
    # Not a trivial prediction: several classes are predicted.
    assert len(np.unique(np.concatenate([p.ravel()
                                         for p in preds.values()]))) > 3
    return results, preds


def interrupt(cmd, work_dir, at_least, sig):
    """Start ``cmd``, send ``sig`` once ``at_least`` images are recorded."""
    proc = subprocess.Popen(
        cmd,
        preexec_fn=shell_signals,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True)
    deadline = time.time() + 240
    while progress_lines(work_dir) < at_least and proc.poll() is None:
        assert time.time() < deadline, 'the evaluation made no progress'
        time.sleep(0.02)
    proc.send_signal(sig)
    stderr = proc.communicate()[1]
    done = progress_lines(work_dir)
    assert at_least <= done < NUM_IMAGES, 'stopped too late to test resuming'
    return proc.returncode, stderr, done


def test_interrupted_and_killed_evaluation_resumes_with_the_same_metrics(
        setup, uninterrupted):
    """Ctrl-C after 3 images, resume, SIGKILL 3 images later, resume to the
    end: the metrics and every label map equal an uninterrupted run's."""
    root, config, checkpoint = setup
    work_dir = root / 'killed'
    returncode, stderr, first = interrupt(
        command(config, checkpoint, work_dir), work_dir, 3, signal.SIGINT)
    assert returncode == 1
    assert 'interrupted: the images evaluated so far are recorded in' in \
        stderr and '--resume' in stderr
    assert 'Traceback' not in stderr
    returncode, _, done = interrupt(
        command(config, checkpoint, work_dir, '--resume'), work_dir, first + 3,
        signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert not (work_dir / 'results.json').exists()

    resumed = run(command(config, checkpoint, work_dir, '--resume'))
    log = resumed.stdout + resumed.stderr
    left = NUM_IMAGES - done
    assert f'{done} already evaluated in this work dir, {left} to go' in log
    # Only the remaining images were evaluated again.
    assert f'test: {left}/{left} images' in log
    assert progress_lines(work_dir) == NUM_IMAGES

    results, preds = load_run(work_dir)
    expected_results, expected_preds = uninterrupted
    assert results['metrics'] == expected_results['metrics']
    assert results['per_class'] == expected_results['per_class']
    assert preds.keys() == expected_preds.keys()
    for name, pred in preds.items():
        np.testing.assert_array_equal(pred, expected_preds[name], name)


def test_resume_refuses_another_checkpoint(setup, uninterrupted, tmp_path):
    """One ``error:`` line (in process: what a user sees of such an exit is
    tested with tools/test.py's other errors)."""
    root, config, checkpoint = setup
    other = tmp_path / 'other.pth'
    torch.save(
        dict(state_dict=varied_segmentor(seed=1).state_dict(), meta={}), other)
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    with pytest.raises(SystemExit) as error:
        tool.main(
            command(config, str(other), root / 'uninterrupted',
                    '--resume')[2:])
    message = str(error.value.code)
    assert message.startswith('error: Cannot resume') and '\n' not in message
    assert 'with a different checkpoint file' in message


def test_two_processes_give_the_same_labels(setup, uninterrupted):
    root, config, checkpoint = setup
    work_dir = root / 'two_processes'
    run([
        sys.executable, '-m', 'torch.distributed.run', '--standalone',
        '--nproc_per_node=2', *command(config, checkpoint, work_dir)[1:],
        '--launcher', 'pytorch'
    ])
    results, preds = load_run(work_dir)
    expected_results, expected_preds = uninterrupted
    assert results['processes'] == 2
    assert results['metrics'] == expected_results['metrics']
    assert preds.keys() == expected_preds.keys()
    for name, pred in preds.items():
        np.testing.assert_array_equal(pred, expected_preds[name], name)


@pytest.mark.parametrize('arch', ['small', 'default'])
def test_window_batches_give_the_same_labels(arch):
    """Slide windows batched through the backbone (``window_batch``) give
    the labels of one window at a time, bit for bit."""
    init_default_scope('mmseg')
    if arch == 'small':
        model, size = varied_segmentor(), (224, 1024)
    else:
        torch.manual_seed(0)
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'groupvit_voc.py'))
        model = MODELS.build(ConfigDict(cfg.model)).eval()
        model.init_weights()
        vary_weights(model, seed=1, text_encoder=True)
        size = (224, 448)
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(size[1], size[0]), keep_ratio=True),
        dict(type='PackSegInputs')
    ])
    names = ['2007_000129', '2007_000033'][:2 if arch == 'small' else 1]
    labels = {}
    for name in names:
        data = pipeline(
            dict(img_path=osp.join(VOC_SAMPLE, 'JPEGImages', name + '.jpg')))
        batch = model.data_preprocessor(pseudo_collate([data]), False)
        for per_pass in (1, 3):
            model.test_cfg = ConfigDict(
                mode='slide',
                crop_size=(224, 224),
                stride=(112, 112),
                bg_thresh=0.5,
                window_batch=per_pass)
            with torch.no_grad():
                result = model.predict(
                    batch['inputs'],
                    [s.clone() for s in batch['data_samples']])[0]
            labels.setdefault(name, []).append(result.pred_sem_seg.data)
    for name, maps in labels.items():
        # Not trivial: background and at least one class are predicted.
        assert (maps[0] == 0).any() and (maps[0] > 0).any(), name
        for other in maps[1:]:
            assert torch.equal(other, maps[0]), name
