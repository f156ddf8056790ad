# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/analysis_tools/get_flops.py: mmseg's FLOP counter made to work on
GroupViT's multimodal segmentor.

Independent references: multiply-adds worked out by hand for one attention
block, and ``torch.utils.flop_counter`` (two FLOPs per multiply-add) for a
whole backbone, with attention decomposed into matrix products so that it
counts them too.
"""
import contextlib
import io
import os.path as osp

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mmseg_groupvit.models.layers import SelfAttention, fast_linear
from tests.conftest import REPO, SMALL_ARCH, build_small_segmentor, load_script

get_flops = load_script(
    osp.join(REPO, 'tools', 'analysis_tools', 'get_flops.py'))
count_flops = get_flops.count_flops


@pytest.fixture(scope='module')
def context():
    """A small Context segmentor (59 classes) and its counts."""
    model = build_small_segmentor('groupvit_context.py')
    return model, get_flops.segmentor_flops(model, (448, 448))


def test_attention_block_by_hand():
    batch, length, channels, heads = 2, 29, 48, 4
    attn = SelfAttention(channels, heads).eval()
    x = torch.randn(batch, length, channels)
    with torch.no_grad():
        count = count_flops(attn, x)
    qkv = batch * length * channels * 3 * channels
    # q @ k^T and attn @ v: length^2 * head_dim each, per head.
    sdpa = 2 * batch * heads * length * length * (channels // heads)
    proj = batch * length * channels * channels
    assert count.total() == qkv + sdpa + proj
    assert count.by_operator()['scaled_dot_product_attention'] == sdpa


def test_backbone_against_torch_flop_counter(context):
    encoder = context[0].image_encoder
    x = torch.randn(1, 3, 224, 224)  # the table's own grid: no resizing
    with torch.no_grad():
        count = count_flops(encoder, x, encoder.forward_features)
        previous = fast_linear.set_enabled(False)
        try:
            with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(
                    display=False) as counter:
                encoder.forward_features(x)
        finally:
            fast_linear.set_enabled(previous)
    ops = count.by_operator()
    products = sum(ops[k] for k in ops
                   if k in ('conv', 'linear', 'addmm', 'matmul', 'bmm',
                            'einsum', 'scaled_dot_product_attention'))
    assert products > 0
    assert 2 * products == counter.get_total_flops()


def test_segmentor_counts(context):
    model, flops = context
    assert flops['window'] == (
        flops['image_encoder'] + flops['projection'] + flops['head'])
    assert flops['head'] > 0 and flops['projection'] > 0
    # Projection of the final groups and the pooled feature (5 tokens):
    # 64 -> 64 (BatchNorm) -> 32.
    image = SMALL_ARCH['image_encoder']
    tokens = image['num_output_groups'][-1] + 1
    hidden = image['projection_intermediate_dim']
    products = tokens * hidden * (
        image['hidden_size'] + image['projection_dim'])
    # BatchNorm: at most a multiply and an add per element.
    assert products <= flops['projection'] <= products + 2 * tokens * hidden
    assert flops['num_prompts'] == 59 and flops['text'] > 0
    assert flops['params']['all'] == sum(p.numel() for p in model.parameters())


def test_cli_on_shipped_config_with_small_arch(context, tmp_path):
    config = tmp_path / 'small.py'
    config.write_text(
        f'_base_ = [{osp.join(REPO, "configs", "groupvit_context.py")!r}]\n'
        f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r}, '
        f'text_encoder={SMALL_ARCH["text_encoder"]!r})\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert get_flops.main([str(config)]) == 0
    text = out.getvalue()
    assert 'Input shape: (3, 448, 448)' in text  # the config's crop_size
    assert '(59 prompts)' in text  # Context: 59 classes + background
    # One unit, FLOPs (2 per multiply-add), said once, for every figure.
    assert 'a multiply-add counts as 2' in text
    window = [line for line in text.splitlines() if 'one window:' in line]
    flop = 2 * context[1]['window']
    assert 1e6 <= flop < 1e9  # the small architecture: millions
    assert window == [f'  one window: {flop / 1e6:.1f} MFLOP']
    assert 'Flops:' not in text
    with pytest.raises(SystemExit) as exit_:
        get_flops.main(['no/such.py'])
    assert str(exit_.value.code).startswith('error: config not found')
