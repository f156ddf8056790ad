# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Datasets and transforms registered into ``mmseg.registry``."""
from .classification_transforms import PackInputs, ResizeEdge
from .coco_object import COCOObjectDataset
from .imagenet import ClassificationDataError, CustomDataset, ImageNet
from .transforms import (ImageLoadError, RobustLoadImageFromFile,
                         exif_orientation)

__all__ = [
    'COCOObjectDataset', 'ImageLoadError', 'RobustLoadImageFromFile',
    'exif_orientation', 'CustomDataset', 'ImageNet', 'ClassificationDataError',
    'ResizeEdge', 'PackInputs'
]
