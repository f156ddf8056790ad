# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot classification through ``tools/test.py`` on the shipped VOC
photos dominated by one class (``configs/classification/
groupvit_voc-dominant-sample.py``).

The reported top-1 / top-5 are checked against a recomputation that shares
nothing with the tool but the weights: the list file read by hand, the
images preprocessed with PIL as torchvision would (short side 256 bilinear,
center crop 224, ImageNet mean/std) and the model's logits ranked with
torch.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from PIL import Image

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            varied_segmentor)

LIST = osp.join(VOC_SAMPLE, 'ImageSets', 'Classification', 'val_dominant.txt')
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A small segmentor checkpoint (varied weights) and a leaf config of
    the sample classification config with its architecture."""
    root = tmp_path_factory.mktemp('cls_tool')
    init_default_scope('mmseg')
    segmentor = varied_segmentor(seed=1, text_encoder=True)
    checkpoint = str(root / 'small.pth')
    torch.save(dict(state_dict=segmentor.state_dict()), checkpoint)
    config = str(root / 'small_cls.py')
    base = osp.join(REPO, 'configs', 'classification',
                    'groupvit_voc-dominant-sample.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r},'
                f' text_encoder={SMALL_ARCH["text_encoder"]!r})\n'
                f'test_dataloader = dict(num_workers=0, dataset=dict('
                f'data_root={VOC_SAMPLE!r}))\n')
    return config, checkpoint, root


def preprocess(path):
    rgb = Image.open(path).convert('RGB')
    w, h = rgb.size
    size = (int(256 * w / h), 256) if h <= w else (256, int(256 * h / w))
    img = np.asarray(rgb.resize(size, Image.BILINEAR), dtype=np.float64)
    top, left = round((size[1] - 224) / 2), round((size[0] - 224) / 2)
    img = (img[top:top + 224, left:left + 224] - MEAN) / STD
    return torch.from_numpy(img.transpose(2, 0, 1)).float()


def test_top1_top5_equal_a_recomputation(small):
    config, checkpoint, root = small
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir',
        str(root / 'run')
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(root / 'run' / 'results.json') as f:
        record = json.load(f)

    with open(LIST) as f:
        pairs = [line.split() for line in f if line.strip()]
    labels = torch.tensor([int(label) for _, label in pairs])
    images = torch.stack(
        [preprocess(osp.join(VOC_SAMPLE, name)) for name, _ in pairs])
    model = MODELS.build(ConfigDict(Config.fromfile(config).model)).eval()
    load_checkpoint(model, checkpoint, map_location='cpu')
    with torch.no_grad():
        logits = model(images, mode='tensor')
    ranked = logits.argsort(dim=1, descending=True)
    top1 = float((ranked[:, 0] == labels).float().mean() * 100)
    top5 = float(
        (ranked[:, :5] == labels[:, None]).any(1).float().mean() * 100)

    assert len(set(ranked[:, 0].tolist())) > 1  # predictions vary
    assert record['images'] == len(pairs) == 17
    assert record['metrics']['accuracy/top1'] == pytest.approx(top1, abs=1e-3)
    assert record['metrics']['accuracy/top5'] == pytest.approx(top5, abs=1e-3)
    assert record['protocol']['task'] == 'classification'
    assert record['protocol']['resize'] == dict(scale=256, edge='short')
    assert record['protocol']['crop'] == 224
    assert record['protocol']['templates'] == 'subset'


def test_bad_list_is_one_error_line_and_random_weights_are_said(
        small, tmp_path, capsys):
    config, _, _ = small
    (tmp_path / 'list.txt').write_text('JPEGImages/2007_000033.jpg 20\n')
    tool = load_script('tools/test_classification.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            config, '--work-dir',
            str(tmp_path), '--cfg-options',
            f'test_dataloader.dataset.ann_file={tmp_path / "list.txt"}'
        ])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert 'label 20 is out of range for 20 classes' in message
    assert 'RANDOM' in capsys.readouterr().err


def test_missing_checkpoint_is_one_error_line(small):
    tool = load_script('tools/test_classification.py')
    with pytest.raises(SystemExit, match='^error: checkpoint not found'):
        tool.main([small[0], 'nowhere.pth'])
