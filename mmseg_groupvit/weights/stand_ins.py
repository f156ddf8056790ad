# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Inert stand-ins for the few classes published and training checkpoints
pickle: the NVlabs release's OmegaConf config, mmengine's numpy values and
``HistoryBuffer`` objects. Each accepts plain data only (a numeric dtype, an
array's bytes, a buffer's values: the statistics table a file carries,
which mmengine's ``__setstate__`` writes class-wide, is dropped), and
:func:`real` turns it into the real object once loading is done. Allowed
for one ``torch.load`` call by :mod:`.safe_load`, never process-wide.
"""
import math

import numpy as np


class Refused(Exception):
    """A class or function the stand-ins do not rebuild (not an
    ``UnpicklingError``, which ``torch.load`` rewrites)."""


def refuse(what: str):
    """Refuse ``what`` (a class or function, and why); :mod:`.safe_load`
    names the file and it in one line."""
    raise Refused(what)


class ConfigNode:
    """An OmegaConf object: runs no code, keeps its pickled state."""

    state = None

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state


class Dtype:
    """``np.dtype``: a plain numeric dtype and its byte order only."""

    dtype = None  # until __init__ runs (a NEWOBJ skips it)

    def __init__(self, spec='', align=False, copy=False):
        try:
            dtype = np.dtype(str(spec))
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in 'biufc':
            refuse(f'numpy.dtype {spec!r} (only numeric dtypes are read)')
        self.dtype = dtype

    def __setstate__(self, state):
        if (not isinstance(state, tuple) or len(state) != 8
                or state[2:5] != (None, None, None)):
            refuse('numpy.dtype with fields or a sub-array')
        if state[1] in ('<', '>'):
            self.dtype = self.dtype.newbyteorder(state[1])


class Array:
    """``np.ndarray``: :meth:`__setstate__` builds it from its bytes."""

    array = None  # until __setstate__ runs

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5
                and isinstance(state[1], tuple)
                and isinstance(state[2], Dtype) and state[2].dtype is not None
                and isinstance(state[4], bytes)):
            refuse('numpy.ndarray that is not a plain numeric array')
        _, shape, dtype, fortran, data = state
        if not all(isinstance(n, int) and n >= 0
                   for n in shape) or (math.prod(shape) * dtype.dtype.itemsize
                                       != len(data)):
            refuse(f'numpy.ndarray whose shape {shape} does not match its '
                   f'{len(data)} bytes')
        self.array = np.frombuffer(
            data, dtype=dtype.dtype).reshape(
                shape, order='F' if fortran else 'C').copy()


class Buffer:
    """mmengine's ``HistoryBuffer``: its values and counts, nothing else
    (the pickled ``statistics_methods`` are dropped)."""

    state = None

    def __setstate__(self, state):
        self.state = state


def _reconstruct(subtype, shape, dtype_char):
    if subtype is not Array:
        refuse('numpy._reconstruct of a class other than numpy.ndarray')
    return Array()


def _scalar(dtype, data):
    if not isinstance(dtype, Dtype) or dtype.dtype is None or not isinstance(
            data, bytes) or len(data) != dtype.dtype.itemsize:
        refuse('numpy scalar that is not a plain number')
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _statistic(obj, name):
    """``getattr`` for its one use in training checkpoints."""
    if obj is Buffer and name in ('min', 'max', 'current', 'mean'):
        return None
    owner = getattr(obj, '__qualname__', type(obj).__qualname__)
    owner = _REAL_NAMES.get(owner, owner)
    refuse(f'builtins.getattr (attribute {name!r} of {owner})')


def _empty_bytes(*args) -> bytes:
    """``bytes()`` (protocol 2's empty byte string); ``bytes(n)`` would
    let a file allocate n bytes."""
    if args:
        refuse(f'builtins.bytes with arguments ({len(args)} given)')
    return b''


_OMEGACONF = ('omegaconf.dictconfig.DictConfig',
              'omegaconf.listconfig.ListConfig', 'omegaconf.nodes.AnyNode',
              'omegaconf.base.Metadata', 'omegaconf.base.ContainerMetadata',
              'typing.Any')
_NUMPY = [(Array, 'numpy.ndarray'), (Dtype, 'numpy.dtype')] + [
    (fn, f'{module}.{name}')
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
    for fn, name in ((_reconstruct, '_reconstruct'), (_scalar, 'scalar'))
]
#: ``(stand-in, 'module.name')`` for ``torch.serialization.safe_globals``.
SAFE_GLOBALS = [
    (type(n.rsplit('.', 1)[1], (ConfigNode, ), {}), n) for n in _OMEGACONF
] + _NUMPY + [
    (dict, 'builtins.dict'), (list, 'builtins.list'), (int, 'builtins.int'),
    (__import__('collections').defaultdict, 'collections.defaultdict'),
    (Buffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
    (_statistic, 'builtins.getattr'), (_empty_bytes, 'builtins.bytes')
]
STAND_INS = (ConfigNode, Dtype, Array, Buffer)
_REAL_NAMES = dict(Buffer='HistoryBuffer', Array='ndarray', Dtype='dtype')


def real(obj, restore):
    """The real object of a stand-in.

    Args:
        obj: A :data:`STAND_INS` instance.
        restore (callable): Restores the part of a stand-in's state that is
            kept (the loader's walk, which bounds depth and checks types).

    Returns:
        A numpy array or dtype, a plain dict or list (OmegaConf), or a
        ``HistoryBuffer`` of the pickled values.
    """
    if isinstance(obj, (Dtype, Array)):
        value = obj.dtype if isinstance(obj, Dtype) else obj.array
        if value is None:
            refuse(f'numpy.{_REAL_NAMES[type(obj).__name__]} stand-in '
                   f'without its state')
        return value
    state = obj.state if isinstance(obj.state, dict) else {}
    if isinstance(obj, ConfigNode):  # its value; the metadata is dropped
        return restore(state['_content'] if '_content' in
                       state else state.get('_val'))
    from mmengine.logging import HistoryBuffer
    values = [
        restore(state.get(k)) for k in ('_log_history', '_count_history')
    ]
    length = state.get('max_length')
    if not (all(isinstance(v, np.ndarray) and v.ndim == 1
                for v in values) and len(values[0]) == len(values[1])
            and type(length) is int and length > 0):
        refuse('mmengine HistoryBuffer whose values are not two arrays of '
               'one length')
    return HistoryBuffer(list(values[0]), list(values[1]), length)
