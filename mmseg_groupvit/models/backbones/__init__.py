# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit import GroupViT, ImageSizeError

__all__ = ['GroupViT', 'ImageSizeError']
