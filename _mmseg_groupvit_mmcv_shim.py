# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Let ``mmcv-lite`` stand in for a full mmcv build.

MMSegmentation 1.2.2 imports ``mmcv.ops`` at module level (for example
``mmseg/utils/mask_classification.py``), and every op module of mmcv loads
the compiled extension ``mmcv._ext`` when it is imported. ``mmcv-lite`` ships
the Python files of ``mmcv.ops`` but not the extension, so
``import mmseg.models`` fails with ``No module named 'mmcv._ext'``.

This module installs an import hook that provides ``mmcv._ext`` **only when
no compiled extension can be found**. The stand-in module answers every
attribute lookup with a function that raises :class:`RuntimeError` naming the
op and how to get a full build. Nothing in GroupViT calls a compiled op, so
``mmseg.models``, ``mmseg.datasets`` and ``mmseg.apis`` import and run; an
mmseg model that does need a compiled op (PSANet, CCNet, deformable convs,
...) fails with that message instead of a silent wrong result.

With a full mmcv build installed, the real ``mmcv/_ext*.so`` is found by the
regular path finder first (this hook is appended last to
``sys.meta_path``), so the hook never answers and nothing changes.

The hook is activated at interpreter start by ``mmseg_groupvit_mmcv.pth``
(installed next to this module) and again, idempotently, by
``import mmseg_groupvit``. Only the standard library is imported here, so the
start-up cost is negligible.
"""
import importlib.abc
import importlib.machinery
import sys
import types

EXT_NAME = 'mmcv._ext'
FULL_MMCV_HINT = (
    'Install a full mmcv build instead of mmcv-lite: '
    '`pip uninstall -y mmcv-lite && MMCV_WITH_OPS=1 pip install '
    '--no-build-isolation "mmcv==2.1.0"` (compiles for about 20 minutes on '
    '2 CPU cores).')


class MissingOpsModule(types.ModuleType):
    """Stand-in for ``mmcv._ext`` whose every op raises a clear error."""

    is_stub = True

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)

        def missing_op(*args, **kwargs):
            raise RuntimeError(
                f'The compiled mmcv op "{name}" is not available: this '
                f'environment has mmcv-lite, which has no compiled ops. '
                f'{FULL_MMCV_HINT}')

        missing_op.__name__ = name
        return missing_op


class MissingOpsFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Meta-path finder that serves :class:`MissingOpsModule` as a last
    resort for ``mmcv._ext``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != EXT_NAME:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return MissingOpsModule(spec.name)

    def exec_module(self, module):
        pass


def install() -> None:
    """Append the finder to ``sys.meta_path`` once."""
    if not any(isinstance(f, MissingOpsFinder) for f in sys.meta_path):
        sys.meta_path.append(MissingOpsFinder())


def has_compiled_ops() -> bool:
    """Whether ``mmcv._ext`` is a real compiled extension."""
    try:
        import mmcv._ext as ext  # noqa: F401
    except ImportError:
        return False
    return not getattr(ext, 'is_stub', False)
