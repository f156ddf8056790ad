# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_classifier import GroupViTClassifier

__all__ = ['GroupViTClassifier']
