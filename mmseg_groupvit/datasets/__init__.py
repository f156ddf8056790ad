# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Datasets and transforms registered into ``mmseg.registry``."""
from .checked_transforms import (CheckedLoadAnnotations, CheckedResize,
                                 use_checked_resize)
from .classification_transforms import PackInputs, ResizeEdge
from .coco_object import COCOObjectDataset
from .imagenet import ClassificationDataError, CustomDataset, ImageNet
from .transforms import (ImageLoadError, RobustLoadImageFromFile,
                         exif_orientation)

__all__ = [
    'COCOObjectDataset', 'ImageLoadError', 'RobustLoadImageFromFile',
    'exif_orientation', 'CustomDataset', 'ImageNet', 'ClassificationDataError',
    'ResizeEdge', 'PackInputs', 'CheckedResize', 'CheckedLoadAnnotations',
    'use_checked_resize'
]
