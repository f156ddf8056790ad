# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Checks of config values, for the components that own them.

Each component checks its own arguments once, when it is built, and raises
:class:`ConfigValueError` naming the config key, the value and the fix. The
tools print that message as one ``error:`` line (see
:mod:`.errors`).
"""
import math
from numbers import Integral, Real
from typing import Any, Sequence, Tuple

from .errors import ConfigValueError

__all__ = [
    'check_positive_int', 'check_positive_pair', 'check_bg_thresh',
    'check_choice'
]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_positive_int(value: Any, key: str, meaning: str) -> int:
    """Return ``value`` if it is an integer of at least 1.

    Args:
        value: The value.
        key (str): Its config key, e.g. ``'model.test_cfg.window_batch'``.
        meaning (str): What it counts, e.g. ``'windows per backbone pass'``.

    Raises:
        ConfigValueError: Naming the key, the value and what it must be.
    """
    if not _is_int(value) or value < 1:
        raise ConfigValueError(
            f'{key} must be a positive integer ({meaning}), got {value!r}. '
            f'Set it with --cfg-options {key}=N, N >= 1.')
    return int(value)


def check_positive_pair(value: Any,
                        key: str,
                        meaning: str,
                        form: str = '(H,W)') -> Tuple[int, int]:
    """Return ``value`` as a pair if it is two integers of at least 1.

    Args:
        value: The value (tuple or list).
        key (str): Its config key.
        meaning (str): What it is, e.g. ``'window height and width'``.
        form (str): The order of the pair, for the message.

    Raises:
        ConfigValueError: Naming the key, the value and the form expected.
    """
    if not (isinstance(value, Sequence) and not isinstance(value, str)
            and len(value) == 2 and all(_is_int(v) and v >= 1 for v in value)):
        raise ConfigValueError(
            f'{key} must be two positive integers ({meaning}), got '
            f'{value!r}. Set it with --cfg-options "{key}={form}".')
    return int(value[0]), int(value[1])


def check_bg_thresh(value: Any, key: str) -> float:
    """Return the background threshold ``value`` as a float in [0, 1].

    Args:
        value: The value.
        key (str): Its config key, e.g. ``'model.test_cfg.bg_thresh'``.

    Raises:
        ConfigValueError: Not a number, NaN, or outside [0, 1].
    """
    number = float(value) if isinstance(
        value, Real) and not isinstance(value, bool) else math.nan
    if not 0.0 <= number <= 1.0:
        raise ConfigValueError(
            f'{key} must be a number in [0, 1], got {value!r}. A pixel is '
            f'background when its group\'s best class score is below it: 0 '
            f'keeps every pixel foreground, 0.95 is the VOC and COCO value, '
            f'0.35 the PASCAL Context one.')
    return number


def check_choice(value: Any, key: str, choices: Sequence) -> Any:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        ConfigValueError: Naming the key, the value and the choices.
    """
    if value not in choices:
        raise ConfigValueError(
            f'{key} must be one of {", ".join(map(repr, choices))}, got '
            f'{value!r}.')
    return value
