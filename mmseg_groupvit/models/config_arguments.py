# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Refuse config keys that no constructor argument of their component (this
package's, mmseg's or mmengine's training loops) takes: a misspelled key
would end in a ``TypeError`` deep in mmengine's builder. The values of the
arguments are checked by their names' rules (``groupvit_common.checks``),
the constructors' defaults filled in."""
import inspect
from typing import Any

from mmengine.registry import Registry
from mmseg.registry import MODELS

from groupvit_common.checks import check_arguments, check_in_index, is_int
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


def _arguments(cls) -> dict:
    """The keyword arguments of ``cls``'s constructor and, through
    ``**kwargs``, its parents', with their defaults (``Parameter.empty``:
    none); None past this package and mmseg."""
    names = {}
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        if not klass.__module__.startswith(CHECKED):
            return None
        params = inspect.signature(klass.__init__).parameters.values()
        for p in params:
            if p.name != 'self' and p.kind in (
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    inspect.Parameter.KEYWORD_ONLY):
                names.setdefault(p.name, p.default)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return names
    return None


def _with_defaults(cfg: Any, registry: Registry = MODELS) -> dict:
    """A component's config over its constructor's defaults ({} for what
    :func:`_component` does not check)."""
    cls = _component(cfg.get('type'), registry) if isinstance(cfg,
                                                              dict) else None
    arguments = _arguments(cls) if cls is not None else None
    return {} if arguments is None else {**arguments, **cfg}


def check_head_inputs(cfg: dict, key: str = 'model') -> None:
    """Raise :class:`ConfigValueError` unless every head of a segmentor's
    config ``cfg`` (at ``key``) that reads the backbone's maps by
    ``in_index`` (the image encoder's, for auxiliary heads) selects maps
    that its ``out_indices`` gives; a neck's maps are not counted."""
    name = 'backbone' if 'backbone' in cfg else 'image_encoder'
    out_indices = _with_defaults(cfg.get(name)).get('out_indices')
    if 'neck' in cfg or not (is_int(out_indices)
                             or isinstance(out_indices, (list, tuple))):
        return
    outputs = 1 if is_int(out_indices) else len(out_indices)
    for part in ('decode_head', 'auxiliary_head'):
        heads = cfg.get(part)
        many = isinstance(heads, list)
        for i, head in enumerate(heads if many else [heads]):
            head = _with_defaults(head)
            if 'in_index' in head:
                check_in_index(head, f'{key}.{part}{f".{i}" * many}', outputs,
                               f'{key}.{name}.out_indices')


def check_model_arguments(cfg: Any,
                          key: str = 'model',
                          registry: Registry = MODELS,
                          reserved: tuple = RESERVED) -> None:
    """Raise :class:`ConfigValueError` for a key of ``cfg`` (the config at
    key ``key``) or of a dict nested in it that its component's constructor
    does not take, or whose value the argument cannot use
    (:func:`groupvit_common.checks.check_arguments`, and
    :func:`check_head_inputs`); ``registry`` holds the types (``LOOPS`` for
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
        check_arguments(cfg, arguments, key)
        if 'decode_head' in arguments:
            check_head_inputs(cfg, key)
    for name, value in cfg.items():
        check_model_arguments(value, f'{key}.{name}', registry)
