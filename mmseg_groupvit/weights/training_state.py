# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What the safe loader accepts from mmengine training checkpoints.

mmengine's ``Runner`` pickles its message hub into every ``iter_*.pth``:
``HistoryBuffer`` objects holding numpy arrays and scalars, whose
``statistics_methods`` are stored as ``getattr(HistoryBuffer, 'mean')`` and
the like (open-mmlab/mmengine#1655). torch's ``weights_only`` unpickler
refuses those, and the obvious allow-list is not safe:

- ``builtins.getattr`` hands a file every attribute of every allowed object,
  which reaches arbitrary callables. The name is bound here to
  :func:`history_buffer_method`, which looks up HistoryBuffer's four
  statistics methods and nothing else.
- ``numpy.dtype`` with its pickled state lets a file mark a float dtype as
  holding Python objects, so that an array's bytes are read as object
  pointers. numpy's names are bound here to :class:`PickledDtype` and
  :class:`PickledArray`, which accept plain numeric dtypes only and build the
  array from its bytes with ``np.frombuffer``; :func:`restore_numpy` puts
  the real arrays in place after loading.
- ``builtins.bytes`` (protocol 2's empty byte string) would let a file
  allocate ``bytes(n)``; it is bound to :func:`empty_bytes`, which takes no
  argument.

Nothing in :func:`training_state_globals` can run code that a file chooses,
and it is never added process-wide: :func:`.io.torch_load` passes it to
``torch.serialization.safe_globals`` for the one call that reads a file.
"""
import math
import pickle

import numpy as np

# The statistics methods that HistoryBuffer registers for itself.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def _refuse(what: str):
    # torch.load reports an UnpicklingError raised while unpickling, and
    # ``io.refused_global`` reads the name back from this wording.
    raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {what}')


def history_buffer_method(obj, name):
    """``getattr`` for the one use a training checkpoint makes of it.

    Args:
        obj: Must be mmengine's ``HistoryBuffer`` class.
        name (str): One of :data:`HISTORY_BUFFER_METHODS`.

    Returns:
        function: ``HistoryBuffer.<name>``.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    owner = getattr(obj, '__qualname__', type(obj).__qualname__)
    _refuse(f'builtins.getattr (attribute {name!r} of {owner})')


def empty_bytes(*args) -> bytes:
    """``bytes`` for the one use pickle protocol 2 makes of it: ``bytes()``
    for an empty byte string (the data of an empty array, e.g. a
    ``HistoryBuffer`` that was never updated). Any argument is refused, so a
    file cannot allocate ``bytes(n)``; non-empty bytes arrive through
    ``_codecs.encode``, which torch's unpickler handles."""
    if args:
        _refuse(f'builtins.bytes with arguments ({len(args)} given)')
    return b''


class PickledDtype:
    """Stands in for ``np.dtype`` while unpickling: a plain numeric dtype
    (bool, integer, float, complex) and its byte order, nothing else."""

    dtype = None  # until __init__ runs (a NEWOBJ skips it)

    def __init__(self, spec='', align=False, copy=False):
        try:
            dtype = np.dtype(str(spec))
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in 'biufc':
            _refuse(f'numpy.dtype {spec!r} (only numeric dtypes are read)')
        self.dtype = dtype

    def __setstate__(self, state):
        if (not isinstance(state, tuple) or len(state) != 8
                or state[2:5] != (None, None, None)):
            _refuse('numpy.dtype with fields or a sub-array')
        if state[1] in ('<', '>'):
            self.dtype = self.dtype.newbyteorder(state[1])


class PickledArray:
    """Stands in for ``np.ndarray`` while unpickling; :meth:`__setstate__`
    builds the array from its bytes."""

    array = None  # until __setstate__ runs

    def __init__(self, *args):
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(
                state[1], tuple) and isinstance(state[2], PickledDtype) and
                state[2].dtype is not None and isinstance(state[4], bytes)):
            _refuse('numpy.ndarray that is not a plain numeric array')
        _, shape, dtype, fortran, data = state
        if not all(isinstance(n, int) and n >= 0
                   for n in shape) or (math.prod(shape) * dtype.dtype.itemsize
                                       != len(data)):
            _refuse(f'numpy.ndarray whose shape {shape} does not match its '
                    f'{len(data)} bytes')
        self.array = np.frombuffer(
            data, dtype=dtype.dtype).reshape(
                shape, order='F' if fortran else 'C').copy()


def array_from_pickle(subtype, shape, dtype_char):
    """numpy's ``_reconstruct``: an empty :class:`PickledArray`."""
    if subtype is not PickledArray:
        _refuse('numpy._reconstruct of a class other than numpy.ndarray')
    return PickledArray()


def scalar_from_pickle(dtype, data):
    """numpy's ``scalar`` for plain numeric dtypes."""
    if not isinstance(dtype, PickledDtype) or dtype.dtype is None or (
            not isinstance(data, bytes)) or len(data) != dtype.dtype.itemsize:
        _refuse('numpy scalar that is not a plain number')
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def restore_numpy(obj, _seen=None):
    """Replace the stand-ins in a loaded checkpoint by numpy objects, in
    containers and in the attributes of ``HistoryBuffer`` objects.

    Args:
        obj: What ``torch.load`` returned.

    Returns:
        The same structure with real arrays and dtypes.

    Raises:
        pickle.UnpicklingError: A stand-in whose state never came (the file
            skipped its BUILD).
    """
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, (PickledArray, PickledDtype)):
        value = obj.array if isinstance(obj, PickledArray) else obj.dtype
        if value is None:
            _refuse(f'{type(obj).__name__} stand-in without its state')
        return value
    seen = set() if _seen is None else _seen
    if id(obj) in seen:  # shared or cyclic: restored once
        return obj
    if isinstance(obj, (HistoryBuffer, dict, list, tuple)):
        seen.add(id(obj))
    if isinstance(obj, HistoryBuffer):
        for key, value in obj.__dict__.items():
            obj.__dict__[key] = restore_numpy(value, seen)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            obj[key] = restore_numpy(value, seen)
    elif isinstance(obj, list):
        obj[:] = [restore_numpy(v, seen) for v in obj]
    elif isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(restore_numpy(v, seen) for v in obj)
    return obj


def training_state_globals() -> list:
    """The globals besides tensors in an mmengine training checkpoint, as
    entries for ``torch.serialization.safe_globals``.

    Returns:
        list: Classes and ``(callable, 'module.name')`` pairs.
    """
    from mmengine.logging import HistoryBuffer
    entries = [
        HistoryBuffer, (PickledArray, 'numpy.ndarray'),
        (PickledDtype, 'numpy.dtype')
    ]
    # Files written with numpy 1.x name numpy.core, numpy 2.x numpy._core.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries += [(array_from_pickle, f'{module}._reconstruct'),
                    (scalar_from_pickle, f'{module}.scalar')]
    # Protocol 2 writes ``__builtin__``; torch maps it to ``builtins``.
    entries += [(history_buffer_method, 'builtins.getattr'),
                (empty_bytes, 'builtins.bytes')]
    return entries
