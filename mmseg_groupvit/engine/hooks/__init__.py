# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .pretrain_data_check import PretrainDataCheckHook
from .progress_hook import ImageProgressHook

__all__ = ['ImageProgressHook', 'PretrainDataCheckHook']
