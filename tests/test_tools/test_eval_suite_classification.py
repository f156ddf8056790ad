# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/eval_suite.py with a classification config: its row carries the
run's top-1 / top-5 and the classification protocol."""
import csv
import json
import os.path as osp

import pytest
import torch
from mmengine.registry import init_default_scope

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, run_main,
                            varied_segmentor)


@pytest.mark.slow
def test_classification_row(tmp_path):
    init_default_scope('mmseg')
    checkpoint = str(tmp_path / 'small.pth')
    torch.save(
        dict(state_dict=varied_segmentor(seed=4).state_dict()), checkpoint)
    config = str(tmp_path / 'cls_small.py')
    base = osp.join(REPO, 'configs', 'classification',
                    'groupvit_voc-dominant-sample.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r},'
                f' text_encoder={SMALL_ARCH["text_encoder"]!r})\n'
                f'test_dataloader = dict(num_workers=0)\n')
    out = tmp_path / 'out'
    result, text = run_main(
        osp.join(REPO, 'tools', 'eval_suite.py'), [
            config, '--checkpoints', checkpoint, '--out-dir', out,
            '--data-root', f'cls_small={VOC_SAMPLE}', '--nproc', '2'
        ])
    assert result == 0, text[-3000:]
    with open(out / 'results.csv', newline='') as f:
        (row, ) = list(csv.DictReader(f))
    with open(osp.join(row['work_dir'], 'results.json')) as f:
        record = json.load(f)
    metrics = record['metrics']
    assert row['top1'] == f'{metrics["accuracy/top1"]:.2f}'
    assert row['top5'] == f'{metrics["accuracy/top5"]:.2f}'
    assert (row['dataset'], row['resize'], row['templates'], row['images'],
            row['mIoU'], row['bg_thresh']) == ('CustomDataset',
                                               'short 256, crop 224', 'subset',
                                               '17', '-', '-')
    assert record['processes'] == 1
    assert 'top-1' in text
