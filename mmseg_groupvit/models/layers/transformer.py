# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pre-norm transformer blocks of the GroupViT image and text towers:
attention through ``F.scaled_dot_product_attention``, linear layers through
:mod:`.fast_linear`."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import nn

from . import fast_linear
from .fast_linear import build_activation


class MLP(nn.Module):
    """Two linear layers with an activation between them.

    Args:
        in_dims (int): Input channels.
        hidden_dims (int): Hidden channels.
        out_dims (int, optional): Output channels. Defaults to ``in_dims``.
        act (str): Activation name, see :func:`build_activation`.
            Defaults to 'gelu'.
    """

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
        """
        Args:
            x (Tensor): ``[..., in_dims]``.
            residual (Tensor, optional): ``[..., out_dims]``, added to the
                output.

        Returns:
            Tensor: ``[..., out_dims]``.
        """
        if self.fused_act is not None:
            hidden = fast_linear.apply(self.fc1, x, self.fused_act)
        else:
            hidden = self.act(fast_linear.apply(self.fc1, x))
        return fast_linear.apply(self.fc2, hidden, residual=residual)


class MixerMLP(MLP):
    """An :class:`MLP` applied across the token axis (MLP-Mixer style).

    Maps ``[B, L_in, C]`` to ``[B, L_out, C]`` by mixing tokens, with
    ``in_dims = L_in`` and ``out_dims = L_out``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, L_in, C] -> [B, C, L_in] -> [B, C, L_out] -> [B, L_out, C]
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
    """Multi-head self-attention with one ``qkv`` projection (``[3C, C]``,
    query, key and value rows in order, as the original).

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads; ``C`` must be divisible by it.
        attn_drop (float): Dropout on attention probabilities (training
            only). Defaults to 0.
    """

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
        """
        Args:
            x (Tensor): Tokens ``[B, L, C]``.
            is_causal (bool): Apply a causal mask (text tower).
            residual (Tensor, optional): ``[B, L, C]``, added to the output.

        Returns:
            Tensor: ``[B, L, C]``.
        """
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
    """Multi-head attention of queries over a separate key/value sequence.

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Heads.
        attn_drop (float): Dropout on attention probabilities. Defaults to 0.
    """

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
        """
        Args:
            query (Tensor): ``[B, S, C]``.
            key (Tensor): ``[B, L, C]``, also used as the values.

        Returns:
            Tensor: ``[B, S, C]``.
        """
        out = F.scaled_dot_product_attention(
            _split_heads(
                fast_linear.apply(self.q_proj, query), self.num_heads),
            _split_heads(fast_linear.apply(self.k_proj, key), self.num_heads),
            _split_heads(fast_linear.apply(self.v_proj, key), self.num_heads),
            dropout_p=self.attn_drop if self.training else 0.)
        return fast_linear.apply(self.proj, _merge_heads(out))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x += attn(norm1(x)); x +=
    mlp(norm2(x))``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_dims (int): Hidden channels of the MLP.
        act (str): MLP activation. Defaults to 'gelu'.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-5.
        attn_drop (float): Attention dropout. Defaults to 0.
        drop_path (float): Stochastic depth of both branches (training
            only). Defaults to 0.
    """

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
