# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The stand-ins of the safe loader for mmengine's training state, in
process: crafted pickles read with ``torch.load(weights_only=True)`` and
only :func:`training_state_globals` allowed, then :func:`restore_numpy`."""
import io
import pickle
from collections import namedtuple

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmseg_groupvit.weights import training_state as ts


def save(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def safe_load(data: bytes):
    """What the safe loader does with a file's bytes."""
    with torch.serialization.safe_globals(ts.training_state_globals()):
        state = torch.load(
            io.BytesIO(data), map_location='cpu', weights_only=True)
    return ts.restore_numpy(state)


class Call:
    """Pickles as ``func(*args)`` (a REDUCE), with optional BUILD state."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


def test_message_hub_of_a_real_run_round_trips():
    hub = MessageHub('test_training_state_round_trip')
    for loss in (1.5, 2.5, np.float32(3.0)):
        hub.update_scalar('train/loss', loss)
    hub.update_scalar('train/lr', np.float64(0.01))
    hub.update_info('iter', 3)
    hub.update_info('seed', np.int64(7))
    state = hub.state_dict()
    with pytest.raises(pickle.UnpicklingError):
        # Without the stand-ins torch refuses the file: they are needed.
        torch.load(io.BytesIO(save(state)), weights_only=True)

    loaded = safe_load(save(state))

    assert set(loaded['log_scalars']) == {'train/loss', 'train/lr'}
    for key, original in state['log_scalars'].items():
        buffer = loaded['log_scalars'][key]
        assert type(buffer) is HistoryBuffer
        for theirs, ours in zip(original.data, buffer.data):
            assert type(ours) is np.ndarray and ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)
    loss = loaded['log_scalars']['train/loss']
    # Hand-computed statistics of 1.5, 2.5, 3.0.
    assert loss.mean() == pytest.approx(7 / 3)
    assert loss.statistics('max') == 3.0
    assert loss.statistics('min') == 1.5
    assert loss.current() == 3.0
    assert loaded['runtime_info']['iter'] == 3
    assert loaded['runtime_info']['seed'] == 7
    assert type(loaded['runtime_info']['seed']) is np.int64


@pytest.mark.parametrize('value', [
    np.arange(6, dtype='<f4').reshape(2, 3),
    np.arange(6, dtype='>f4').reshape(2, 3),
    np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    np.array([True, False]),
    np.array([1 + 2j, 3 - 4j]),
    np.float16(0.5),
    np.int32(-4),
])
def test_numeric_numpy_values_round_trip(value):
    loaded = safe_load(save(dict(value=value)))['value']
    assert type(loaded) is type(value)
    assert loaded.dtype == value.dtype
    np.testing.assert_array_equal(loaded, value)
    if isinstance(value, np.ndarray):
        assert loaded.shape == value.shape


def test_forged_object_dtype_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="numpy.dtype 'O"):
        safe_load(save(dict(value=np.array([1, 'a'], dtype=object))))
    for spec in ('O', 'U3', 'V8', 'M8[s]', "[('a', '<f4')]"):
        with pytest.raises(pickle.UnpicklingError, match='numeric dtypes'):
            ts.PickledDtype(spec)


def test_forged_dtype_flags_do_not_make_objects():
    """A float64 dtype whose pickled state claims the object flag (63):
    the stand-in keeps a plain float64, so the bytes stay numbers."""
    values = np.array([1.0, 2.0, 3.0])
    dtype = Call(np.dtype, ('f8', False, True),
                 (3, '<', None, None, None, -1, -1, 63))
    array = Call(np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                 (1, (3, ), dtype, False, values.tobytes()))
    loaded = safe_load(save(dict(value=array)))['value']
    assert not loaded.dtype.hasobject
    np.testing.assert_array_equal(loaded, values)


def test_dtype_with_fields_or_subarray_is_refused():
    dtype = ts.PickledDtype('f8')
    with pytest.raises(pickle.UnpicklingError, match='fields or a sub-array'):
        dtype.__setstate__((3, '<', None, ('a', ), {'a': None}, 8, 8, 0))
    with pytest.raises(pickle.UnpicklingError, match='fields or a sub-array'):
        dtype.__setstate__('not a tuple')
    dtype.__setstate__((3, '>', None, None, None, -1, -1, 0))
    assert dtype.dtype == np.dtype('>f8')


def test_array_bytes_must_match_the_shape():
    dtype = ts.PickledDtype('f4')
    array = ts.PickledArray()
    with pytest.raises(pickle.UnpicklingError, match='does not match'):
        array.__setstate__((1, (2, 3), dtype, False, b'\0' * 20))
    with pytest.raises(pickle.UnpicklingError, match='does not match'):
        array.__setstate__((1, (-1, ), dtype, False, b''))
    with pytest.raises(pickle.UnpicklingError, match='plain numeric array'):
        array.__setstate__((1, (1, ), np.dtype('f4'), False, b'\0' * 4))
    array.__setstate__((1, (2, ), dtype, False, b'\0' * 8))
    np.testing.assert_array_equal(array.array, np.zeros(2, np.float32))


def test_reconstruct_and_scalar_accept_only_their_stand_ins():
    with pytest.raises(pickle.UnpicklingError, match='other than'):
        ts.array_from_pickle(np.matrix, (0, ), b'b')
    assert isinstance(
        ts.array_from_pickle(ts.PickledArray, (0, ), b'b'), ts.PickledArray)
    with pytest.raises(pickle.UnpicklingError, match='plain number'):
        ts.scalar_from_pickle(ts.PickledDtype('f8'), b'\0' * 4)
    with pytest.raises(pickle.UnpicklingError, match='plain number'):
        ts.scalar_from_pickle(np.dtype('f8'), b'\0' * 8)
    assert ts.scalar_from_pickle(ts.PickledDtype('<i2'), b'\x05\x00') == 5


@pytest.mark.parametrize('name', ts.HISTORY_BUFFER_METHODS)
def test_getattr_gives_the_history_buffer_statistics(name):
    assert ts.history_buffer_method(HistoryBuffer,
                                    name) is getattr(HistoryBuffer, name)


@pytest.mark.parametrize('obj, name, refused', [
    (HistoryBuffer, 'update', "'update' of HistoryBuffer"),
    (HistoryBuffer, '__init__', "'__init__' of HistoryBuffer"),
    (np.ndarray, 'tofile', "'tofile' of ndarray"),
    (MessageHub, 'mean', "'mean' of MessageHub"),
    (HistoryBuffer(), 'mean', "'mean' of HistoryBuffer"),
])
def test_getattr_of_anything_else_is_refused(obj, name, refused):
    with pytest.raises(pickle.UnpicklingError, match=refused):
        ts.history_buffer_method(obj, name)


def test_getattr_in_a_file_is_refused():
    data = save(dict(value=Call(getattr, (np.ndarray, 'tofile'))))
    with pytest.raises(pickle.UnpicklingError, match="'tofile' of"):
        safe_load(data)
    data = save(dict(value=Call(getattr, (HistoryBuffer, 'update'))))
    with pytest.raises(pickle.UnpicklingError, match="'update' of"):
        safe_load(data)


def test_cycles_and_shared_objects_are_restored_once():
    array = np.arange(3.0)
    cyclic = [array]
    cyclic.append(cyclic)
    shared = {'x': array}
    loaded = safe_load(save(dict(cyclic=cyclic, a=shared, b=shared)))
    assert loaded['cyclic'][1] is loaded['cyclic']
    np.testing.assert_array_equal(loaded['cyclic'][0], array)
    assert loaded['a'] is loaded['b']
    assert type(loaded['a']['x']) is np.ndarray


def test_stand_in_without_its_state_is_refused():
    with pytest.raises(pickle.UnpicklingError, match='PickledArray stand-in'):
        ts.restore_numpy({'a': [ts.PickledArray()]})
    dtype = ts.PickledDtype.__new__(ts.PickledDtype)  # NEWOBJ, no __init__
    with pytest.raises(pickle.UnpicklingError, match='PickledDtype stand-in'):
        ts.restore_numpy((1, dtype))


def test_restore_numpy_leaves_named_tuples_and_plain_values():
    Pair = namedtuple('Pair', 'a b')
    pair = Pair(1, 2)
    assert ts.restore_numpy(pair) is pair
    assert ts.restore_numpy(3.5) == 3.5
    assert ts.restore_numpy((1, [2])) == (1, [2])


def test_globals_allow_no_general_callable():
    entries = ts.training_state_globals()
    allowed = [e[0] if isinstance(e, tuple) else e for e in entries]
    assert getattr not in allowed and np.dtype not in allowed
    assert np.ndarray not in allowed
    names = {e[1] for e in entries if isinstance(e, tuple)}
    assert 'builtins.getattr' in names and 'numpy.dtype' in names


def test_history_buffer_never_updated_round_trips():
    """Its empty arrays pickle their data as ``bytes()`` (protocol 2)."""
    loaded = safe_load(save(dict(log_scalars=dict(lr=HistoryBuffer()))))
    buffer = loaded['log_scalars']['lr']
    assert type(buffer) is HistoryBuffer
    assert buffer.data[0].shape == (0, ) and buffer.data[1].shape == (0, )
    assert safe_load(save(np.zeros(0))).shape == (0, )


@pytest.mark.parametrize('args', [(10**9, ), ('abc', 'utf-8'), ([1, 2], )])
def test_bytes_with_arguments_in_a_file_is_refused(args):
    data = save(dict(value=Call(bytes, args)))
    with pytest.raises(pickle.UnpicklingError, match='builtins.bytes with'):
        safe_load(data)
