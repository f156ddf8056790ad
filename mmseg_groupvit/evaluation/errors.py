# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Errors about user input (files, configs, data), and how the command-line
tools print them: one message naming the input and the fix, no
traceback."""
import re

from ..datasets.imagenet import ClassificationDataError
from ..datasets.transforms import ImageLoadError
from ..models.backbones.groupvit import ImageSizeError
from ..utils.config_checks import ConfigValueError
from ..weights.io import CheckpointError

__all__ = [
    'ConfigCheckError', 'LabelMapError', 'ProgressError', 'USER_ERRORS',
    'user_error_message'
]


class ConfigCheckError(ValueError):
    """A test config that cannot give a correct result (missing data,
    class counts that disagree), with the fix."""


class LabelMapError(ValueError):
    """A ground-truth label map that would be miscounted, naming the
    file."""


class ProgressError(ValueError):
    """Recorded evaluation progress that cannot be resumed."""


#: Exceptions caused by the user's input; tools print their message only.
USER_ERRORS = (CheckpointError, ClassificationDataError, ConfigCheckError,
               ConfigValueError, ImageLoadError, ImageSizeError, LabelMapError,
               ProgressError)

# mmengine's registry re-raises an error of a component's constructor with
# "class `Name` in path/to/module.py: " in front, once per nesting level.
_BUILD_PREFIX = re.compile(r'^(class `\w+` in \S+\.py: )+')


def user_error_message(error: BaseException) -> str:
    """The message of a user error, without the worker traceback that
    PyTorch's DataLoader prepends when the error happened in a worker
    process, nor the "class `Name` in module.py: " prefixes that mmengine's
    registry adds when a component refuses its config.

    Args:
        error (BaseException): The exception.

    Returns:
        str: The original message.
    """
    text = str(error)
    if 'Original Traceback' in text:
        marker = f'{type(error).__name__}: '
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return _BUILD_PREFIX.sub('', text.strip())
