# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Let ``mmcv-lite`` stand in for a full mmcv build.

MMSegmentation 1.2.2 imports ``mmcv.ops`` at module level (for example
``mmseg/utils/mask_classification.py``), and every op module of mmcv loads
the compiled extension ``mmcv._ext`` when it is imported. ``mmcv-lite`` ships
the Python files of ``mmcv.ops`` but not the extension, so
``import mmseg.models`` fails with ``No module named 'mmcv._ext'``.

This module provides ``mmcv._ext`` **only when mmcv has no compiled
extension**: the stand-in module answers every attribute lookup with a
function that raises :class:`RuntimeError` naming the mmcv class or function
that was called, the missing kernel, and how to get a full build. Nothing in
GroupViT calls a compiled op, so ``mmseg.models``, ``mmseg.datasets`` and
``mmseg.apis`` import and run; an mmseg model that does need a compiled op
(PSANet, CCNet, deformable convs, ...) fails with that message instead of a
silent wrong result.

What mmcv and mmengine report about themselves stays true:
``mmcv.utils.collect_env()`` gives ``'n/a'`` for the mmcv compilers, as it
does for mmcv-lite without the stand-in, and
``mmengine.utils.dl_utils.mmcv_full_available()`` is False (the stand-in's
module spec has no loader, so ``pkgutil.find_loader`` finds none).

With a full mmcv build installed, ``mmcv/_ext*.so`` is found and nothing is
installed, so nothing changes.

The same start-up hook bounds what OpenCV decodes (:data:`MAX_DECODE_PIXELS`,
read by OpenCV once, when it is imported): mmcv decodes images with OpenCV,
which reads formats whose header the package's check cannot read first (a
9 MB Radiance HDR file states 12000x12000 pixels), and ignores
:data:`KNOWN_HARMLESS_WARNINGS`, the notices
mmengine, mmseg and setuptools raise about their own code (the first of
them while a config is read, before ``mmseg_groupvit`` is imported): one
filter per message and module.

The stand-in is installed at interpreter start by ``mmseg_groupvit_mmcv.pth``
(installed next to this module) and again, idempotently, by
``import mmseg_groupvit``. Only the standard library is imported here and
mmcv is located without being imported, so the start-up cost is
negligible.
"""
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
import warnings

EXT_NAME = 'mmcv._ext'
FULL_MMCV_HINT = (
    'Install a full mmcv build instead of mmcv-lite: '
    '`pip uninstall -y mmcv-lite && MMCV_WITH_OPS=1 pip install '
    '--no-build-isolation "mmcv==2.1.0"` (compiles for about 20 minutes on '
    '2 CPU cores).')
# Build facts the stand-in answers truthfully: nothing was compiled.
BUILD_INFO = dict(get_compiler_version='n/a', get_compiling_cuda_version='n/a')


def _mmcv_caller() -> str:
    """The outermost ``mmcv.ops`` function on the stack (the mmcv op class
    or function the user called, e.g.
    ``mmcv.ops.deform_conv.DeformConv2d.forward``)."""
    frame, caller = sys._getframe(2), None
    while frame is not None:
        module = frame.f_globals.get('__name__', '')
        if module.startswith('mmcv.'):
            code = frame.f_code
            name = getattr(code, 'co_qualname', code.co_name)
            if module.startswith('mmcv.ops.') or caller is None:
                caller = f'{module}.{name}'
        frame = frame.f_back
    return caller or 'mmcv'


class MissingOpsModule(types.ModuleType):
    """Stand-in for ``mmcv._ext`` whose every op raises a clear error."""

    is_stub = True

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        if name in BUILD_INFO:
            return lambda: BUILD_INFO[name]

        def missing_op(*args, **kwargs):
            raise RuntimeError(
                f'{_mmcv_caller()} needs the compiled mmcv op "{name}", '
                f'which this environment lacks: it has mmcv-lite, which has '
                f'no compiled ops. {FULL_MMCV_HINT}')

        missing_op.__name__ = name
        return missing_op


def _has_real_extension() -> bool:
    """Whether mmcv ships a compiled ``_ext``, found without importing
    mmcv. True when mmcv is absent (there is then nothing to stand in
    for)."""
    try:
        mmcv = importlib.util.find_spec('mmcv')
    except (ImportError, ValueError):
        return True
    if mmcv is None or not mmcv.submodule_search_locations:
        return True
    return importlib.machinery.PathFinder.find_spec(
        EXT_NAME, list(mmcv.submodule_search_locations)) is not None


#: Warnings of the libraries under GroupViT that are about their own code,
#: never about the user's work, as ``(message start, module)`` regular
#: expressions (the module that :mod:`warnings` attributes them to).
KNOWN_HARMLESS_WARNINGS = (
    # setuptools >= 67 when mmengine imports (and reloads) pkg_resources to
    # read a config that has _base_ files: every run.
    ('pkg_resources is deprecated as an API',
     r'(mmengine\.utils\.package_utils|importlib)$'),
    # mmseg's heads build their losses through mmseg's own old helper.
    ('``build_loss`` would be deprecated soon', r'mmseg\.models\.builder$'),
    # mmseg's CrossEntropyLoss about its own default (a fine-tuned FCN).
    ('Default ``avg_non_ignore`` is False',
     r'mmseg\.models\.losses\.cross_entropy_loss$'),
)


def quiet_known_warnings() -> None:
    """Ignore :data:`KNOWN_HARMLESS_WARNINGS`, each by its message and
    module only (any other warning, of these modules too, still shows)."""
    for message, module in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=message, category=UserWarning, module=module)


#: ``groupvit_common.files.MAX_IMAGE_PIXELS``, as OpenCV's
#: ``OPENCV_IO_MAX_IMAGE_PIXELS`` (a value the user set is kept).
MAX_DECODE_PIXELS = 2**27


def install() -> None:
    """Register the stand-in as ``mmcv._ext`` once, unless mmcv has a
    compiled extension (or is not installed); bound OpenCV's decoding to
    :data:`MAX_DECODE_PIXELS`; ignore :data:`KNOWN_HARMLESS_WARNINGS`."""
    os.environ.setdefault('OPENCV_IO_MAX_IMAGE_PIXELS', str(MAX_DECODE_PIXELS))
    quiet_known_warnings()
    if EXT_NAME in sys.modules or _has_real_extension():
        return
    module = MissingOpsModule(EXT_NAME)
    # No loader: importlib and pkgutil then report no loadable mmcv._ext.
    module.__spec__ = importlib.machinery.ModuleSpec(
        EXT_NAME, None, origin='mmseg-groupvit stand-in for mmcv-lite')
    sys.modules[EXT_NAME] = module


def has_compiled_ops() -> bool:
    """Whether ``mmcv._ext`` is a real compiled extension."""
    try:
        import mmcv._ext as ext  # noqa: F401
    except ImportError:
        return False
    return not getattr(ext, 'is_stub', False)
