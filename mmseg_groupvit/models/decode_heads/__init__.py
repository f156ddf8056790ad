# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_head import GroupViTHead, group_maps, head_with_bg, paint_scores

__all__ = ['GroupViTHead', 'group_maps', 'head_with_bg', 'paint_scores']
