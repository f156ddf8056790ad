# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The runner of the command-line tools and its hooks."""
from .hooks import ImageProgressHook, TestReportHook
from .runner import TRAIN_LOG, QuietRunner, ToolRunner, build_runner
from .zero_shot_val_loop import ZeroShotValLoop

__all__ = [
    'ImageProgressHook', 'QuietRunner', 'TestReportHook', 'ToolRunner',
    'build_runner', 'TRAIN_LOG', 'ZeroShotValLoop'
]
