# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The runner of the command-line tools, its hooks, and the commands the
tools share."""
from .classification_test import classification_main
from .hooks import ImageProgressHook
from .runner import TRAIN_LOG, QuietRunner, ToolRunner, build_runner
from .zero_shot_val_loop import ZeroShotValLoop

__all__ = [
    'ImageProgressHook', 'QuietRunner', 'ToolRunner', 'build_runner',
    'TRAIN_LOG', 'classification_main', 'ZeroShotValLoop'
]
