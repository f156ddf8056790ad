# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .classification import classify_image, init_classifier
from .group_maps import image_group_maps
from .inference import init_groupvit

__all__ = [
    'init_groupvit', 'image_group_maps', 'init_classifier', 'classify_image'
]
