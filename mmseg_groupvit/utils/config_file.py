# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Read a config as the tools do (``--cfg-options`` merged, checked once).
Importing it makes mmengine read YAML with PyYAML's safe loader, bounded by
:data:`MAX_YAML_VALUES`. A YAML or JSON config is data: :func:`load_config`
refuses what in one would run code."""
import copy
import os
import os.path as osp
import tempfile
from importlib import import_module
from typing import Optional, Union

import mmengine.registry
import yaml
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.fileio import load
from mmengine.fileio.handlers import YamlHandler, register_handler
from mmengine.registry import Registry
from mmengine.utils import get_installed_path
from mmseg.registry import DATASETS, TRANSFORMS

from groupvit_common.checks import check_config
from groupvit_common.errors import ConfigCheckError
from ..models.decode_heads.groupvit_head import head_with_bg
from .class_names import get_prompt_classes

#: Most values (aliases counted where used) a YAML file may expand to.
MAX_YAML_VALUES = 1_000_000


class _SafeLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """PyYAML's safe loader (in C where PyYAML has libyaml: every ``mmseg::``
    base parses ~50 files), with the tuples ``Config.dump`` writes."""


_SafeLoader.add_constructor(
    'tag:yaml.org,2002:python/tuple',
    lambda loader, node: tuple(loader.construct_sequence(node)))


@register_handler(['yaml', 'yml'])
class SafeYamlHandler(YamlHandler):
    """mmengine's YAML handler with PyYAML's safe loader and a bound of
    :data:`MAX_YAML_VALUES` values."""

    def load_from_fileobj(self, file, **kwargs):
        value = yaml.load(file, Loader=_SafeLoader)
        stack, budget = [value], MAX_YAML_VALUES
        while stack:
            item = stack.pop()
            budget -= 1
            if budget < 0:
                raise ValueError(f'the YAML expands to more than '
                                 f'{MAX_YAML_VALUES:,} values (aliases '
                                 f'repeated)')
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
        return value


def _unreadable(path: str, error: Exception) -> ConfigCheckError:
    if isinstance(error, UnicodeDecodeError):
        why = (f'it is not a text file (byte {error.start} is not UTF-8); '
               f'give a .py, .json or .yaml config')
    elif isinstance(error, SyntaxError):
        why = (f'line {error.lineno}: {error.msg}; fix the Python syntax')
    else:
        text = ' '.join(str(error).split())  # one line
        why = (f'{type(error).__name__}: {text}; a config is a dict of '
               f'settings (model, test_dataloader, ...)')
    return ConfigCheckError(f'cannot read the config {path}: {why}.')


#: The packages whose modules and registry scopes a YAML or JSON config may
#: name: mmengine's OpenMMLab packages, mmcv and this one.
PACKAGES = frozenset({'mmengine', 'mmcv', 'mmseg_groupvit', *MODULE2PACKAGE})
#: The configs a YAML or JSON config may inherit Python from, besides
#: ``PACKAGE::path`` (installed packages' configs).
_CONFIGS = osp.realpath(osp.join(osp.dirname(__file__), '..', '..', 'configs'))


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``, reading a YAML or JSON config (and its
    YAML and JSON bases) as data: it may not inherit Python other than
    installed configs, import modules or name registry scopes outside
    :data:`PACKAGES`, give a ``type`` that is not a registered component
    (mmengine would import and call any dotted path) or name a pickle.

    Raises:
        ConfigCheckError: The file is no config, or one of the above.
    """
    path = str(path)
    try:
        if path.endswith(('.json', '.yaml', '.yml')):
            _check_data_file(osp.abspath(osp.expanduser(path)), set())
        return Config.fromfile(path)
    except ConfigCheckError:
        raise
    except Exception as e:  # any failure of a file that is no config
        raise _unreadable(path, e) from None


def _check_data_file(path: str, seen: set) -> None:
    """Check a YAML or JSON config file and its bases (see
    :func:`load_config`), after the substitutions ``Config.fromfile``
    makes."""
    if path in seen:  # a cycle: Config.fromfile reports it
        return
    seen.add(path)
    with tempfile.TemporaryDirectory() as tmp:
        text = osp.join(tmp, 'config' + osp.splitext(path)[1])
        Config._substitute_predefined_vars(path, text)
        Config._substitute_env_variables(text, text)
        Config._pre_substitute_base_vars(text, text)
        cfg = load(text)
    if not isinstance(cfg, dict):  # Config.fromfile says why
        return
    _check_data(cfg, path, '')
    bases = cfg.get('_base_', [])
    for base in bases if isinstance(bases, list) else [bases]:
        base, scope = Config._get_cfg_path(base, path)
        root = _CONFIGS if scope is None else osp.realpath(
            get_installed_path(MODULE2PACKAGE[scope]))
        if not base.endswith('.py'):
            _check_data_file(osp.abspath(base), seen)
        elif not osp.realpath(base).startswith(root + os.sep):  # no ../
            raise ConfigCheckError(
                f'{path}: _base_ {base} is Python, which runs as code; a YAML '
                f'or JSON config inherits Python only from installed configs '
                f'(PACKAGE::path, or this package\'s configs/). Write the '
                f'config in Python if you trust that file.')


def _check_data(value, path: str, key: str) -> None:
    """Raise :class:`ConfigCheckError` for what in a YAML or JSON config
    would run code (see :func:`load_config`); ``key`` is where ``value`` is
    (``a.b.0``)."""
    if isinstance(value, dict):
        for name, item in value.items():
            at = f'{key}.{name}'.lstrip('.')
            if name == 'custom_imports':
                imports = item.get('imports') if isinstance(item, dict) else 0
                for module in [imports] if isinstance(
                        imports, str) else (imports or []):
                    parts = str(module).split('.')
                    if parts[0] not in PACKAGES or any(
                            p.startswith('_') for p in parts):
                        raise ConfigCheckError(
                            f'{path}: {at} imports {module!r}: a YAML or '
                            f'JSON config imports only modules of OpenMMLab '
                            f'packages (mmseg, mmdet, ...) and mmseg_groupvit.'
                            f' Import it in a Python config instead.')
            elif name in ('_scope_', 'default_scope') and item is not None \
                    and str(item) not in PACKAGES:
                raise ConfigCheckError(
                    f'{path}: {at} {item!r} is not the scope of an OpenMMLab '
                    f'package (mmengine would import {item}.registry). Use '
                    f'one (mmseg, mmdet, ...), or write the config in '
                    f'Python.')
            elif name == 'type' and isinstance(item,
                                               str) and not _registered(item):
                last = item.rsplit('.', 1)[-1]
                fix = (
                    f'write type={last!r} if that registered component '
                    f'is the one meant, or ') if _registered(last) else 'or '
                raise ConfigCheckError(
                    f'{path}: {at} {item!r} is not a registered component; '
                    f'in a YAML or JSON config a type names one (mmengine '
                    f'would import and call any dotted path). Check its '
                    f'spelling, {fix}write the config in Python.')
            _check_data(item, path, at)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_data(item, path, f'{key}.{index}'.lstrip('.'))
    elif isinstance(value, str) and (value in ('pickle', 'pkl')
                                     or value.endswith(('.pkl', '.pickle'))):
        raise ConfigCheckError(
            f'{path}: {key} {value!r} names a pickle, which runs code when '
            f'read (mmengine.load, mmseg\'s decode_backend); a YAML or JSON '
            f'config may not. Convert the file to JSON or NumPy, or write '
            f'the config in Python if you trust it.')


def _registered(name: str) -> bool:
    """Whether ``name`` (``Name`` or ``scope.Name``) is registered in
    mmengine's registries or their children, without mmengine's fallback
    of importing a dotted path; a scope only of :data:`PACKAGES`."""
    scope, key = Registry.split_scope_key(name)
    if scope is not None and scope not in PACKAGES:
        return False
    if scope is not None:
        try:  # as Registry.get does
            import_module(f'{scope}.registry')
        except ImportError:
            pass
    todo = [
        r for r in vars(mmengine.registry).values() if isinstance(r, Registry)
    ]
    for registry in todo:  # the modules a build would import first
        if registry.scope in ('mmseg', scope):
            try:
                registry.import_from_location()
            except ImportError:  # check_scoped_steps names what is missing
                pass
        todo.extend(registry._children.values())
    return any(
        key in r._module_dict for r in todo
        if scope in (None, r.scope) or r.parent is None)


#: The sections whose pipelines a training run builds, and those a test run
#: or an API builds (``tools/test.py --tta`` checks its ``tta_pipeline``).
BUILT_TRAIN = ('train_dataloader', 'val_dataloader')
BUILT_TEST = ('test_dataloader', 'test_pipeline')


def read_config(path: Union[str, Config],
                cfg_options: Optional[dict] = None,
                test: bool = True,
                train: bool = False) -> Config:
    """The config of ``path`` (a file, or a config that is copied) with
    ``cfg_options`` merged, checked (``test``: the test sections too;
    ``train``: the training ones).

    Raises:
        ConfigCheckError: The file is no config, or class counts disagree.
        ConfigValueError: A section missing or of the wrong type.
    """
    cfg = copy.deepcopy(path) if isinstance(path,
                                            Config) else load_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_config(cfg.to_dict(), test, dataset_classes, get_prompt_classes,
                 head_with_bg, train)
    built = BUILT_TRAIN if train else BUILT_TEST
    check_scoped_steps({k: v for k, v in cfg.to_dict().items() if k in built})
    # Not formatted by yapf (0.5 s for every log, dump and checkpoint).
    return Config(
        cfg.to_dict(),
        cfg_text=cfg.text,
        filename=cfg.filename,
        format_python_code=False)


def find_dicts(cfg, predicate, path: str = ''):
    """``(path, dict)`` for every dict in ``cfg``, nested in dicts and
    lists, that ``predicate`` takes (``path`` as ``a.b.0``)."""
    if isinstance(cfg, dict):
        if predicate(cfg):
            yield path, cfg
        items = cfg.items()
    elif isinstance(cfg, (list, tuple)):
        items = enumerate(cfg)
    else:
        return
    for key, value in items:
        yield from find_dicts(value, predicate, f'{path}.{key}'.lstrip('.'))


def check_scoped_steps(value, key: str = '') -> None:
    """Raise :class:`ConfigCheckError` for a pipeline step (a dict under a
    key ending in ``pipeline`` or ``transforms``) of another package's scope
    (``mmpretrain.Resize``) whose transforms cannot be imported here
    (mmpretrain's need torchvision): an ``ImportError`` traceback when the
    dataset is built."""
    scoped = find_dicts(
        value, lambda d: isinstance(d.get('type'), str) and '.' in d['type'],
        key)
    for path, step in scoped:
        if not any(
                part.endswith(('pipeline', 'transforms'))
                for part in path.split('.')):
            continue
        kind = step['type']
        try:
            TRANSFORMS.get(kind)
        except ImportError as error:
            scope, name = kind.split('.', 1)
            missing = error.name or 'what is missing'
            fix = f'Install {missing}.'
            if TRANSFORMS.get(name):
                fix = (f'In the config, write type=\'{name}\' if the step of '
                       f'that name registered without {scope} is the one '
                       f'meant, or install {missing}.')
            raise ConfigCheckError(
                f'{path}.type {kind!r} cannot be built here: importing '
                f'{scope}\'s transforms fails ({error}). {fix}') from None


def dataset_classes(cfg: dict) -> Optional[tuple]:
    """The classes of a dataset config, without loading any data (None for
    a type that names none).

    Raises:
        ConfigCheckError: The type is not a registered dataset.
    """
    classes = (cfg.get('metainfo') or {}).get('classes')
    dataset = cfg.get('type')
    if isinstance(dataset, str):
        dataset = DATASETS.get(dataset)
        if dataset is None:
            raise ConfigCheckError(
                f'The dataset type {cfg["type"]!r} is not registered, so its '
                f'classes cannot be read. Check its spelling, or import the '
                f'module that registers it (custom_imports in the config).')
    if classes is None and hasattr(dataset, 'config_classes'):
        classes = dataset.config_classes(cfg)
    elif classes is None:
        classes = getattr(dataset, 'METAINFO', {}).get('classes')
    return None if classes is None else tuple(classes)
