# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from . import fast_linear
from .grouping import GroupingBlock, chain_assignments
from .transformer import (MLP, MixerMLP, ProjectionMLP, SelfAttention,
                          TransformerBlock)

__all__ = [
    'fast_linear', 'GroupingBlock', 'chain_assignments', 'ProjectionMLP',
    'MLP', 'MixerMLP', 'SelfAttention', 'TransformerBlock'
]
