# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The errors users see, and how the command-line tools print them.

Every exception here means "the input cannot give a correct result": its
message names the input (file, config key, option) and the fix, and the
tools print it as one ``error:`` line without a traceback
(:data:`USER_ERRORS`, :func:`user_error_message`). The components that own
a value raise them when they check it.

This module imports only the standard library: the onnxruntime runner
(``tools/deployment/onnx_segment.py``), which must not import PyTorch,
uses it too.
"""
import contextlib
import re

__all__ = [
    'CheckpointError', 'ClassificationDataError', 'ConfigCheckError',
    'ConfigValueError', 'DataFileError', 'ExportCheckError', 'ImageLoadError',
    'ImageSizeError', 'LabelMapError', 'NonFiniteLossError', 'ProgressError',
    'TrainingDataError', 'USER_ERRORS', 'user_error_message', 'error_line',
    'exit_on_user_error'
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason and the fix."""


class ClassificationDataError(ValueError):
    """A classification dataset whose files or labels cannot be used."""


class ConfigCheckError(ValueError):
    """A test config that cannot give a correct result (missing data,
    class counts that disagree), with the fix."""


class ConfigValueError(ValueError):
    """A config value that cannot work, naming its key and the fix."""


class DataFileError(ValueError):
    """A data file (vocabulary, JSON, tokenizer table, image header) that
    cannot be used: missing, not a regular file, over its size bounds,
    malformed (:mod:`.files`)."""


class ImageLoadError(DataFileError):
    """An image file that cannot be used, with the reason and the fix."""


class ImageSizeError(ValueError):
    """An image (after the test pipeline) smaller than one patch."""


class LabelMapError(ValueError):
    """A ground-truth label map that would be miscounted, naming the
    file."""


class ProgressError(ValueError):
    """Recorded evaluation progress that cannot be resumed."""


class TrainingDataError(ValueError):
    """Training data (shards, annotation files, captions) that cannot be
    used, naming the file and the fix."""


class NonFiniteLossError(RuntimeError):
    """A training step whose loss or gradient is not finite, naming the
    step and the term."""


class ExportCheckError(RuntimeError):
    """The exported graphs disagree with PyTorch (the export is deleted)."""


#: Exceptions caused by the user's input; tools print their message only.
USER_ERRORS = (CheckpointError, ClassificationDataError, ConfigCheckError,
               ConfigValueError, DataFileError, ImageLoadError, ImageSizeError,
               LabelMapError, NonFiniteLossError, ProgressError,
               TrainingDataError)

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


def error_line(problem) -> str:
    """The one line a tool prints for bad input: ``error: MESSAGE``.

    Args:
        problem (str | BaseException): The message, or the error (see
            :func:`user_error_message`).
    """
    if isinstance(problem, BaseException):
        problem = user_error_message(problem)
    return f'error: {problem}'


@contextlib.contextmanager
def exit_on_user_error(*also: type):
    """Exit with :func:`error_line` when a user error (:data:`USER_ERRORS`,
    and the types ``also``) leaves the block."""
    try:
        yield
    except USER_ERRORS + also as error:
        raise SystemExit(error_line(error)) from None
