# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/analysis_tools/gpu_report.py as a dry run on the CPU: every step
runs (fixture check, precision check, throughput of ours and transformers,
the onnxruntime runner) and the report says it is not a GPU figure."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import REPO, SMALL_ARCH, VOC_SAMPLE, load_script

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
