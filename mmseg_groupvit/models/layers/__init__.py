# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from . import fast_linear  # noqa: F401  (fused linear kernels)
from .grouping import (AssignAttention, CrossAttentionBlock, GroupingBlock,
                       chain_assignments)
from .projector import ProjectionMLP
from .transformer import (MLP, CrossAttention, MixerMLP, SelfAttention,
                          TransformerBlock, build_activation)

__all__ = [
    'AssignAttention', 'CrossAttentionBlock', 'GroupingBlock', 'ProjectionMLP',
    'MLP', 'MixerMLP', 'SelfAttention', 'CrossAttention', 'TransformerBlock',
    'build_activation', 'chain_assignments'
]
