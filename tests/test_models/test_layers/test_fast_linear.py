# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The fused linear path computes ``F.linear`` (plus activation or
residual) to fp32 rounding, and steps aside wherever it must.

The reference is the same computation in float64, so both the fused and the
plain fp32 results are held to the same bound.
"""
import pytest
import torch
import torch.nn.functional as F

from mmseg_groupvit.models.layers import MLP, TransformerBlock, fast_linear

needs_onednn = pytest.mark.skipif(
    not fast_linear.available(torch.zeros(1, 1), torch.zeros(1, 1)),
    reason='this PyTorch build has no oneDNN linear op')


@pytest.fixture(autouse=True)
def _no_grad_and_enabled():
    previous = fast_linear.set_enabled(True)
    with torch.no_grad():
        yield
    fast_linear.set_enabled(previous)


def reference(x, weight, bias, activation=None, residual=None):
    out = F.linear(x.double(), weight.double(), bias.double())
    if activation == 'gelu':
        out = F.gelu(out)
    elif activation == 'gelu_new':
        out = F.gelu(out, approximate='tanh')
    elif activation == 'relu':
        out = F.relu(out)
    if residual is not None:
        out = out + residual.double()
    return out


def tensors(seed=0, shape=(2, 37, 48), out_dims=80):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen)
    weight = torch.randn(out_dims, shape[-1], generator=gen) * 0.2
    bias = torch.randn(out_dims, generator=gen)
    residual = torch.randn(*shape[:-1], out_dims, generator=gen)
    return x, weight, bias, residual


@needs_onednn
@pytest.mark.parametrize('activation', [None, 'gelu', 'gelu_new', 'relu'])
def test_activation_matches_float64(activation):
    x, weight, bias, _ = tensors()
    assert fast_linear.available(x, weight)
    out = fast_linear.linear(x, weight, bias, activation)
    ref = reference(x, weight, bias, activation)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out.double() - ref).abs().max().item() < 1e-5


@needs_onednn
def test_residual_matches_float64():
    x, weight, bias, residual = tensors(1)
    out = fast_linear.linear(x, weight, bias, residual=residual)
    ref = reference(x, weight, bias, residual=residual)
    assert (out.double() - ref).abs().max().item() < 1e-5
    # Strided (non-contiguous) input, as after a transpose.
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)
    assert not xt.is_contiguous()
    out = fast_linear.linear(xt, weight, bias)
    assert (out.double() -
            reference(x, weight, bias)).abs().max().item() < 1e-5


def test_plain_path_is_exactly_f_linear():
    x, weight, bias, residual = tensors(2)
    fast_linear.set_enabled(False)
    assert not fast_linear.available(x, weight)
    out = fast_linear.linear(x, weight, bias, 'gelu')
    assert torch.equal(out, F.gelu(F.linear(x, weight, bias)))
    out = fast_linear.linear(x, weight, bias, residual=residual)
    assert torch.equal(out, F.linear(x, weight, bias) + residual)


def test_steps_aside_for_autograd_autocast_and_other_dtypes():
    x, weight, bias, _ = tensors(3)
    with torch.enable_grad():
        w = weight.clone().requires_grad_()
        assert not fast_linear.available(x, w)
        out = fast_linear.linear(x, w, bias, 'relu')
        out.sum().backward()  # the plain path keeps autograd working
        assert w.grad is not None and w.grad.shape == w.shape
    assert not fast_linear.available(x.double(), weight.double())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not fast_linear.available(x, weight)


def test_bad_arguments_name_the_problem():
    x, weight, bias, residual = tensors(4)
    with pytest.raises(ValueError, match='activation or a residual'):
        fast_linear.linear(x, weight, bias, 'gelu', residual)
    with pytest.raises(ValueError, match='quick_gelu'):
        fast_linear.linear(x, weight, bias, 'quick_gelu')


@pytest.mark.parametrize('act', ['gelu', 'quick_gelu'])
def test_blocks_match_their_plain_version(act):
    """A transformer block and an MLP give the plain modules' output with
    the fused path on (residuals inside the projections) and bit for bit
    the unfused formula with it off."""
    torch.manual_seed(0)
    block = TransformerBlock(48, 4, 96, act=act).eval()
    mlp = MLP(48, 96, act=act).eval()
    x = torch.randn(2, 29, 48)

    def plain_block(x):
        h = block.norm1(x)
        qkv = block.attn.qkv(h).view(2, 29, 3, 4, 12).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + block.attn.proj(a.transpose(1, 2).reshape(2, 29, 48))
        m = block.mlp
        return x + m.fc2(m.act(m.fc1(block.norm2(x))))

    expected = plain_block(x)
    fused = block(x)
    assert (fused - expected).abs().max().item() < 1e-5
    assert (mlp(x) - mlp.fc2(mlp.act(mlp.fc1(x)))).abs().max().item() < 1e-5
    fast_linear.set_enabled(False)
    assert torch.equal(block(x), expected)
    assert torch.equal(mlp(x, residual=x), x + mlp.fc2(mlp.act(mlp.fc1(x))))
