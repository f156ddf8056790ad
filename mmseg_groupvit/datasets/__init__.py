# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Datasets and transforms registered into ``mmseg.registry``."""
from .coco_object import COCOObjectDataset
from .transforms import (ImageLoadError, RobustLoadImageFromFile,
                         exif_orientation)

__all__ = [
    'COCOObjectDataset', 'ImageLoadError', 'RobustLoadImageFromFile',
    'exif_orientation'
]
