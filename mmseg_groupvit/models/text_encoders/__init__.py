# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_text_encoder import GroupViTTextEncoder

__all__ = ['GroupViTTextEncoder']
