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
import io
import json
import os.path as osp

import pytest
import torch

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            varied_segmentor)

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


@pytest.fixture(scope='module')
def result(small_config):
    """The printed report and the JSON object of its last line."""
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = benchmark.main([
            small_config, '--data-root', VOC_SAMPLE, '--num-images', '1',
            '--repeat', '1', '--peak-sizes', '64', '--window-batch', '2',
            '--json'
        ])
    text = stdout.getvalue().strip()
    out = json.loads(text.splitlines()[-1])
    return out, text, status


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
    get_flops = load_script(osp.join(TOOLS, 'get_flops.py'))
    model = MODELS.build(Config.fromfile(small_config).model).eval()
    flops = get_flops.segmentor_flops(model, (448, 448))
    assert out['gflop']['window'] == pytest.approx(2 * flops['window'] / 1e9)
    assert out['gflop']['image_encoder'] == pytest.approx(
        2 * flops['image_encoder'] / 1e9)


def test_bad_config_is_one_clear_error(capsys):
    benchmark = load_script(osp.join(TOOLS, 'benchmark.py'))
    assert benchmark.main(['no/such/config.py']) == 1
    assert 'does not exist' in capsys.readouterr().err


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
