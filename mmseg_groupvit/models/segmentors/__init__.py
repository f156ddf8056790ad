# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_aux_encoder_decoder import GroupViTAuxEncoderDecoder
from .groupvit_encoder_decoder import GroupViTEncoderDecoder

__all__ = ['GroupViTEncoderDecoder', 'GroupViTAuxEncoderDecoder']
