# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Read a config as the tools do (``--cfg-options`` merged, checked once).
Importing it makes mmengine read YAML with PyYAML's safe loader, bounded by
:data:`MAX_YAML_VALUES`."""
import copy
from typing import Optional, Union

import yaml
from mmengine.config import Config
from mmengine.fileio.handlers import YamlHandler, register_handler
from mmseg.registry import DATASETS, TRANSFORMS

from groupvit_common.checks import check_config
from groupvit_common.errors import ConfigCheckError
from ..models.decode_heads.groupvit_head import head_with_bg
from .class_names import get_prompt_classes

#: Most values (aliases counted where used) a YAML file may expand to.
MAX_YAML_VALUES = 1_000_000
#: In C where PyYAML has libyaml (every ``mmseg::`` base parses ~50 files).
_SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


@register_handler(['yaml', 'yml'])
class SafeYamlHandler(YamlHandler):
    """mmengine's YAML handler with PyYAML's safe loader and a bound of
    :data:`MAX_YAML_VALUES` values."""

    def load_from_fileobj(self, file, **kwargs):
        value = yaml.load(file, Loader=_SAFE_LOADER)
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
    if isinstance(path, Config):
        cfg = copy.deepcopy(path)
    else:
        try:
            cfg = Config.fromfile(str(path))
        except Exception as e:  # any failure of a file that is no config
            raise _unreadable(path, e) from None
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
