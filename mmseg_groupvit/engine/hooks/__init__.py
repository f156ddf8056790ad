# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_arch_hook import GroupViTArchHook
from .pretrain_data_check import PretrainDataCheckHook
from .validate_first_hook import ValidateFirstHook
from .progress_hook import ImageProgressHook

__all__ = [
    'ImageProgressHook', 'PretrainDataCheckHook', 'GroupViTArchHook',
    'ValidateFirstHook'
]
