# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Validation during pretraining: VOC zero-shot mIoU, plus ImageNet
zero-shot top-1 when the configured ImageNet folder exists
(:class:`ZeroShotValLoop`), through tools/train.py with the smoke config."""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
from PIL import Image

from mmseg_groupvit.apis.classification import init_classifier
from tests.conftest import REPO, load_script

SMOKE = osp.join(REPO, 'configs', 'pretrain', 'groupvit_samples_smoke.py')
CLASSIFICATION = osp.join(REPO, 'configs', 'classification',
                          'groupvit_imagenet.py')
WNIDS = ('n01440764', 'n01443537', 'n01484850')


def imagenet_folder(root):
    """``root/val/<wnid>/*.JPEG``: 3 classes of 2 random images."""
    rng = np.random.default_rng(0)
    for wnid in WNIDS:
        folder = root / 'val' / wnid
        folder.mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f'{wnid}_{i}.JPEG')
    return root


def train(work_dir, imagenet, *options):
    """One training step of 8 images, then one validation."""
    return load_script(
        osp.join(REPO, 'tools', 'train.py'), 'zero_shot_val_train').main([
            SMOKE, '--work-dir',
            str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1', 'train_dataloader.dataset.indices=8',
            'val_dataloader.dataset.indices=2',
            'default_hooks.checkpoint.interval=1',
            f'val_cfg.classification.data_root={imagenet}', *options
        ])


def validation(work_dir):
    """``{metric: value}`` of the run's one validation, and its log (read
    from the log file: mmengine writes its scalar file only for the first
    runner of a process)."""
    log = open(glob.glob(osp.join(work_dir, '*', '*.log'))[0]).read()
    lines = [line for line in log.splitlines() if ' mIoU: ' in line]
    assert len(lines) == 1, lines
    return dict(re.findall(r'(\S+): ([\d.]+)', lines[0])), log


@pytest.mark.slow
def test_imagenet_top1_is_validated_beside_voc_miou(tmp_path):
    # The ImageNet protocol with one template (1000 prompts, not 7000).
    config = tmp_path / 'imagenet_simple.py'
    config.write_text(f'''_base_ = [{CLASSIFICATION!r}]
model = dict(text_encoder=dict(templates='simple'))
''')
    work_dir = tmp_path / 'train'
    runner = train(work_dir, imagenet_folder(tmp_path / 'imagenet'),
                   f'val_cfg.classification.config={config}')
    metrics, log = validation(work_dir)
    # k of the 6 images right, among the 1000 classes prompted.
    top1 = float(metrics['imagenet/accuracy/top1'])
    assert min(abs(top1 - 100 * k / 6) for k in range(7)) < 1e-3
    assert {'mIoU', 'imagenet/accuracy/top5'} <= set(metrics)
    assert 'Validation skips' not in log
    # The classifier is the one of the saved checkpoint, as zero-shot
    # classification builds it.
    saved = init_classifier(str(config), str(work_dir / 'epoch_1.pth'))
    images = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(
        runner.val_loop.classifier.logits(images),
        saved.logits(images),
        rtol=0,
        atol=0)


def test_without_the_imagenet_folder_only_voc_runs_and_the_skip_is_named(
        tmp_path):
    missing = tmp_path / 'no_imagenet'
    work_dir = tmp_path / 'train'
    train(work_dir, missing)
    metrics, log = validation(work_dir)
    assert 'mIoU' in metrics
    assert not [k for k in metrics if k.startswith('imagenet/')]
    message = (f'Validation skips imagenet zero-shot classification: '
               f'{missing} not found (val_cfg.classification.data_root).')
    assert log.count(message) == 1


def test_a_classification_config_that_does_not_read_is_one_error_line(
        tmp_path):
    """Read and checked as every config is, before the first step."""
    missing = tmp_path / 'no_config.py'
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'train', imagenet_folder(tmp_path / 'imagenet'),
              f'val_cfg.classification.config={missing}')
    message = str(info.value.code)
    assert message.startswith('error: ') and str(missing) in message
    assert '\n' not in message
    assert not glob.glob(str(tmp_path / 'train' / '*.pth'))


def test_a_vocabulary_that_does_not_fit_the_classification_data_is_refused(
        tmp_path):
    """Before the first step. Reading the config cannot check it: the
    config-time check does not know the classifier's ``imagenet``."""
    config = tmp_path / 'folders.py'
    config.write_text(f'''_base_ = [{CLASSIFICATION!r}]
test_dataloader = dict(dataset=dict(type='CustomDataset'))
''')
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'train', imagenet_folder(tmp_path / 'imagenet'),
              f'val_cfg.classification.config={config}')
    message = str(info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert 'scores 1000 classes but the dataset has 3' in message
    assert not glob.glob(str(tmp_path / 'train' / '*.pth'))


def test_the_loop_is_mmengines_with_the_classification_joined():
    """mmengine's ``ValLoop.run``: the losses a model returns in
    ``val_step`` are averaged per validation (``val_loss``) beside the
    segmentation and classification metrics, all given to the hooks."""
    from mmengine.evaluator import BaseMetric, Evaluator
    from mmengine.structures import BaseDataElement

    from mmseg_groupvit.engine import ZeroShotValLoop

    class Count(BaseMetric):

        def process(self, data_batch, data_samples):
            self.results += data_samples

        def compute_metrics(self, results):
            return dict(images=len(results))

    class Model(torch.nn.Module):
        losses = iter(range(1, 9))

        def val_step(self, batch):
            loss = torch.tensor(float(next(self.losses)))
            return [dict(batch), BaseDataElement(loss=dict(loss=loss))]

    class Runner:
        model, visualizer, seen = Model(), type('V', (), {})(), []

        def call_hook(self, name, **kwargs):
            self.seen.append(kwargs.get('metrics'))

    class Loader(list):
        dataset = type('D', (list, ),
                       dict(metainfo=dict(classes=['a'])))([0, 1])

    runner = Runner()
    loop = ZeroShotValLoop(runner, Loader([dict(i=0), dict(i=1)]),
                           Evaluator(Count()))
    loop.classifier = 'built'
    loop.classify = lambda: {'imagenet/accuracy/top1': 50.0}
    first, second = loop.run(), loop.run()
    assert first == {
        'images': 2,
        'imagenet/accuracy/top1': 50.0,
        'loss': 1.5,
        'val_loss': 1.5
    }
    # Each validation averages its own losses.
    assert second['val_loss'] == 3.5 and runner.seen[-2] is second
    assert 'evaluate' not in vars(loop.evaluator)
