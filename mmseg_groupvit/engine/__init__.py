# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The runner of the command-line tools, its hooks and loops."""
from .hooks import (GroupViTArchHook, PretrainDataCheckHook, TestReportHook,
                    ValidateFirstHook)
from .runner import TRAIN_LOG, ToolRunner, build_runner, tool_config
from .zero_shot_val_loop import ZeroShotValLoop

__all__ = [
    'GroupViTArchHook', 'PretrainDataCheckHook', 'TestReportHook',
    'ValidateFirstHook', 'ToolRunner', 'build_runner', 'tool_config',
    'TRAIN_LOG', 'ZeroShotValLoop'
]
