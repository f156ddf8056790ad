# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Datasets and transforms registered into ``mmseg.registry``."""
from .classification_transforms import PackInputs, ResizeEdge
from .coco_object import COCOObjectDataset
from .imagenet import CustomDataset, ImageNet
from .pretraining import *  # noqa: F401,F403
from .transforms import (CheckedLoadAnnotations, CheckedResize,
                         RobustLoadImageFromFile, exif_orientation,
                         use_checked_steps)

__all__ = [
    'COCOObjectDataset', 'RobustLoadImageFromFile', 'exif_orientation',
    'CustomDataset', 'ImageNet', 'ResizeEdge', 'PackInputs', 'CheckedResize',
    'CheckedLoadAnnotations', 'use_checked_steps'
]
