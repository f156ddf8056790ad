# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What ``tools/test.py`` changes in a test config before it runs
(``prepare_test_run``), in process: the shipped configs name the checked
steps and metric, the loading steps mmseg's inferencers look for by name
are swapped, plain steps of a user config too, and every change is said."""
import os.path as osp

import pytest
from mmengine.config import Config

from groupvit_common.errors import ProgressError
from mmseg_groupvit.evaluation import prepare_test_run, use_checked_loading
from tests.conftest import REPO, VOC_SAMPLE, swaps_of_a_test_run


def shipped(tmp_path, name='groupvit_voc.py'):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    cfg.test_dataloader.dataset.data_root = VOC_SAMPLE
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


def checkpoint(tmp_path):
    path = tmp_path / 'model.pth'
    path.write_bytes(b'weights')
    return str(path)


def test_shipped_config_runs_what_it_names_plus_the_said_swaps(tmp_path):
    cfg = shipped(tmp_path)
    before = [step['type'] for step in cfg.test_dataloader.dataset.pipeline]
    assert before == [
        'LoadImageFromFile', 'CheckedResize', 'LoadAnnotations',
        'PackSegInputs'
    ]
    progress, swaps = prepare_test_run(cfg, checkpoint(tmp_path))
    after = [step['type'] for step in cfg.test_dataloader.dataset.pipeline]
    assert after == [
        'RobustLoadImageFromFile', 'CheckedResize', 'CheckedLoadAnnotations',
        'PackSegInputs'
    ]
    assert progress == osp.join(cfg.work_dir, 'progress')
    assert cfg.test_evaluator.type == 'CheckedIoUMetric'
    assert cfg.test_evaluator.progress_dir == progress
    assert cfg.test_dataloader.sampler == dict(
        type='SkipDoneSampler', progress_dir=progress, round_up=True)
    assert swaps == swaps_of_a_test_run(progress)
    # cfg.test_pipeline, which inference_model reads, keeps mmseg's names.
    assert cfg.test_pipeline[0]['type'] == 'LoadImageFromFile'


def test_plain_steps_and_metric_of_a_user_config_are_swapped_and_said(
        tmp_path):
    cfg = Config(
        dict(
            work_dir=str(tmp_path / 'work'),
            test_dataloader=dict(
                sampler=dict(type='DefaultSampler', round_up=False),
                dataset=dict(pipeline=[
                    dict(type='mmcv.LoadImageFromFile'),
                    dict(type='Resize', scale=(64, 32), keep_ratio=True),
                    dict(type='mmseg.LoadAnnotations'),
                    dict(type='PackSegInputs')
                ])),
            test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU'])))
    swaps = use_checked_loading(cfg)
    assert swaps == [
        'test_dataloader.dataset.pipeline.0: mmcv.LoadImageFromFile -> '
        'RobustLoadImageFromFile',
        'test_dataloader.dataset.pipeline.1: Resize -> CheckedResize',
        'test_dataloader.dataset.pipeline.2: mmseg.LoadAnnotations -> '
        'CheckedLoadAnnotations'
    ]
    # Arguments are kept.
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(
        type='CheckedResize', scale=(64, 32), keep_ratio=True)
    # Nothing left to swap the second time.
    assert use_checked_loading(cfg) == []
    progress, swaps = prepare_test_run(cfg, checkpoint(tmp_path), rank=1)
    assert swaps[0] == 'test_evaluator.type: IoUMetric -> CheckedIoUMetric'
    assert cfg.test_evaluator == dict(
        type='CheckedIoUMetric', iou_metrics=['mIoU'], progress_dir=progress)
    assert cfg.test_dataloader.sampler.round_up is False


def test_other_evaluators_are_left_alone(tmp_path):
    cfg = Config(
        dict(
            work_dir=str(tmp_path),
            test_dataloader=dict(dataset=dict(pipeline=[])),
            test_evaluator=dict(type='Accuracy')))
    assert prepare_test_run(cfg, checkpoint(tmp_path)) == (None, [])
    assert cfg.test_evaluator.type == 'Accuracy'
    with pytest.raises(ProgressError, match='--resume needs test_evaluator'):
        prepare_test_run(cfg, checkpoint(tmp_path), resume=True)
