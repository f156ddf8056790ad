# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Read a config as the tools do (``--cfg-options`` merged, checked once).
Importing it makes mmengine read YAML with PyYAML's safe loader, bounded by
:data:`MAX_YAML_VALUES`. A YAML or JSON config is data: :func:`load_config`
refuses what in one would run code."""
import copy
import os
import os.path as osp
import tempfile
from typing import Optional, Union

import mmengine.registry
import mmseg.registry
import yaml
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.fileio.handlers import YamlHandler, register_handler
from mmengine.registry import Registry
from mmengine.utils import get_installed_path, import_modules_from_strings
from mmseg.registry import DATASETS, TRANSFORMS

from groupvit_common.checks import check_config
from groupvit_common.errors import ConfigCheckError
from ..models.config_arguments import check_model_arguments
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
#: The keys of components that mmengine and mmcv build by name (any other
#: unregistered name fails once a YAML or JSON config is read).
_NAMES = ('type', 'constructor', 'ema_type', 'resize_type', 'runner_type')
#: Where mmengine's and mmseg's components write (a YAML or JSON config may
#: name only places under the working directory).
_OUTPUTS = ('work_dir', 'save_dir', 'out_dir', 'output_dir', 'img_save_dir',
            'config_save_file', 'scalar_save_file', 'filename_tmpl',
            'out_file_path', 'json_trace_path', 'out_suffix', 'show_dir')
#: The configs a YAML or JSON config may inherit Python from, besides
#: ``PACKAGE::path`` (an installed package's ``.mim/configs``).
_CONFIGS = osp.realpath(osp.join(osp.dirname(__file__), '..', '..', 'configs'))


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``, reading a YAML or JSON config as data: its
    Python bases must be installed configs, its modules and scopes of
    :data:`PACKAGES`, its component names (:data:`_NAMES`) registered, its
    keys plain, its outputs (:data:`_OUTPUTS`) under the working directory,
    and no value may name a pickle. From then on this process builds no
    unregistered name (whatever key names it): mmengine's ``Registry.get``
    would import and return any dotted path (``os.system``).

    Raises:
        ConfigCheckError: The file is no config, or one of the above.
    """
    path = str(path)
    data = osp.abspath(osp.expanduser(path)).endswith(  # as mmengine reads
        ('.json', '.yaml', '.yml'))
    try:
        if data:
            _check_bases(path, set())
        cfg = Config.fromfile(path, import_custom_modules=not data)
        if data:
            imports = cfg.get('custom_imports') or {}
            modules = imports.get('imports') or []
            for module in [modules] if isinstance(modules, str) else modules:
                parts = str(module).split('.')
                if parts[0] not in PACKAGES or any(
                        p.startswith('_') for p in parts):
                    raise ConfigCheckError(
                        f'{path}: custom_imports imports {module!r}: a YAML '
                        f'or JSON config imports only modules of OpenMMLab '
                        f'packages (mmseg, mmdet, ...) and mmseg_groupvit. '
                        f'Import it in a Python config instead.')
            if imports:
                import_modules_from_strings(**imports)
            # mmengine's import fallback for a name no registry holds: off
            # (Registry.build then says it is not registered).
            mmengine.registry.registry.get_object_from_string = lambda _: None
            _check_data(cfg.to_dict(), path)
    except ConfigCheckError:
        raise
    except Exception as e:  # any failure of a file that is no config
        raise _unreadable(path, e) from None
    return cfg


def _check_bases(path: str, seen: set) -> None:
    """Refuse a Python base of a YAML or JSON config (of its YAML and JSON
    bases too) other than the installed configs, before ``Config.fromfile``
    runs it; the files are read as ``Config.fromfile`` reads them."""
    path = osp.abspath(osp.expanduser(path))
    if path in seen or not osp.isfile(path):  # Config.fromfile says why
        return
    seen.add(path)
    with tempfile.TemporaryDirectory() as tmp:
        text = osp.join(tmp, 'config' + osp.splitext(path)[1])
        Config._substitute_predefined_vars(path, text)
        Config._substitute_env_variables(text, text)
        Config._pre_substitute_base_vars(text, text)
        bases = Config._get_base_files(text)
    for base in bases:
        base, scope = Config._get_cfg_path(base, path)
        base = osp.abspath(osp.expanduser(base))  # as Config.fromfile does
        root = _CONFIGS if scope is None else osp.join(
            get_installed_path(MODULE2PACKAGE[scope]), '.mim', 'configs')
        if base.endswith(('.json', '.yaml', '.yml')):
            _check_bases(base, seen)
        elif not osp.realpath(base).startswith(osp.realpath(root) + os.sep):
            raise ConfigCheckError(
                f'{path}: _base_ {base} is not a YAML or JSON config; a YAML '
                f'or JSON config inherits Python only from installed configs '
                f'(PACKAGE::path, or this package\'s configs/). Write the '
                f'config in Python if you trust that file.')


def _check_data(cfg: dict, path: str) -> None:
    """Raise :class:`ConfigCheckError` for what in the YAML or JSON config
    ``path`` (read as ``cfg``) would run code (see :func:`load_config`)."""
    for key, value in walk(cfg):
        if isinstance(value, str) and (value in ('pickle', 'pkl')
                                       or value.endswith(('.pkl', '.pickle'))):
            raise ConfigCheckError(
                f'{path}: {key} {value!r} names a pickle, which runs code '
                f'when read (mmengine.load, mmseg\'s decode_backend); a YAML '
                f'or JSON config may not. Convert the file to JSON or NumPy, '
                f'or write the config in Python if you trust it.')
        if not isinstance(value, dict):
            continue
        for name, item in value.items():
            at = f'{key}.{name}'.lstrip('.')
            if isinstance(name, str) and not (name.isidentifier() if not key
                                              else name.isprintable()
                                              and not set('\'\\') & set(name)):
                rule = ('is not a name' if not key else
                        'holds a quote, backslash or control character')
                raise ConfigCheckError(
                    f'{path}: the key {at!r} {rule}: the copy of the config '
                    f'a run writes (work dir, checkpoints) would run it.')
            if name in ('_scope_', 'default_scope') and item is not None \
                    and str(item) not in PACKAGES:
                raise ConfigCheckError(
                    f'{path}: {at} {item!r} is not the scope of an OpenMMLab '
                    f'package (mmengine would import {item}.registry). Use '
                    f'one (mmseg, mmdet, ...), or write the config in '
                    f'Python.')
            elif isinstance(item,
                            str) and name in _NAMES and not _registered(item):
                last = item.rsplit('.', 1)[-1]
                fix = (
                    f'write {name}={last!r} if that registered component '
                    f'is the one meant, or ') if _registered(last) else 'or '
                raise ConfigCheckError(
                    f'{path}: {at} {item!r} is not a registered component, '
                    f'which a YAML or JSON config must name (mmengine would '
                    f'import and call any dotted path). Check its spelling, '
                    f'{fix}write the config in Python.')
            elif name in _OUTPUTS and isinstance(
                    item, str) and (osp.isabs(osp.expanduser(item)) or '..'
                                    in item.replace('\\', '/').split('/')):
                raise ConfigCheckError(
                    f'{path}: {at} {item!r} is outside the working directory; '
                    f'a YAML or JSON config writes only under it (a file '
                    f'anywhere else could be code another program runs). '
                    f'Give the place on the command line (--work-dir).')


def _registered(name: str) -> bool:
    """Whether one of mmseg's registries builds ``name`` (``Name``, or
    ``scope.Name`` of a scope of :data:`PACKAGES`) as mmengine resolves it,
    its import fallback off."""
    scope = Registry.split_scope_key(name)[0]
    if scope is not None and scope not in PACKAGES:
        return False  # Registry.get would import SCOPE.registry
    try:
        return any(
            r.get(name) is not None for r in vars(mmseg.registry).values()
            if isinstance(r, Registry))
    except ImportError:  # the scope's modules: check_scoped_steps says why
        return False


def read_config(path: Union[str, Config],
                cfg_options: Optional[dict] = None,
                test: bool = True,
                train: bool = False) -> Config:
    """The config of ``path`` (a file, or a config that is copied) with
    ``cfg_options`` merged, checked (``test``: the test sections too;
    ``train``: the training ones; the model's keys and values by its
    components' constructors).

    Raises:
        ConfigCheckError: The file is no config, or class counts disagree.
        ConfigValueError: A section missing or of the wrong type, a value
            that cannot work.
    """
    cfg = copy.deepcopy(path) if isinstance(path,
                                            Config) else load_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    plain = cfg.to_dict()
    check_config(plain, test, dataset_classes, get_prompt_classes,
                 head_with_bg, train)
    check_model_arguments(plain['model'])
    # The sections a training run builds, or a test run or an API does
    # (``tools/test.py --tta`` checks its ``tta_pipeline``).
    built = (('train_dataloader', 'val_dataloader') if train else
             ('test_dataloader', 'test_pipeline'))
    check_scoped_steps({k: v for k, v in plain.items() if k in built})
    # Not formatted by yapf (0.5 s for every log, dump and checkpoint).
    return Config(
        cfg.to_dict(),
        cfg_text=cfg.text,
        filename=cfg.filename,
        format_python_code=False)


def walk(cfg, path: str = ''):
    """``(path, value)`` for ``cfg`` and every value nested in its dicts and
    lists (``path`` as ``a.b.0``)."""
    yield path, cfg
    if isinstance(cfg, dict):
        items = cfg.items()
    elif isinstance(cfg, (list, tuple)):
        items = enumerate(cfg)
    else:
        return
    for key, value in items:
        yield from walk(value, f'{path}.{key}'.lstrip('.'))


def find_dicts(cfg, predicate, path: str = ''):
    """``(path, dict)`` for every dict in ``cfg``, nested in dicts and
    lists, that ``predicate`` takes (``path`` as ``a.b.0``)."""
    return ((at, value) for at, value in walk(cfg, path)
            if isinstance(value, dict) and predicate(value))


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
