# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pre-norm transformer blocks of GroupViT's image and text towers and the
projection head into the joint image-text space."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import nn

from . import fast_linear
from .fast_linear import build_activation


class MLP(nn.Module):
    """Two linear layers with an activation (see :func:`build_activation`)
    between them; ``out_dims`` defaults to ``in_dims``."""

    def __init__(self,
                 in_dims: int,
                 hidden_dims: int,
                 out_dims: Optional[int] = None,
                 act: str = 'gelu'):
        super().__init__()
        self.fc1 = nn.Linear(in_dims, hidden_dims)
        self.act = build_activation(act)
        self.fc2 = nn.Linear(hidden_dims, out_dims or in_dims)
        self.fused_act = act if fast_linear.fusable(act) else None

    def forward(self,
                x: torch.Tensor,
                residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[..., in_dims]`` to ``[..., out_dims]``, plus ``residual``."""
        if self.fused_act is not None:
            hidden = fast_linear.apply(self.fc1, x, self.fused_act)
        else:
            hidden = self.act(fast_linear.apply(self.fc1, x))
        return fast_linear.apply(self.fc2, hidden, residual=residual)


class MixerMLP(MLP):
    """An :class:`MLP` across the token axis: ``[B, L_in, C]`` to
    ``[B, L_out, C]`` with ``in_dims = L_in``, ``out_dims = L_out``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _check_heads(embed_dims: int, num_heads: int) -> None:
    if embed_dims % num_heads:
        raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                         f'num_heads ({num_heads}).')


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    # [B, L, C] -> [B, heads, L, C // heads]
    batch, length, channels = x.shape
    return x.view(batch, length, num_heads,
                  channels // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    # [B, heads, L, D] -> [B, L, heads * D]
    batch, heads, length, head_dims = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dims)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one ``qkv`` projection ``[3C, C]``
    (query, key, value rows, as the original); ``attn_drop`` in training."""

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.):
        super().__init__()
        _check_heads(embed_dims, num_heads)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self,
                x: torch.Tensor,
                is_causal: bool = False,
                residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Tokens ``[B, L, C]`` to ``[B, L, C]``, plus ``residual``."""
        batch, length, channels = x.shape
        # [B, L, 3C] -> [3, B, heads, L, C // heads]
        qkv = fast_linear.apply(self.qkv, x)
        qkv = qkv.view(batch, length, 3, self.num_heads,
                       channels // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            qkv[0],
            qkv[1],
            qkv[2],
            dropout_p=self.attn_drop if self.training else 0.,
            is_causal=is_causal)
        return fast_linear.apply(
            self.proj, _merge_heads(out), residual=residual)


class CrossAttention(nn.Module):
    """Multi-head attention of queries over a separate key/value sequence."""

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.):
        super().__init__()
        _check_heads(embed_dims, num_heads)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """``query`` ``[B, S, C]`` over ``key`` (and values) ``[B, L, C]``
        to ``[B, S, C]``."""
        out = F.scaled_dot_product_attention(
            _split_heads(
                fast_linear.apply(self.q_proj, query), self.num_heads),
            _split_heads(fast_linear.apply(self.k_proj, key), self.num_heads),
            _split_heads(fast_linear.apply(self.v_proj, key), self.num_heads),
            dropout_p=self.attn_drop if self.training else 0.)
        return fast_linear.apply(self.proj, _merge_heads(out))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x += attn(norm1(x)); x += mlp(norm2(x))``;
    ``drop_path`` (stochastic depth) on both branches in training."""

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_dims: int,
                 act: str = 'gelu',
                 layer_norm_eps: float = 1e-5,
                 attn_drop: float = 0.,
                 drop_path: float = 0.):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.attn = SelfAttention(embed_dims, num_heads, attn_drop)
        self.norm2 = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.mlp = MLP(embed_dims, mlp_dims, act=act)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def forward(self,
                x: torch.Tensor,
                is_causal: bool = False) -> torch.Tensor:
        if self.drop_path is not None and self.training:
            x = x + self.drop_path(self.attn(self.norm1(x), is_causal))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = self.attn(self.norm1(x), is_causal=is_causal, residual=x)
        return self.mlp(self.norm2(x), residual=x)


class ProjectionMLP(nn.Module):
    """``Linear -> BatchNorm1d -> ReLU -> Linear`` per token (the
    original's 1x1 ``Conv1d`` layers)."""

    def __init__(self, in_dims: int, hidden_dims: int, out_dims: int):
        super().__init__()
        self.linear1 = nn.Linear(in_dims, hidden_dims)
        self.bn = nn.BatchNorm1d(hidden_dims)
        self.linear2 = nn.Linear(hidden_dims, out_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in_dims]`` to ``[..., out_dims]``."""
        shape = x.shape[:-1]
        x = self.linear1(x.reshape(-1, x.shape[-1]))
        x = torch.relu(self.bn(x))
        return self.linear2(x).reshape(*shape, -1)
