# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The header of tools/test.py says only what applies to the model: a
zero-shot GroupViT its vocabulary, templates and background threshold; a
fine-tuned FCN head none of them (its 21 classes are trained ones,
background included, with no threshold)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmseg_groupvit.evaluation import (describe_protocol, prepare_test_run,
                                       run_lines)
from tests.conftest import REPO, VOC_SAMPLE, load_script


def header(config):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    lines = run_lines(cfg, config, 'w.pth')
    return {line[:11].strip(): line[12:] for line in lines}, cfg


VOC = osp.join(REPO, 'configs', 'groupvit_voc.py')
FLIPS = ("[dict(type='RandomFlip', prob=0.0, direction='horizontal'),\n"
         " dict(type='RandomFlip', prob=1.0, direction='horizontal')]")


def tta_config(path, *stages):
    """``path``, written as a user config over groupvit_voc.py with
    ``tta_model`` and a ``TestTimeAug`` of ``stages`` (lists of steps, as
    Python text), then the label loading and packing stages."""
    stages = ',\n'.join(stages + ("[dict(type='LoadAnnotations')]",
                                  "[dict(type='PackSegInputs')]"))
    path.write_text(f'_base_ = [{VOC!r}]\n'
                    "tta_model = dict(type='SegTTAModel')\n"
                    'tta_pipeline = [\n'
                    "    dict(type='LoadImageFromFile'),\n"
                    f"    dict(type='TestTimeAug', transforms=[\n{stages}])\n"
                    ']\n')
    return path


def tool_args(tmp_path, config, *flags):
    """tools/test.py's arguments: random weights on the VOC sample."""
    return [
        str(config), *flags, '--random-weights', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
    ]


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


def test_tta_records_the_segmentor_and_each_augmentation(tmp_path):
    """``tools/test.py --tta`` wraps the segmentor in ``tta_model`` and the
    steps in ``TestTimeAug``: the protocol is still the segmentor's (it was
    recorded as no vocabulary, no background and no resize) and names each
    scale and flip that is averaged; the nested steps are checked too."""
    config = tta_config(
        tmp_path / 'tta.py',
        "[dict(type='Resize', scale=(2048, 224), keep_ratio=True),\n"
        " dict(type='Resize', scale=(2048, 336), keep_ratio=True)]", FLIPS)
    test = load_script('tools/test.py')
    args = test.parse_args(tool_args(tmp_path, config, '--tta'))
    cfg = test.build_config(args)
    plain = describe_protocol(Config.fromfile(VOC))
    _, swaps = prepare_test_run(cfg, None)
    protocol = describe_protocol(cfg)
    resized = [
        dict(type='CheckedResize', scale=[2048, short], keep_ratio=True)
        for short in (224, 336)
    ]
    flipped = [
        dict(type='RandomFlip', prob=prob, direction='horizontal')
        for prob in (0.0, 1.0)
    ]
    assert protocol == dict(
        plain, data_root=VOC_SAMPLE, resize=None, tta=[resized, flipped])
    assert plain['tta'] is None and plain['background']
    assert (plain['templates'], plain['bg_thresh']) == ('simple', 0.95)
    lines = {
        line[:11].strip(): line[12:]
        for line in run_lines(cfg, 'tta.py', None)
    }
    assert lines['vocabulary'].startswith('dataset_name=voc; 21 classes')
    assert lines['protocol'] == (
        'resize by test-time augmentation; slide 448x448 / 224x224; '
        'bg_thresh 0.95; averaged over CheckedResize(scale=[2048, 224], '
        'keep_ratio=True) | CheckedResize(scale=[2048, 336], '
        "keep_ratio=True); averaged over RandomFlip(prob=0.0, "
        "direction='horizontal') | RandomFlip(prob=1.0, "
        "direction='horizontal')")
    nested = 'test_dataloader.dataset.pipeline.1.transforms'
    assert [s for s in swaps if s.startswith(nested)] == [
        f'{nested}.0.0: Resize -> CheckedResize',
        f'{nested}.0.1: Resize -> CheckedResize',
        f'{nested}.2.0: LoadAnnotations -> CheckedLoadAnnotations'
    ]


def test_tta_of_a_tta_model_or_of_a_tta_model_module_is_one_line(tmp_path):
    """The config a --tta run writes (its model the TTA model) tests the
    same protocol without --tta; with --tta it was wrapped again (a header
    without vocabulary, then a TypeError traceback). A ``tta_model.module``
    of the user's was replaced by the model without a word."""
    config = tta_config(tmp_path / 'tta.py', FLIPS)
    test = load_script('tools/test.py')
    cfg = test.build_config(
        test.parse_args(tool_args(tmp_path, config, '--tta')))
    written = tmp_path / 'written.py'
    cfg.dump(str(written))
    again = test.build_config(test.parse_args(tool_args(tmp_path, written)))
    assert describe_protocol(again) == describe_protocol(cfg)
    with pytest.raises(SystemExit) as error:
        test.main(tool_args(tmp_path, written, '--tta'))
    assert str(error.value) == (
        'error: model is already a test-time augmentation model (SegTTAModel, '
        'as in the config a --tta run writes to its work dir): it averages '
        'its augmentations without --tta, and --tta would wrap it again. '
        'Drop --tta.')
    with pytest.raises(SystemExit) as error:
        test.main(
            tool_args(tmp_path, config, '--tta') + [
                "tta_model.module.text_encoder.vocabulary=['cat','dog']",
                'tta_model.module.text_encoder.dataset_name=None'
            ])
    assert str(error.value).startswith(
        'error: tta_model.module is replaced by the config\'s model under '
        '--tta')


def test_a_resize_by_scale_factor_is_recorded_with_it(tmp_path):
    """mmseg's TTA resizes by ``scale_factor``; with one ratio its step is
    the resize of every view: ratios 0.5 and 1.0 are two protocols (both
    were recorded as scale None, printed 'resize None')."""
    test = load_script('tools/test.py')
    protocols = []
    for ratio in (0.5, 1.0):
        config = tta_config(
            tmp_path / f'tta_{ratio}.py',
            f"[dict(type='Resize', scale_factor={ratio}, keep_ratio=True)]",
            FLIPS)
        cfg = test.build_config(
            test.parse_args(tool_args(tmp_path, config, '--tta')))
        protocols.append(describe_protocol(cfg))
        line = run_lines(cfg, config.name, None)[-1]
        assert line.startswith(
            f'protocol    resize scale_factor {ratio} (keep_ratio=True); '
            f'slide 448x448 / 224x224'), line
    assert [p['resize'] for p in protocols] == [
        dict(scale=None, keep_ratio=True, scale_factor=ratio)
        for ratio in (0.5, 1.0)
    ]
