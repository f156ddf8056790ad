# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Datasets registered into ``mmseg.registry.DATASETS``."""
from .coco_object import COCOObjectDataset

__all__ = ['COCOObjectDataset']
