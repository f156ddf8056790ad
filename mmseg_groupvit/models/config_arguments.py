# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Refuse config keys that no constructor argument of their component (this
package's, mmseg's or mmengine's training loops) takes: a misspelled key
would end in a ``TypeError`` deep in mmengine's builder."""
import inspect
from typing import Any

from mmengine.registry import Registry
from mmseg.registry import MODELS

from groupvit_common.errors import ConfigValueError

CHECKED = (__name__.split('.')[0] + '.', 'mmseg.', 'mmengine.runner.')
#: Keys mmengine's builder reads itself (``_scope_``: the registry scope).
RESERVED = ('type', '_scope_')


def builds(cfg: dict, base: type, registry: Registry = MODELS) -> bool:
    """Whether a config's ``type`` (a name in ``registry`` or a class) is
    ``base`` or a subclass of it."""
    kind = cfg.get('type')
    if isinstance(kind, str):
        kind = registry.get(kind)
    return isinstance(kind, type) and issubclass(kind, base)


def _component(type_: Any, registry: Registry):
    """The class ``type_`` names in ``registry``, if of :data:`CHECKED`."""
    cls = type_
    if isinstance(type_, str):
        try:
            cls = registry.get(type_)
        except (KeyError, ValueError, ImportError):
            return None
    if isinstance(cls, type) and cls.__module__.startswith(CHECKED):
        return cls
    return None


def _arguments(cls) -> tuple:
    """The keyword arguments of ``cls``'s constructor and, through
    ``**kwargs``, its parents'; None past this package and mmseg."""
    names = []
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        if not klass.__module__.startswith(CHECKED):
            return None
        params = inspect.signature(klass.__init__).parameters.values()
        names += [
            p.name for p in params if p.name != 'self' and p.kind in (
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY) and p.name not in names
        ]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return tuple(names)
    return None


def check_model_arguments(cfg: Any,
                          key: str = 'model',
                          registry: Registry = MODELS,
                          reserved: tuple = RESERVED) -> None:
    """Raise :class:`ConfigValueError` for a key of ``cfg`` (the config at
    key ``key``) or of a dict nested in it that its component's constructor
    does not take; ``registry`` holds the types (``LOOPS`` for
    ``train_cfg``), ``reserved`` the keys of ``cfg`` its builder reads."""
    if isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            check_model_arguments(value, f'{key}.{i}', registry)
        return
    if not isinstance(cfg, dict):
        return
    cls = _component(cfg.get('type'), registry)
    arguments = _arguments(cls) if cls is not None else None
    if arguments is not None:
        unknown = sorted(
            str(k) for k in cfg if k not in reserved and k not in arguments)
        if unknown:
            raise ConfigValueError(
                f'{key}.{unknown[0]} is not a setting of {cls.__name__}: '
                f'check its spelling in the config or the command\'s '
                f'options. {cls.__name__} takes {", ".join(arguments)}.')
    for name, value in cfg.items():
        check_model_arguments(value, f'{key}.{name}', registry)
