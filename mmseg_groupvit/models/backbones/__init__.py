# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit import GroupViT

__all__ = ['GroupViT']
