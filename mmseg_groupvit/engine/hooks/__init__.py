# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .groupvit_arch_hook import GroupViTArchHook
from .pretrain_data_check import PretrainDataCheckHook
from .progress_hook import ImageProgressHook
from .test_report_hook import TestReportHook
from .validate_first_hook import ValidateFirstHook

__all__ = [
    'ImageProgressHook', 'PretrainDataCheckHook', 'GroupViTArchHook',
    'TestReportHook', 'ValidateFirstHook'
]
