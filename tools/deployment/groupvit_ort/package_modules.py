# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The package's torch-free modules, for the runtime that must not import
PyTorch.

``mmseg_groupvit``'s ``__init__`` files import PyTorch and mmseg, so its
modules that need neither (the vocabulary reader, the config checks, the
window grid, the drawing) are imported here without them: the package and
its sub-packages are registered as bare namespaces under another name, so a
module's relative imports (``..errors``) still work.
"""
import importlib
import os.path as osp
import sys
import types

__all__ = ['load_package_module']

#: The package's folder, beside ``tools/``.
PACKAGE_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))),
    'mmseg_groupvit')
#: The name the bare package is registered under.
NAMESPACE = '_groupvit_ort_package'


def load_package_module(relpath: str):
    """Import ``mmseg_groupvit/<relpath>`` without the package's
    ``__init__`` files.

    Args:
        relpath (str): The module's path in the package, e.g.
            ``'utils/vocabulary.py'``.

    Returns:
        module: The module (imported once; later calls return it).
    """
    parts = [NAMESPACE] + relpath[:-3].split('/')
    for depth in range(1, len(parts)):
        name = '.'.join(parts[:depth])
        if name not in sys.modules:
            namespace = types.ModuleType(name)
            namespace.__path__ = [osp.join(PACKAGE_DIR, *parts[1:depth])]
            sys.modules[name] = namespace
    return importlib.import_module('.'.join(parts))
