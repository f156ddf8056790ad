# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The errors users see, each naming the input and the fix; the tools print
them as one ``error:`` line."""
import contextlib
import functools
import re
import reprlib
import sys
import unicodedata
from numbers import Number

__all__ = [
    'CheckpointError', 'ClassificationDataError', 'ConfigCheckError',
    'ConfigValueError', 'DataFileError', 'ExportCheckError', 'ImageLoadError',
    'ImageSizeError', 'LabelMapError', 'NonFiniteLossError', 'ProgressError',
    'TrainingDataError', 'USER_ERRORS', 'user_error_message', 'error_line',
    'exit_on_user_error', 'first_few', 'first_line', 'interruptible', 'shown'
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason and the fix."""


class ClassificationDataError(ValueError):
    """A classification dataset whose files or labels cannot be used."""


class ConfigCheckError(ValueError):
    """A test config that cannot give a correct result, with the fix."""


class ConfigValueError(ValueError):
    """A config value that cannot work, naming its key and the fix."""


class DataFileError(ValueError):
    """A data file (JSON, text, gzip, image header) that cannot be used."""


class ImageLoadError(DataFileError):
    """An image file that cannot be used, with the reason and the fix."""


class ImageSizeError(ValueError):
    """An image (after the test pipeline) smaller than one patch."""


class LabelMapError(ValueError):
    """A ground-truth label map that would be miscounted."""


class ProgressError(ValueError):
    """Recorded evaluation progress that cannot be resumed."""


class TrainingDataError(ValueError):
    """Training data (shards, annotations, captions) that cannot be used."""


class NonFiniteLossError(RuntimeError):
    """A training step whose loss or gradient is not finite."""


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
    """A user error's message without a DataLoader worker's traceback or
    mmengine's "class `Name` in module.py: " prefixes."""
    text, marker = str(error), f'{type(error).__name__}: '
    if 'Original Traceback' in text and marker in text:
        text = text.rsplit(marker, 1)[1]
    return _BUILD_PREFIX.sub('', text.strip())


def error_line(problem) -> str:
    """``error: MESSAGE`` of a message or an error: the line a tool prints
    for bad input. A name from a file may hold terminal commands or line
    breaks: control and format characters are shown escaped (not the
    joiner of emoji), and every line after the first is indented."""
    if isinstance(problem, BaseException):
        problem = user_error_message(problem)
    text = ''.join(
        ascii(c)[1:-1] if unicodedata.category(c) in (
            'Cc', 'Cf', 'Zl', 'Zp') and c not in '\n\t\u200d' else c
        for c in str(problem))
    return 'error: ' + '\n'.join(
        line if i == 0 or line[:1].isspace() else '  ' + line
        for i, line in enumerate(text.split('\n')))


class _Shown(reprlib.Repr):
    """Two levels deep, long values cut, huge integers and objects other
    than numbers and bytes by their type."""

    def repr_int(self, x, level):
        return super().repr_int(x, level) if x.bit_length() <= 128 else (
            f'<{x.bit_length()}-bit int>')

    def repr_instance(self, x, level):
        return super().repr_instance(x, level) if isinstance(
            x, (Number, bytes, type(None))) else f'<{type(x).__name__}>'


_SHOWN = _Shown()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 60, 60
#: A short repr of an untrusted value, for a message.
shown = _SHOWN.repr


def first_line(error) -> str:
    """The first sentence of an error's message (or its type's name)."""
    text = str(error).strip().splitlines()
    return text[0].split('. ')[0].rstrip('.') if text else type(error).__name__


def first_few(names, limit: int = 3) -> str:
    """The first ``limit`` of ``names`` for a message: ``a, b, c, ...``."""
    return ', '.join(names[:limit]) + ', ...' * (len(names) > limit)


@contextlib.contextmanager
def exit_on_user_error(*also: type):
    """Exit with :func:`error_line` when a user error (:data:`USER_ERRORS`
    or ``also``) leaves the block."""
    try:
        yield
    except USER_ERRORS + also as error:
        raise SystemExit(error_line(error)) from None


def interruptible(main=None, *, then: str = ''):
    """Decorate a tool's ``main``: Ctrl-C ends it with one line (``then``
    added, what to do next) and exit code 130 (the shell's), not a
    traceback. ``@interruptible`` or ``@interruptible(then=...)``."""
    if main is None:
        return functools.partial(interruptible, then=then)

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print(
                'interrupted (Ctrl-C); what was written so far is kept' +
                (f'; {then}.' if then else '.'),
                file=sys.stderr)
            raise SystemExit(130) from None

    return run
