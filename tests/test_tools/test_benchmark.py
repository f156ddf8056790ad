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
- the JSON line carries the fields scripts compare, and its FLOP count is
  the one of ``get_flops`` (checked by hand for the head-free parts in
  ``test_get_flops.py``).
"""
import contextlib
import importlib.util
import io
import json
import os
import os.path as osp
import sys

import pytest
import torch

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            varied_segmentor)

# Runs of the tools over the shipped samples: the full suite only.
pytestmark = pytest.mark.slow

pytest.importorskip('transformers')

TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
segmentor_flops = load_script(osp.join(TOOLS, 'get_flops.py')).segmentor_flops


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
            '--repeat', '1', '--peak-sizes', '64', '--window-batch', '2',
            '--json'
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
                 'matrix-product peak: 3/3 rounds',
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
    assert line['gflop']['window'] > line['gflop']['image_encoder'] > 0
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
    assert images['label_agreement_ours_vs_naive'] == 1.0
    assert set(images['images_per_s']) == {
        'ours', 'mmseg_loop', 'naive', 'naive_plain'
    }
    assert out['window_batch'] == 2


def test_flops_are_get_flops_count(result, small_config):
    """The GFLOP figures are twice get_flops' multiply-add count."""
    out, _, _ = result
    from mmengine.config import Config
    from mmseg.registry import MODELS
    model = MODELS.build(Config.fromfile(small_config).model).eval()
    flops = segmentor_flops(model, (448, 448))
    assert out['gflop']['window'] == pytest.approx(2 * flops['window'] / 1e9)
    assert out['gflop']['image_encoder'] == pytest.approx(
        2 * flops['image_encoder'] / 1e9)


def test_bad_config_is_one_clear_error(capsys):
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    assert benchmark.main(['no/such/config.py']) == 1
    assert 'config not found' in capsys.readouterr().err


def test_amp_agreement_reports_bf16_against_fp32():
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    model = varied_segmentor()
    torch.manual_seed(0)
    window = torch.randn(1, 3, 64, 64)
    metas = [dict(img_shape=window.shape[2:], pad_shape=window.shape[2:])]
    with torch.no_grad():
        exact = model.encode_decode(window, metas)
        model.test_cfg['autocast'] = 'bf16'
        fast = model.encode_decode(window, metas)
    out = benchmark.amp_agreement(model, window, metas, 'bf16')
    assert model.test_cfg['autocast'] == 'bf16'  # restored
    assert out['dtype'] == 'bf16'
    # bf16 keeps about 3 significant digits: close, but not fp32-exact.
    assert 0.99 < out['min_group_embed_cosine'] < 1.0
    assert 0 < out['soft_grouping_max_abs_diff'] < 0.1
    # The reported figures are those of the two runs above, on labels that
    # are not trivial (background and a class).
    labels = exact.argmax(1)
    assert (labels == 0).any() and (labels > 0).any()
    assert out['label_agreement'] == pytest.approx(
        (fast.argmax(1) == labels).float().mean().item())
    assert out['label_agreement'] >= 0.9
    assert out['max_abs_diff'] == pytest.approx(
        (fast - exact).abs().max().item())


def test_onnxruntime_column(run):
    """``--onnx auto``: the export of the same weights timed beside ours,
    with its agreement, file sizes, memory and profile."""
    pytest.importorskip('onnxruntime')
    out, text, status, err = run
    assert status == 0
    onnx = out['onnx']
    assert onnx['window_max_abs_diff'] <= 1e-4
    assert onnx['window_ms']['onnxruntime_window'] > 0
    # A share (the labels' equality to tools/test.py's is a property
    # checked in test_onnx_segment.py, not a figure of one CPU).
    assert 0 < onnx['images']['labels_equal'] <= 1
    assert set(
        onnx['file_mib']) == {'image.onnx', 'text.onnx', 'pytorch_state_dict'}
    assert all(v > 0 for v in onnx['peak_rss_mib'].values())
    assert 'MatMul' in onnx['image_graph_profile_ms']
    assert 'onnxruntime' in text
    # Progress through the long onnxruntime phase.
    for step in ('per-window times', 'whole images: 1/1', 'peak memory',
                 'profile'):
        assert f'benchmark: onnxruntime: {step}' in err


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


@pytest.mark.parametrize('loads,window,again,says', [
    ([1.0, 1.5, 1.9], 2.0, 2.5, None),
    ([0.5, 1.0, 2.2], 2.0, None, 'the load average moved from 0.5 to 2.2'),
    ([4.0, 4.5], 2.0, None, 'reached 4.5 on 2 CPUs'),
    ([1.0, 1.0], 0.3, None, 'ours_window took less than ours_backbone'),
    ([1.0, 1.0], 0.544, 2.618, 'took 544.0 ms in one section and 2618.0'),
])
def test_unreliable_runs_are_marked(loads, window, again, says):
    """A load average that moved by more than a core's worth or took
    cores, a whole call faster than its own backbone, or the same figure
    measured twice far apart marks every ratio UNRELIABLE."""
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    times = dict(
        ours_window=dict(median=window), ours_backbone=dict(median=0.4))
    reasons = benchmark.reliability(loads, times, 2, again)
    if says is None:
        assert reasons == []
    else:
        assert len(reasons) == 1 and says in reasons[0]
