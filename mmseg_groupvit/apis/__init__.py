# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .inference import image_group_maps, init_groupvit

__all__ = ['init_groupvit', 'image_group_maps']
