# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_head import (GroupViTHead, chain_assignments, group_maps,
                            paint_scores)

__all__ = ['GroupViTHead', 'chain_assignments', 'group_maps', 'paint_scores']
