# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/analysis_tools/benchmark.py runs end to end on one window and one
real VOC image with a small architecture, and what it reports holds.

The benchmark is a tool, not a timed test: nothing here depends on speed.
It checks that the tool's comparisons are real ones:

- transformers' ``GroupViTModel`` built by the tool computes what ours does
  (``max_abs_diff``: embeddings, group tokens, soft groupings and its
  segmentation logits);
- the batched slide path gives the labels of the original protocol run
  naively (two encoder passes, one window at a time);
- the JSON line carries the fields scripts compare.
"""
import contextlib
import importlib.util
import io
import json
import os
import os.path as osp
import sys

import pytest

from tests.conftest import REPO, SMALL_ARCH, VOC_SAMPLE, load_script, run_main

# Runs of the tools over the shipped samples: the full suite only.
pytestmark = pytest.mark.slow

pytest.importorskip('transformers')

TOOLS = osp.join(REPO, 'tools', 'analysis_tools')


@pytest.fixture(scope='module')
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('bench') / 'small.py'
    path.write_text(
        f'_base_ = [{osp.join(REPO, "configs", "groupvit_voc.py")!r}]\n'
        f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r}, '
        f'text_encoder={SMALL_ARCH["text_encoder"]!r})\n')
    return str(path)


@contextlib.contextmanager
def stderr_of_process(path):
    """Standard error at the file-descriptor level (what C++ libraries
    such as PyTorch's profiler write) and Python's, into ``path``."""
    with open(path, 'w+') as f, contextlib.redirect_stderr(f):
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            f.flush()
            os.dup2(saved, 2)
            os.close(saved)


@pytest.fixture(scope='module')
def run(small_config, tmp_path_factory):
    """The JSON object of the report's last line, the report, the exit
    status and what went to standard error (with the onnxruntime column
    where onnxruntime is installed)."""
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    stdout = io.StringIO()
    err_path = tmp_path_factory.mktemp('bench_err') / 'stderr.txt'
    onnx = ['--onnx', 'auto'] if importlib.util.find_spec('onnxruntime') \
        else []
    with contextlib.redirect_stdout(stdout), stderr_of_process(err_path):
        status = benchmark.main([
            small_config, '--data-root', VOC_SAMPLE, '--num-images', '1',
            '--repeat', '1', '--window-batch', '2', '--json'
        ] + onnx)
    text = stdout.getvalue().strip()
    out = json.loads(text.splitlines()[-1])
    return out, text, status, err_path.read_text()


@pytest.fixture(scope='module')
def result(run):
    """The printed report and the JSON object of its last line."""
    return run[:3]


def test_progress_per_phase_and_no_profiler_lines(run):
    """Standard error: each phase's progress (count and ETA), and none of
    the profiler's 'USDT: ... profiler_start/stop' lines, although the peak
    memory is measured with the profiler."""
    err = run[3]
    assert 'USDT' not in err and 'profiler_start' not in err, err
    for line in ('per-window times: 2/2 rounds', 'peak memory: 4/4 calls',
                 'whole images: 1/1 images'):
        assert line in err, (line, err)
    assert 'ETA' in err and 'pkg_resources' not in err


def test_json_fields(result):
    line, text, _ = result
    for key in ('speedup_window', 'speedup_backbone', 'max_abs_diff',
                'peak_mem_ratio', 'machine'):
        assert key in line, key
    assert line['machine']['threads'] == 2
    assert line['machine']['device'] == 'cpu'
    assert line['window'] == [448, 448]
    assert line['window_source'].endswith('.jpg')  # a real VOC image
    # 20 VOC prompts, zero-padded to the 77-token context for transformers.
    assert line['num_prompts'] == 20
    assert line['prompt_tokens']['padded'] == 77
    assert 5 < line['prompt_tokens']['longest'] < 20
    for name in ('ours_window', 'hf_window', 'ours_backbone', 'hf_backbone'):
        assert line['times_ms'][name]['best'] > 0
    assert line['peak_mem_ratio'] > 0
    assert 'speedup_window' in text and 'images/s' in text


def test_agrees_with_transformers(result):
    out, text, status = result
    assert status == 0
    assert out['agree'] and out['max_abs_diff'] <= 1e-4, text
    assert set(out['diffs']) >= {
        'image_embeds', 'text_embeds', 'group_tokens',
        'segmentation_logits_over_scale2', 'soft_grouping_1', 'soft_grouping_2'
    }


def test_image_paths_agree(result):
    out, _, _ = result
    images = out['images']
    assert images['num_images'] == 1
    # A VOC image resized to short side 448 is 2 or 3 windows wide.
    assert 2 <= images['windows_per_image'] <= 3
    assert images['label_agreement']['ours_vs_naive'] == 1.0
    assert set(images['images_per_s']) - {'onnxruntime'} == {
        'ours', 'mmseg_loop', 'naive'
    }
    assert out['window_batch'] == 2


@pytest.mark.slow
def test_a_whole_mode_config(small_config, tmp_path):
    """One window per image, mmseg's own whole-image loop as the
    reference: the labels of every path agree."""
    config = tmp_path / 'whole.py'
    config.write_text(f'_base_ = [{small_config!r}]\n'
                      f'model = dict(test_cfg=dict(_delete_=True, '
                      f'mode="whole", bg_thresh=0.95))\n')
    code, text = run_main(
        osp.join(TOOLS, 'benchmark.py'), [
            config, '--data-root', VOC_SAMPLE, '--num-images', '1', '--repeat',
            '1', '--json'
        ])
    assert code == 0, text
    images = json.loads(text.strip().splitlines()[-1])['images']
    assert images['windows_per_image'] == 1
    assert images['label_agreement'] == dict(
        ours_vs_mmseg_loop=1.0, ours_vs_naive=1.0)


def test_bad_config_is_one_clear_error():
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    with pytest.raises(SystemExit) as exit_:
        benchmark.main(['no/such/config.py'])
    assert str(exit_.value.code).startswith('error: config not found')


@pytest.mark.parametrize('option', [('--num-images', '-1'), ('--repeat', '0'),
                                    ('--threads', '0'),
                                    ('--window-batch', '0'),
                                    ('--image-repeat', '0'), ('--atol', 'nan'),
                                    ('--atol', '-1'), ('--atol', 'inf')])
def test_bad_counts_are_refused_by_the_parser(option, capsys):
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    with pytest.raises(SystemExit) as exit_:
        benchmark.main(['configs/groupvit_voc.py', *option])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert ': error: argument ' + option[0] in err
    assert f'got {option[1]}' in err


def test_onnxruntime_column(run):
    """``--onnx auto``: the export of the same weights timed beside ours in
    the same rounds, per window and per whole image, with its agreement."""
    pytest.importorskip('onnxruntime')
    out, text, status, err = run
    assert status == 0
    onnx = out['onnx']
    assert onnx['window_max_abs_diff'] <= 1e-4
    assert out['times_ms']['onnxruntime_window']['median'] > 0
    assert out['speedup']['onnxruntime_window'] > 0
    # A share (the labels' equality to tools/test.py's is a property
    # checked in test_onnx_segment.py, not a figure of one CPU).
    assert 0 < out['images']['label_agreement']['ours_vs_onnxruntime'] <= 1
    assert out['images']['images_per_s']['onnxruntime'] > 0
    assert 'onnxruntime' in text


def test_ratios_are_medians_of_the_same_rounds():
    """Round by round: a load burst that slows one round of both paths
    does not move the ratio; the best of each path would pair times from
    different rounds (here 2.0 against the true 3.0)."""
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    times = dict(
        ours=dict(runs=[1.0, 0.5, 1.0]), ref=dict(runs=[3.0, 1.5, 3.0]))
    assert benchmark.ratio(times, 'ref', 'ours') == 3.0
    times['ours']['runs'] = [1.0, 1.0, 10.0]
    times['ref']['runs'] = [3.0, 2.0, 30.0]
    assert benchmark.ratio(times, 'ref', 'ours') == 3.0
    assert min(times['ref']['runs']) / min(times['ours']['runs']) == 2.0


@pytest.mark.parametrize('loads,window,says', [
    ([1.0, 1.5, 1.9], 2.0, None),
    ([0.5, 1.0, 2.2], 2.0, 'the load average moved from 0.5 to 2.2'),
    ([4.0, 4.5], 2.0, 'reached 4.5 on 2 CPUs'),
    ([1.0, 1.0], 0.3, 'ours_window took less than ours_backbone'),
])
def test_unreliable_runs_are_marked(loads, window, says):
    """A load average that moved by more than a core's worth or took
    cores, or a whole call faster than its own backbone marks every ratio
    UNRELIABLE."""
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    times = dict(
        ours_window=dict(median=window), ours_backbone=dict(median=0.4))
    reasons = benchmark.reliability(loads, times, 2)
    if says is None:
        assert reasons == []
    else:
        assert len(reasons) == 1 and says in reasons[0]
