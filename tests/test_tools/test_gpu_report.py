# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/analysis_tools/gpu_report.py as a dry run on the CPU: every step
runs (fixture check, precision check, throughput of ours and transformers,
the onnxruntime runner) and the report says it is not a GPU figure."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE,
                            build_small_segmentor, load_script, vary_weights)

pytest.importorskip('transformers')
pytest.importorskip('onnxruntime')


@pytest.mark.slow
def test_dry_run_exercises_every_step(tmp_path, fixture_a):
    config = tmp_path / 'small.py'
    config.write_text(
        f'_base_ = [{osp.join(REPO, "configs", "groupvit_voc.py")!r}]\n'
        f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r}, '
        f'text_encoder={SMALL_ARCH["text_encoder"]!r})\n')
    tool = load_script('tools/analysis_tools/gpu_report.py')
    out = tmp_path / 'report'
    report = tool.main([
        str(config), '--device', 'cpu', '--data-root', VOC_SAMPLE,
        '--num-images', '1', '--repeat', '1', '--window-batch', '2',
        '--fixture', fixture_a, '--out',
        str(out)
    ])
    with open(out / 'report.json') as f:
        assert json.load(f) == json.loads(json.dumps(report))
    assert report['dry_run'] is True and report['num_images'] == 1
    fixture = report['cuda_vs_cpu_fixture']
    assert fixture['passed'] and len(fixture['images']) == 3
    # Not only CPU against CPU: the original code's labels.
    assert all(i['labels_as_original'] >= 0.999 for i in fixture['images'])
    assert set(report['precision']) == {'fp16', 'bf16'}
    assert set(report['throughput']) == {
        f'{who}_{p}'
        for who in ('ours', 'transformers')
        for p in ('fp32', 'fp16', 'bf16')
    }
    assert all(v > 0 for v in report['throughput'].values())
    assert report['onnxruntime']['images_per_s'] > 0
    table = (out / 'report.md').read_text()
    assert 'dry run on CPU' in table and '| bf16 |' in table


def whole_mode_config(tmp_path):
    config = tmp_path / 'whole.py'
    config.write_text(
        f'_base_ = [{osp.join(REPO, "configs", "groupvit_voc.py")!r}]\n'
        f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r}, '
        f'text_encoder={SMALL_ARCH["text_encoder"]!r}, '
        f'test_cfg=dict(_delete_=True, mode="whole", bg_thresh=0.95))\n')
    return config


def test_reference_takes_a_whole_image_window():
    """In whole mode the window is the image, not the square the reference
    was built for: transformers' segmentation logits of a 224x320 window
    are our soft grouping of its patch grid, weighted by the cosines of
    our group and text embeddings (as benchmark.py's agreement check)."""
    from mmseg_groupvit.models.decode_heads.groupvit_head import group_maps
    tool = load_script('tools/analysis_tools/gpu_report.py')
    bench = load_script('tools/analysis_tools/bench_common.py')
    model = vary_weights(build_small_segmentor(test_cfg=dict(mode='whole')))
    hf = bench.build_reference(model, (448, 448))
    gen = torch.Generator().manual_seed(0)
    window = torch.randn(1, 3, 224, 320, generator=gen)
    prompts = [p for ps in model.text_encoder.prompts() for p in ps]
    tokens = model.text_encoder.tokenize(prompts)
    with torch.no_grad():
        scores = tool.hf_encode_decode(hf, tokens, 'fp32', model, window, None)
        feats = model.image_encoder(window)
        text = F.normalize(model.text_encoder.encode_tokens(tokens), dim=-1)
        maps = group_maps(feats['soft_assigns'], feats['grid'],
                          window.shape[-2:])
    cos = F.normalize(feats['group_embeds'], dim=-1) @ text.t()
    expected = torch.einsum('bgt,bghw->bthw', cos, maps)
    assert feats['grid'] == (14, 20)
    assert scores.shape == (1, 1 + len(prompts), 224, 320)
    assert not scores[:, 0].any()
    # Cosines weighted by a soft assignment, so within [-1, 1]: fp32 sums
    # of a few hundred terms agree far below 1e-4 (benchmark.py's --atol).
    scale = model.decode_head.logit_scale.exp()
    torch.testing.assert_close(
        scores[:, 1:] / scale**2, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_dry_run_of_a_whole_mode_config(tmp_path):
    """Each image is one window of its own shape for ours and for
    transformers; the ONNX export (slide only) is skipped with a reason."""
    tool = load_script('tools/analysis_tools/gpu_report.py')
    report = tool.main([
        str(whole_mode_config(tmp_path)), '--device', 'cpu', '--data-root',
        VOC_SAMPLE, '--num-images', '2', '--repeat', '1', '--fixture',
        str(tmp_path / 'no-fixture'), '--out',
        str(tmp_path / 'report')
    ])
    assert all(v > 0 for v in report['throughput'].values())
    assert len(report['throughput']) == 6
    assert 'slide inference only' in report['onnxruntime']['skipped']
    assert "mode is 'whole'" in report['onnxruntime']['skipped']
    table = (tmp_path / 'report' / 'report.md').read_text()
    assert 'onnxruntime not measured: the ONNX export runs slide' in table


def test_no_images_is_one_error_line(tmp_path):
    tool = load_script('tools/analysis_tools/gpu_report.py')
    with pytest.raises(SystemExit) as exit_:
        tool.main([
            osp.join(REPO, 'configs', 'groupvit_voc.py'), '--device', 'cpu',
            '--data-root', VOC_SAMPLE, '--num-images', '0', '--out',
            str(tmp_path)
        ])
    message = str(exit_.value.code)
    assert message.startswith('error: gpu_report measures images/s')
    assert '\n' not in message and '--num-images 1 or more' in message


def test_shell_script_runs_the_report():
    with open(osp.join(REPO, 'tools', 'analysis_tools', 'gpu_report.sh')) as f:
        script = f.read()
    assert 'tools/analysis_tools/gpu_report.py "$@"' in script


@pytest.mark.slow
def test_training_throughput_dry_run(tmp_path):
    """gpu_report.sh's training step (--gpu-report) without a GPU: a small
    model, batch 2, ours and plain PyTorch layers each measured in its own
    process (so the tool runs as a script, as the shell script runs it)."""
    with open(osp.join(REPO, 'tools', 'analysis_tools', 'gpu_report.sh')) as f:
        assert 'pretrain_benchmark.py --gpu-report' in f.read()
    out = tmp_path / 'train.json'
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'analysis_tools', 'pretrain_benchmark.py'),
        '--gpu-report', '--out',
        str(out)
    ],
                   check=True,
                   timeout=600)
    with open(out) as f:
        report = json.load(f)
    assert report['dry_run'] and report['batch'] == 2
    assert set(report['results']) == {'ours_fp32', 'plain_fp32'}
    assert all(r['images_per_s'] > 0 and r['peak_mib'] > 0
               for r in report['results'].values())
    # The same batch and threads on both sides, the first step apart.
    ours, plain = report['results']['ours_fp32'], report['results'][
        'plain_fp32']
    assert ours['inputs'] == plain['inputs']
    assert ours['threads'] == plain['threads'] == report['threads'] == 1
    assert all(len(r['runs']) == 3 for r in (ours, plain))
