# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The header of tools/test.py says only what applies to the model: a
zero-shot GroupViT its vocabulary, templates and background threshold; a
fine-tuned FCN head none of them (its 21 classes are trained ones,
background included, with no threshold)."""
import os.path as osp

from mmengine.config import Config

from mmseg_groupvit.evaluation import describe_protocol, run_lines
from tests.conftest import REPO


def header(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    lines = run_lines(cfg, config, 'w.pth')
    return {line[:11].strip(): line[12:] for line in lines}, cfg


def test_a_fine_tuned_head_has_no_prompts_nor_threshold():
    lines, cfg = header('finetune/fcn_groupvit_voc-sample_smoke.py')
    assert list(lines) == [
        'config', 'checkpoint', 'data', 'classes', 'protocol'
    ]
    assert lines['classes'] == '21 classes'
    assert lines['protocol'] == 'resize short 224, long <= 448; whole'
    text = ' '.join(lines.values())
    for absent in ('dataset_name', 'templates', 'bg_thresh', 'background'):
        assert absent not in text, absent
    protocol = describe_protocol(cfg)
    assert protocol['bg_thresh'] is None and not protocol['background']
    assert protocol['templates'] is None and protocol['vocabulary'] is None


def test_a_zero_shot_groupvit_says_its_prompts_and_threshold():
    lines, _ = header('groupvit_voc.py')
    assert lines['vocabulary'] == ('dataset_name=voc; 21 classes incl. '
                                   'background; templates simple')
    assert lines['protocol'].endswith('; bg_thresh 0.95')


def test_a_resize_named_with_its_scope_is_described_and_exported():
    """``mmcv.Resize`` is the same step as ``Resize``: the run's protocol
    and the ONNX export read it alike (it was described as no resize)."""
    from mmseg_groupvit.deployment.onnx_export import _pipeline_resize
    plain, cfg = header('groupvit_voc.py')
    resize = _pipeline_resize(cfg)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] in ('Resize', 'CheckedResize'):
            step['type'] = 'mmcv.Resize'
    lines = {
        line[:11].strip(): line[12:]
        for line in run_lines(cfg, 'groupvit_voc.py', 'w.pth')
    }
    assert plain['protocol'].startswith('resize short 448')
    assert lines['protocol'] == plain['protocol']
    assert _pipeline_resize(cfg) == resize
