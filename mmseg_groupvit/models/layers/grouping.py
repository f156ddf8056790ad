# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT's grouping block (paper Sec. 3.1), structured as the original
``GroupingBlock`` / ``AssignAttention`` so the published weights load."""
import functools
from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from . import fast_linear
from .transformer import MLP, CrossAttention, MixerMLP


def straight_through_one_hot(soft: torch.Tensor, dim: int) -> torch.Tensor:
    """Hard one-hot of ``soft`` along ``dim``, straight-through gradient
    (``one_hot - soft + soft``, as the original)."""
    index = soft.argmax(dim, keepdim=True)
    hard = torch.zeros_like(soft).scatter_(dim, index, 1.0)
    return hard - soft.detach() + soft


def chain_assignments(soft_assigns: Sequence[Tensor]) -> Tensor:
    """Chain the soft assignments ``[B, S_i, S_{i-1}]`` of each stage
    (``S_0 = h*w``) into ``A_1^T @ A_2^T @ ...`` ``[B, h*w, S_last]``."""
    return functools.reduce(
        torch.matmul, [assign.transpose(1, 2) for assign in soft_assigns])


class AssignAttention(CrossAttention):
    """Single-head attention (:class:`CrossAttention`'s projections)
    assigning every token to one group: a hard Gumbel-softmax sample in
    training (``gumbel``, ``gumbel_tau``), the argmax in eval,
    straight-through; each group averages its members,
    ``A / (sum_tokens A + assign_eps)``."""

    def __init__(self, embed_dims: int, assign_eps: float, gumbel: bool,
                 gumbel_tau: float):
        super().__init__(embed_dims, num_heads=1)
        self.scale = embed_dims**-0.5
        self.assign_eps = assign_eps
        self.gumbel = gumbel
        self.gumbel_tau = gumbel_tau

    def forward(self, query: torch.Tensor,
                key: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Group tokens ``[B, S, C]`` over image tokens ``[B, L, C]`` to new
        group tokens and the soft assignment ``[B, S, L]`` (no noise)."""
        raw = (fast_linear.apply(self.q_proj, query) @ fast_linear.apply(
            self.k_proj, key).transpose(-2, -1)) * self.scale
        soft = raw.softmax(dim=-2)
        if self.training and self.gumbel:
            # Gumbel.sample's noise is always finite.
            noise = torch.distributions.Gumbel(
                raw.new_zeros(()), raw.new_ones(())).sample(raw.shape)
            hard = straight_through_one_hot(
                ((raw + noise) / self.gumbel_tau).softmax(-2), -2)
        else:
            hard = straight_through_one_hot(soft, -2)
        hard = hard / (hard.sum(dim=-1, keepdim=True) + self.assign_eps)
        out = hard @ fast_linear.apply(self.v_proj, key)
        return fast_linear.apply(self.proj, out), soft


class CrossAttentionBlock(nn.Module):
    """Post-norm cross-attention block: ``q += attn(q, x); q += mlp(norm2(q));
    q = norm_post(q)``."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_dims: int,
                 act: str, layer_norm_eps: float, attn_drop: float):
        super().__init__()
        self.attn = CrossAttention(embed_dims, num_heads, attn_drop)
        self.norm2 = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.mlp = MLP(embed_dims, mlp_dims, act=act)
        self.norm_post = nn.LayerNorm(embed_dims, eps=layer_norm_eps)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        query = query + self.attn(query, key)
        query = query + self.mlp(self.norm2(query))
        return self.norm_post(query)


class GroupingBlock(nn.Module):
    """Merge ``L`` image tokens into ``S_out`` segment tokens: the
    ``S_in = num_group_tokens`` group tokens are mixed into ``S_out``,
    attend to the image tokens, take their assigned members
    (:class:`AssignAttention`) and pass a residual channel MLP.

    Args:
        assign_mlp_ratio (tuple[float, float]): Hidden sizes of the token
            mixer and the channel MLP, as multiples of ``embed_dims``.
        assign_eps, gumbel, gumbel_tau: See :class:`AssignAttention`.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_group_tokens: int,
                 num_output_groups: int, mlp_dims: int,
                 assign_mlp_ratio: Tuple[float, float], assign_eps: float,
                 gumbel: bool, gumbel_tau: float, act: str,
                 layer_norm_eps: float, attn_drop: float):
        super().__init__()
        tokens_dims, channels_dims = (
            int(r * embed_dims) for r in assign_mlp_ratio)
        self.num_output_groups = num_output_groups
        self.norm_tokens = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.mlp_inter = MixerMLP(
            num_group_tokens, tokens_dims, num_output_groups, act=act)
        self.norm_post_tokens = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.norm_x = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.pre_assign_attn = CrossAttentionBlock(embed_dims, num_heads,
                                                   mlp_dims, act,
                                                   layer_norm_eps, attn_drop)
        self.assign = AssignAttention(embed_dims, assign_eps, gumbel,
                                      gumbel_tau)
        self.norm_new_x = nn.LayerNorm(embed_dims, eps=layer_norm_eps)
        self.mlp_channels = MLP(embed_dims, channels_dims, act=act)

    def forward(
            self, x: torch.Tensor,
            group_tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, L, C]`` and group tokens ``[B, S_in, C]`` to segment
        tokens ``[B, S_out, C]`` and the soft assignment ``[B, S_out, L]``."""
        group_tokens = self.norm_tokens(group_tokens)
        x = self.norm_x(x)
        projected = self.norm_post_tokens(self.mlp_inter(group_tokens))
        projected = self.pre_assign_attn(projected, x)
        new_x, soft_assign = self.assign(projected, x)
        new_x = new_x + projected
        new_x = new_x + self.mlp_channels(self.norm_new_x(new_x))
        return new_x, soft_assign
