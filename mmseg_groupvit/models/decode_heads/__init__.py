# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_head import GroupViTHead, group_maps, paint_scores

__all__ = ['GroupViTHead', 'group_maps', 'paint_scores']
