# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Read a config file as the tools do: mmengine's ``Config.fromfile``, the
``--cfg-options`` merged, then checked once
(:func:`groupvit_common.checks.check_config`), so that a file that is no
config or a section replaced by ``None`` is one message, before any
checkpoint is looked for."""
import copy
from typing import Optional, Union

from mmengine.config import Config

from groupvit_common.checks import check_config
from groupvit_common.errors import ConfigCheckError

__all__ = ['read_config']


def _unreadable(path: str, error: Exception) -> ConfigCheckError:
    if isinstance(error, UnicodeDecodeError):
        why = (f'it is not a text file (byte {error.start} is not UTF-8); '
               f'give a .py, .json or .yaml config')
    elif isinstance(error, SyntaxError):
        why = (f'line {error.lineno}: {error.msg}; fix the Python syntax')
    else:
        why = (f'{type(error).__name__}: {error}; a config is a dict of '
               f'settings (model, test_dataloader, ...)')
    return ConfigCheckError(f'cannot read the config {path}: {why}.')


def read_config(path: Union[str, Config],
                cfg_options: Optional[dict] = None,
                test: bool = True) -> Config:
    """The config of ``path`` with ``cfg_options`` merged, checked.

    Args:
        path (str | Config): The config file (it exists), or a config
            (copied).
        cfg_options (dict, optional): ``--cfg-options``.
        test (bool): Check the test sections too (see
            :func:`~groupvit_common.checks.check_config`).

    Returns:
        Config: The merged config.

    Raises:
        ConfigCheckError: The file cannot be read as a config.
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
    check_config(cfg.to_dict(), test)
    return cfg
