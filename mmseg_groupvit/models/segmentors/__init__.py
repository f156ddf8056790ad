# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_encoder_decoder import GroupViTEncoderDecoder

__all__ = ['GroupViTEncoderDecoder']
