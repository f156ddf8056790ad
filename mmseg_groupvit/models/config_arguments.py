# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Config keys that no argument of this package's components takes.

A misspelled key (``--cfg-options model.test_cgf.mode=whole``,
``model.decode_head.bg_tresh=0.5``) would otherwise end in Python's
``TypeError`` from deep inside mmengine's builder. The check reads the
constructors' signatures (and, for one that takes ``**kwargs``, its
parents'), so it follows the code; components of other packages are left
to their own checks.
"""
import inspect
from typing import Any

from mmseg.registry import MODELS

from ..errors import ConfigValueError

__all__ = ['check_model_arguments']

PACKAGE = __name__.split('.')[0]


def _component(type_: Any):
    """The class a config's ``type`` names in mmseg's model registry, if it
    is one of this package's; else None."""
    if isinstance(type_, type):
        cls = type_
    elif isinstance(type_, str):
        try:
            cls = MODELS.get(type_)
        except (KeyError, ValueError, ImportError):
            return None
    else:
        return None
    if cls is None or not cls.__module__.startswith(PACKAGE + '.'):
        return None
    return cls


def _arguments(cls) -> tuple:
    """The keyword arguments of ``cls``'s constructor. A constructor that
    takes ``**kwargs`` passes them on to its parent's (as this package's
    do), whose arguments are added, up to the first constructor without
    ``**kwargs``; None when none is found (anything may be taken)."""
    names = []
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [
            p.name for p in params if p.name != 'self' and p.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY) and p.name not in names
        ]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return tuple(names)
    return None


def check_model_arguments(cfg: Any, key: str = 'model') -> None:
    """Refuse a key of a config dict whose ``type`` is one of this package's
    components when its constructor has no such argument, in ``cfg`` and
    every dict and list nested in it.

    Args:
        cfg: A model config (dict) or any value nested in one.
        key (str): Its config key, for the message. Defaults to
            ``'model'``.

    Raises:
        ConfigValueError: Naming the key, the component and its arguments.
    """
    if isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            check_model_arguments(value, f'{key}.{i}')
        return
    if not isinstance(cfg, dict):
        return
    cls = _component(cfg.get('type'))
    arguments = _arguments(cls) if cls is not None else None
    if arguments is not None:
        unknown = sorted(k for k in cfg if k != 'type' and k not in arguments)
        if unknown:
            raise ConfigValueError(
                f'{key}.{unknown[0]} is not a setting of {cls.__name__}: '
                f'check its spelling in the config or --cfg-options. '
                f'{cls.__name__} takes {", ".join(arguments)}.')
    for name, value in cfg.items():
        check_model_arguments(value, f'{key}.{name}')
