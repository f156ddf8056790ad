# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The projection head into the joint image-text space."""
import torch
from torch import nn


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
