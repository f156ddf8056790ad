# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The protocol of an export (``deploy.json``), checked once when it is
loaded: an export folder may come from anyone, and a bad value must not
reach the windows, the resize or the graph."""
import math
from numbers import Integral, Real
from typing import Any, Optional, Sequence

from groupvit_common import checks as config_checks

__all__ = ['ExportError', 'check_protocol', 'check_runtime_options']


class ExportError(ValueError):
    """An export folder that cannot be used."""


class _BadValue(ValueError):
    """A value of the protocol, before the file is named."""


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(
        value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _pair(values: dict, key: str, name: Optional[str] = None) -> list:
    value = values.get(key)
    if not (isinstance(value, list) and len(value) == 2
            and all(_is_int(v) and v >= 1 for v in value)):
        raise _BadValue(f'protocol.{name or key} must be two positive '
                        f'integers, got {value!r}')
    return value


def _check_values(protocol: dict, window: Optional[Sequence]) -> None:
    resize = protocol.get('resize')
    if not isinstance(resize, dict) or resize.get('keep_ratio') is not True:
        raise _BadValue(
            f'protocol.resize must be a keep-ratio resize, got {resize!r}')
    _pair(resize, 'scale', 'resize.scale')
    crop = _pair(protocol, 'crop_size')
    stride = _pair(protocol, 'stride')
    if stride[0] > crop[0] or stride[1] > crop[1]:
        raise _BadValue(f'protocol.stride {stride} is larger than the window '
                        f'{crop}: pixels between windows would get no score')
    if window is not None and list(window) != crop:
        raise _BadValue(
            f'protocol.crop_size {crop} is not the image graph\'s window '
            f'{list(window)}')
    for key in ('mean', 'std'):
        value = protocol.get(key)
        if not (isinstance(value, list) and len(value) == 3
                and all(_is_number(v) for v in value)):
            raise _BadValue(
                f'protocol.{key} must be three finite numbers (RGB), got '
                f'{value!r}')
    if not all(v > 0 for v in protocol['std']):
        raise _BadValue(
            f'protocol.std must be positive, got {protocol["std"]!r}')
    if not isinstance(protocol.get('with_bg'), bool):
        raise _BadValue(f'protocol.with_bg must be true or false, got '
                        f'{protocol.get("with_bg")!r}')
    context = protocol.get('context_length')
    if not (_is_int(context) and context >= 3):
        raise _BadValue(
            f'protocol.context_length must be an integer of at least 3, got '
            f'{context!r}')
    templates = protocol.get('templates')
    if not (isinstance(templates, list) and templates and all(
            isinstance(t, str) and t.count('{}') == 1 for t in templates)):
        raise _BadValue(
            f'protocol.templates must be a list of texts with one "{{}}" '
            f'each, got {templates!r}')
    try:
        # The package's check of every threshold (also --bg-thresh).
        config_checks.check_bg_thresh(
            protocol.get('bg_thresh'), 'protocol.bg_thresh')
    except ValueError as e:
        raise _BadValue(str(e).rstrip('.')) from None
    classes = protocol.get('classes')
    if not (isinstance(classes, list) and classes and all(
            isinstance(c, list) and c and all(
                isinstance(n, str) and n.strip() for n in c)
            for c in classes)):
        raise _BadValue(
            'protocol.classes must be a list of non-empty lists of names')


def check_protocol(protocol: Any,
                   source: str,
                   window: Optional[Sequence] = None) -> dict:
    """Return ``protocol`` if the runner can use every value of it.

    Args:
        protocol: ``deploy.json``'s ``protocol``.
        source (str): The file, for the message.
        window (Sequence, optional): The image graph's window ``(h, w)``
            when its input has a fixed size.

    Raises:
        ExportError: Naming the value and the fix (export again).
    """
    if not isinstance(protocol, dict):
        raise ExportError(
            f'{source}: "protocol" must be a mapping; export again with '
            f'tools/deployment/pytorch2onnx.py.')
    try:
        _check_values(protocol, window)
    except _BadValue as e:
        raise ExportError(
            f'{source}: {e}; the export is damaged or was edited: export '
            f'again with tools/deployment/pytorch2onnx.py.') from None
    return protocol


def check_runtime_options(threads: Any, window_batch: Any) -> None:
    """The runner's own settings.

    Raises:
        ValueError: ``threads`` not None or an integer >= 1, or
            ``window_batch`` not an integer >= 1.
    """
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise ValueError(f'threads must be an integer >= 1 (leave --threads '
                         f'out for all cores), got {threads!r}')
    if not (_is_int(window_batch) and window_batch >= 1):
        raise ValueError(f'window batch must be an integer >= 1 '
                         f'(--window-batch), got {window_batch!r}')
