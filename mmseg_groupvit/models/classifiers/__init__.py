# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_classifier import GroupViTClassifier, resolve_classes

__all__ = ['GroupViTClassifier', 'resolve_classes']
