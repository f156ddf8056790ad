# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The safe loader on files written here: mmengine's training state read
back, and payloads that claim memory, carry tensors of other kinds, bend
the zip format or reach process-wide state, each refused with one line
before it can act (each payload first shown to be live)."""
import codecs
import copyreg
import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict, namedtuple
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights import read_file
from mmseg_groupvit.weights import safe_load as stand_ins


class Call:
    """Pickles as ``func(*args)`` (a REDUCE), with optional BUILD state."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


@pytest.fixture
def load(tmp_path):
    """Save ``obj`` to a file and read it with the safe loader."""

    def save_and_read(obj, name='ckpt.pth'):
        path = str(tmp_path / name)
        torch.save(obj, path)
        return read_file(path)

    return save_and_read


def test_message_hub_of_a_real_run_round_trips(load):
    hub = MessageHub('test_safe_load_round_trip')
    for loss in (1.5, 2.5, np.float32(3.0)):
        hub.update_scalar('train/loss', loss)
    hub.update_scalar('train/lr', np.float64(0.01))
    hub.update_info('iter', 3)
    hub.update_info('seed', np.int64(7))
    state = hub.state_dict()
    with pytest.raises(pickle.UnpicklingError):
        # Without the stand-ins torch refuses the file: they are needed.
        torch.load(io.BytesIO(save(state)), weights_only=True)

    loaded = load(state)

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


def save(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize('value', [
    np.arange(6, dtype='<f4').reshape(2, 3),
    np.arange(6, dtype='>f4').reshape(2, 3),
    np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    np.array([True, False]),
    np.array([1 + 2j, 3 - 4j]),
    np.float16(0.5),
    np.int32(-4),
])
def test_numeric_numpy_values_round_trip(load, value):
    loaded = load(dict(value=value))['value']
    assert type(loaded) is type(value)
    assert loaded.dtype == value.dtype
    np.testing.assert_array_equal(loaded, value)
    if isinstance(value, np.ndarray):
        assert loaded.shape == value.shape


def test_forged_object_dtype_is_refused(load):
    with pytest.raises(CheckpointError, match="numpy.dtype 'O"):
        load(dict(value=np.array([1, 'a'], dtype=object)))
    for spec in ('O', 'U3', 'V8', 'M8[s]', "[('a', '<f4')]"):
        with pytest.raises(stand_ins.Refused, match='numeric dtypes'):
            stand_ins.Dtype(spec)


def test_forged_dtype_flags_do_not_make_objects(load):
    """A float64 dtype whose pickled state claims the object flag (63):
    the stand-in keeps a plain float64, so the bytes stay numbers."""
    values = np.array([1.0, 2.0, 3.0])
    dtype = Call(np.dtype, ('f8', False, True),
                 (3, '<', None, None, None, -1, -1, 63))
    array = Call(np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                 (1, (3, ), dtype, False, values.tobytes()))
    loaded = load(dict(value=array))['value']
    assert not loaded.dtype.hasobject
    np.testing.assert_array_equal(loaded, values)


def test_dtype_with_fields_or_subarray_is_refused():
    dtype = stand_ins.Dtype('f8')
    with pytest.raises(stand_ins.Refused, match='fields or a sub-array'):
        dtype.__setstate__((3, '<', None, ('a', ), {'a': None}, 8, 8, 0))
    with pytest.raises(stand_ins.Refused, match='fields or a sub-array'):
        dtype.__setstate__('not a tuple')
    dtype.__setstate__((3, '>', None, None, None, -1, -1, 0))
    assert dtype.dtype == np.dtype('>f8')


def test_array_bytes_must_match_the_shape():
    dtype = stand_ins.Dtype('f4')
    array = stand_ins.Array()
    with pytest.raises(stand_ins.Refused, match='does not match'):
        array.__setstate__((1, (2, 3), dtype, False, b'\0' * 20))
    with pytest.raises(stand_ins.Refused, match='does not match'):
        array.__setstate__((1, (-1, ), dtype, False, b''))
    with pytest.raises(stand_ins.Refused, match='plain numeric array'):
        array.__setstate__((1, (1, ), np.dtype('f4'), False, b'\0' * 4))
    array.__setstate__((1, (2, ), dtype, False, b'\0' * 8))
    np.testing.assert_array_equal(array.array, np.zeros(2, np.float32))


@pytest.mark.parametrize('obj, name, refused', [
    (np.ndarray, 'tofile', "'tofile' of ndarray"),
    (HistoryBuffer, 'update', "'update' of HistoryBuffer"),
    (HistoryBuffer, '__init__', "'__init__' of HistoryBuffer"),
])
def test_getattr_of_anything_but_the_statistics_is_refused(
        load, obj, name, refused):
    with pytest.raises(CheckpointError, match=refused):
        load(dict(value=Call(getattr, (obj, name))))


def test_cycles_and_shared_objects_are_restored_once(load):
    array = np.arange(3.0)
    cyclic = [array]
    cyclic.append(cyclic)
    shared = {'x': array}
    loaded = load(dict(cyclic=cyclic, a=shared, b=shared))
    assert loaded['cyclic'][1] is loaded['cyclic']
    np.testing.assert_array_equal(loaded['cyclic'][0], array)
    assert loaded['a'] is loaded['b']
    assert type(loaded['a']['x']) is np.ndarray


def test_tuples_shared_through_the_memo_are_refused(load):
    """``t[i + 1] = (t[i], t[i])``: 90 levels are a 2 KB file that hashing
    or comparing (or a walk visiting each reference) would take 2**90 steps
    over; torch.save writes no such sharing."""
    nested = ('leaf', )
    for _ in range(90):
        nested = (nested, nested)
    with pytest.raises(CheckpointError, match='reading them whole would'):
        load(dict(state_dict={}, meta=dict(value=nested)))


Pair = namedtuple('Pair', 'a b')


def test_named_tuples_and_other_classes_are_refused(load):
    with pytest.raises(CheckpointError, match='test_safe_load.Pair'):
        load(dict(value=Pair(1, 2)))


def test_history_buffer_never_updated_round_trips(load):
    """Its empty arrays pickle their data as ``bytes()`` (protocol 2)."""
    loaded = load(dict(log_scalars=dict(lr=HistoryBuffer())))
    buffer = loaded['log_scalars']['lr']
    assert type(buffer) is HistoryBuffer
    assert buffer.data[0].shape == (0, ) and buffer.data[1].shape == (0, )
    assert load(np.zeros(0)).shape == (0, )


@pytest.mark.parametrize('args', [(10**9, ), ('abc', 'utf-8'), ([1, 2], )])
def test_bytes_with_arguments_is_refused(load, args):
    with pytest.raises(CheckpointError, match='builtins.bytes with'):
        load(dict(value=Call(bytes, args)))


class ForgedBuffer:
    """Pickles as a HistoryBuffer whose statistics map 'mean' to max."""

    def __reduce__(self):
        return copyreg.__newobj__, (ForgedBuffer, ), dict(
            max_length=10,
            _log_history=np.array([1., 2., 3.]),
            _count_history=np.array([1, 1, 1]),
            statistics_methods=dict(mean=Call(getattr, (ForgedBuffer, 'max'))))


def test_a_files_statistics_do_not_change_the_class_table(load, tmp_path):
    """mmengine's ``HistoryBuffer.__setstate__`` writes a file's statistics
    into the table all buffers share."""
    path = str(tmp_path / 'forged.pth')
    ForgedBuffer.__module__ = 'mmengine.logging.history_buffer'
    ForgedBuffer.__qualname__ = 'HistoryBuffer'
    with mock.patch('mmengine.logging.history_buffer.HistoryBuffer',
                    ForgedBuffer):
        torch.save(dict(buffer=ForgedBuffer()), path)
    table = dict(HistoryBuffer._statistics_methods)
    try:
        torch.load(path, weights_only=False)  # live: the table changes
        assert HistoryBuffer([1, 2, 3], [1, 1, 1]).statistics('mean') == 3
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(table)
    loaded = read_file(path)['buffer']
    assert loaded.statistics('mean') == 2
    assert HistoryBuffer([1, 2, 3], [1, 1, 1]).statistics('mean') == 2
    assert HistoryBuffer._statistics_methods == table


def test_omegaconf_becomes_plain_data_wherever_it_is(load):
    """Runner.resume pickles ``meta['dataset_meta']`` to compare it: an
    inert OmegaConf stand-in there would not pickle."""
    omegaconf = pytest.importorskip('omegaconf')
    meta = omegaconf.OmegaConf.create(dict(classes=['a', 'b'], depth=[2, 1]))
    loaded = load(dict(meta=dict(dataset_meta=meta), config=meta))
    expected = dict(classes=['a', 'b'], depth=[2, 1])
    assert loaded['meta']['dataset_meta'] == expected == loaded['config']
    assert pickle.loads(pickle.dumps(loaded)) == loaded


def hex_chain(times):
    """``_codecs.encode`` applied ``times`` times with the 'hex' codec to
    one byte: 2**times bytes from a few bytes per call."""
    value = b'A'
    for _ in range(times):
        value = Call(codecs.encode, (value, 'hex'))
    return value


@pytest.mark.parametrize('payload', ['bytearray', 'set', 'expand', 'hex'])
def test_a_small_file_cannot_claim_much_memory(load, tmp_path, payload):
    """A few dozen bytes that torch's weights-only loader would turn into
    many bytes: ``bytearray(n)`` (here 1 MB, shown live; 8e9 took 8 GB),
    a ``set`` over one, a tensor viewing one element a billion times
    (4 GB once anything touches it), and bytes encoded 20 times with the
    'hex' codec (1 MB; 33 times in 1.8 KB make 8 GB), after bytes as torch
    writes them (the function is then reused from the pickle's memo)."""
    value = dict(
        bytearray=Call(bytearray, (10**6, )),
        set=Call(set, (Call(bytearray, (10**6, )), )),
        expand=torch.zeros(1).expand(10**9),
        hex=[b'torch\'s own bytes first',
             hex_chain(20)])[payload]
    path = tmp_path / 'payload.pth'
    torch.save(dict(state_dict={}, meta=dict(value=value)), path)
    assert path.stat().st_size < 2000
    live = torch.load(path, weights_only=True)['meta']['value']
    live = live[-1] if payload == 'hex' else live
    assert len(live) >= 1 if payload == 'set' else len(live) >= 10**6
    message = dict(
        bytearray='holds the class or function bytearray',
        set='holds the class or function bytearray',
        expand='its tensors claim over 4000000000 bytes',
        hex='_codecs.encode called other than as torch writes it')[payload]
    with pytest.raises(CheckpointError, match=message):
        read_file(str(path))


@pytest.mark.parametrize('func, shape', [(list, (10**4, )),
                                         (dict, (10**4, 2))])
def test_containers_of_a_tensors_elements_are_refused(tmp_path, func, shape):
    """``list(tensor)`` and ``dict(tensor)`` make a tensor of each element:
    a stride-0 tensor of a few bytes becomes about 610 MiB per million
    elements, inside torch.load, before any bound is checked."""
    path = tmp_path / 'payload.pth'
    torch.save(dict(value=Call(func, (torch.zeros(1).expand(*shape), ))), path)
    with torch.serialization.safe_globals([func]):  # live
        assert len(torch.load(path, weights_only=True)['value']) == 10**4
    with pytest.raises(
            CheckpointError,
            match=f'holds builtins.{func.__name__} of a Tensor'):
        read_file(str(path))


class NewSize:
    """Pickles as ``torch.Size.__new__(torch.Size, tensor)``: NEWOBJ, which
    torch's loader runs for the classes it allows."""

    def __init__(self, tensor):
        self.tensor = tensor

    @property
    def __class__(self):  # what the pickler checks NEWOBJ's class against
        return torch.Size

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (torch.Size, self.tensor)


@pytest.mark.parametrize(
    'case',
    ['set', 'tensor_from_memo', 'set_from_memo', 'odict', 'size', 'new_size'])
def test_containers_torch_maps_itself_refuse_a_tensor(tmp_path, case):
    """torch maps ``set``, ``OrderedDict`` and ``torch.Size`` itself (our
    stand-ins do not apply): of a stride-0 tensor they make an object per
    element inside torch.load (here 10**4; a million 0-d tensors take
    about 610 MiB, and ``torch.Size`` by NEWOBJ of 10**7 elements took
    6 GB), whether the tensor or the callable comes from the pickle's
    memo."""
    row = torch.zeros(1).expand(10**4)
    value = dict(
        set=Call(set, (row, )),
        tensor_from_memo=[row, Call(set, (row, ))],
        set_from_memo=[{1, 2}, Call(set, (row, ))],
        odict=Call(OrderedDict, (torch.zeros(1, 2).expand(10**4, 2), )),
        size=Call(torch.Size, (row.long(), )),
        new_size=NewSize(row.long()))[case]
    path = tmp_path / 'payload.pth'
    torch.save(dict(value=value), path)
    live = torch.load(path, weights_only=True)['value']
    assert len(live[-1] if type(live) is list else live) == 10**4
    name = dict(
        odict='collections.OrderedDict',
        size='torch.Size',
        new_size='torch.Size')
    with pytest.raises(CheckpointError) as error, mock.patch(
            'torch.load', side_effect=AssertionError('torch.load ran')):
        read_file(str(path))
    assert str(error.value).count('\n') == 0
    assert f'holds {name.get(case, "builtins.set")} called other than as ' \
        f'torch writes it' in str(error.value)


def test_a_list_before_the_tensor_does_not_pass_for_the_argument(tmp_path):
    """``set, EMPTY_LIST, POP, <tensor>, TUPLE1, REDUCE``: the stack is
    followed, not the opcodes after ``set`` (torch 2.13 lacks POP; the
    refusal comes first)."""
    data = zipfile.ZipFile(
        io.BytesIO(save(dict(value=Call(set, (torch.zeros(3), ))))))
    records = [(n, data.read(n)) for n in data.namelist()]
    name, pickled = records[0]
    at = pickled.index(b'c__builtin__\nset\nq') + 17
    records[0] = (name, pickled[:at] + b']0' + pickled[at:])
    path = tmp_path / 'payload.pth'
    path.write_bytes(_archive(records))
    with pytest.raises(
            CheckpointError,
            match='holds builtins.set called other than as torch writes it'):
        read_file(str(path))


def test_sets_ordered_dicts_and_sizes_as_torch_writes_them_load(load):
    value = dict(a={1, 2}, b=set(), c=OrderedDict(x=1), d=torch.Size([2, 3]))
    assert load(dict(meta=value))['meta'] == value


def test_bytes_as_torch_writes_them_round_trip(load):
    shared = b'\x00\xffshared'
    value = dict(a=b'\x00\x80\xff', b=b'', c=[shared, shared, b'latin1'])
    assert load(dict(meta=value))['meta'] == value


def _archive(records):
    """A zip file of ``(name, bytes)`` records, stored."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as out:
        for name, body in records:
            out.writestr(name, body)
    return buffer.getvalue()


@pytest.mark.parametrize('case', ['case', 'before'])
def test_torch_reads_the_records_that_were_checked(tmp_path, case):
    """torch's zip reader finds ``data.pkl`` case-insensitively and reads
    the central directory at the offset it records, where Python's zipfile
    allows data before the archive: either way it could read a pickle the
    safe loader never looked at (here one encoding bytes with 'hex')."""
    good = zipfile.ZipFile(io.BytesIO(save(dict(w=b'A', t=torch.zeros(2)))))
    names = good.namelist()
    bad_pickle = zipfile.ZipFile(
        io.BytesIO(save(dict(w=hex_chain(2),
                             t=torch.zeros(2))))).read(names[0])
    size = max(len(bad_pickle), len(good.read(names[0])))

    def records(pickle):  # the pickles padded to one size after STOP
        return [(n, pickle.ljust(size) if n == names[0] else good.read(n))
                for n in names]

    if case == 'case':
        data = _archive(
            records(good.read(names[0])) +
            [(names[0].replace('data.pkl', 'DATA.PKL'), bad_pickle)])
    else:
        # The checked archive follows the unchecked one, which torch reads:
        # the end record gives the first one's directory.
        first = _archive(records(bad_pickle))
        data = bytearray(first + _archive(records(good.read(names[0]))))
        struct.pack_into('<I', data,
                         len(data) - 6,
                         struct.unpack('<I', first[-6:-2])[0])
    path = tmp_path / 'twofaced.pth'
    path.write_bytes(bytes(data))
    checked = zipfile.ZipFile(path).read(names[0])
    assert checked.rstrip() == good.read(names[0])
    assert torch.load(
        path, weights_only=True)['w'] == b'3431'  # live: A, 41, 3431
    with pytest.raises(CheckpointError, match='other zip records'):
        read_file(str(path))


@pytest.mark.parametrize('kind', ['sparse', 'quantized'])
def test_tensors_other_than_dense_are_named(load, kind):
    value = dict(
        sparse=torch.eye(3).to_sparse(),
        quantized=torch.quantize_per_tensor(
            torch.ones(2), 0.1, 0, torch.qint8))[kind]
    with pytest.raises(CheckpointError) as error:
        load(dict(state_dict=dict(w=value)))
    message = str(error.value)
    assert 'not a plain dense one' in message and '\n' not in message


def test_zip_records_must_be_stored_once_within_the_file(tmp_path):
    data = save(dict(w=torch.zeros(1000)))
    original = zipfile.ZipFile(io.BytesIO(data))
    for case in ('compressed', 'repeated'):
        path = tmp_path / f'{case}.pth'
        with zipfile.ZipFile(path, 'w') as out:
            for record in original.infolist():
                body = original.read(record)
                out.writestr(
                    record.filename,
                    body,
                    compress_type=zipfile.ZIP_DEFLATED
                    if case == 'compressed' else zipfile.ZIP_STORED)
            if case == 'repeated':
                with pytest.warns(UserWarning, match='Duplicate name'):
                    out.writestr(original.namelist()[0], b'x')
        with pytest.raises(CheckpointError, match='compressed, repeated'):
            read_file(str(path))


def test_files_that_are_not_checkpoints_are_named(tmp_path):
    legacy = tmp_path / 'legacy.pth'
    torch.save(
        dict(w=torch.zeros(2)), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match='torch\'s legacy format'):
        read_file(str(legacy))
    fifo = tmp_path / 'fifo.pth'
    os.mkfifo(fifo)
    for path, kind in ((fifo, 'a FIFO'), ('/dev/zero', 'a device')):
        with pytest.raises(CheckpointError, match=f'{path} is {kind}'):
            read_file(str(path))
    # A safetensors file is known by its content, whatever its name.
    from safetensors.torch import save_file
    save_file(dict(w=torch.ones(2)), str(tmp_path / 'model.pth'))
    assert read_file(str(tmp_path / 'model.pth'))['w'].tolist() == [1, 1]


def _torch_zip(pickled: bytes) -> bytes:
    """A torch zip file whose ``data.pkl`` is ``pickled``."""
    data = zipfile.ZipFile(io.BytesIO(save({})))
    return _archive([(n, pickled if n.endswith('/data.pkl') else data.read(n))
                     for n in data.namelist()])


@pytest.mark.parametrize('case', ['ordered_dict', 'parameter'])
def test_attributes_that_shadow_methods_are_refused(tmp_path, case):
    """torch's loader sets the attributes a file gives an OrderedDict
    (BUILD) or a Parameter (its state). An OrderedDict whose ``get`` and
    ``items`` are ``set`` hid its config strings from the check that makes
    them harmless (mmengine reads them by key and ran them); a Parameter
    whose ``numel`` is ``int`` claimed 0 bytes, so a stride-0 view of
    gigabytes passed the size bound."""
    if case == 'ordered_dict':
        value = Call(OrderedDict, ([('meta', dict(cfg='CODE'))], ),
                     dict(get=set, items=set))
    else:
        value = torch.nn.Parameter(torch.zeros(1).expand(10**6))
        value.numel = int
    path = tmp_path / 'payload.pth'
    torch.save(value, path)
    with torch.serialization.safe_globals([int]):  # as the safe loader
        live = torch.load(path, weights_only=True)
    if case == 'ordered_dict':
        assert live.get('meta') == {'m', 'e', 't', 'a'} and \
            live['meta'] == dict(cfg='CODE')
    else:
        assert live.numel() == 0 and torch.Tensor.numel(live) == 10**6
    name = dict(ordered_dict='OrderedDict', parameter='Parameter')[case]
    with pytest.raises(
            CheckpointError, match=f'a {name} carries the '
            f'attributes'):
        read_file(str(path))


def test_a_state_dicts_versions_still_load(load):
    state = torch.nn.Linear(2, 2).state_dict()
    assert load(state)._metadata == state._metadata


def test_a_refused_value_is_named_briefly(tmp_path):
    """A file can nest lists that share their halves: printing one whole
    in a message doubled with each level (24 levels, 600 bytes: a 117 MB
    error line in 28 s)."""
    nested = [0]
    for _ in range(24):
        nested = [nested, nested]
    path = tmp_path / 'payload.pth'
    torch.save(dict(value=Call(np.dtype, (nested, ))), path)
    assert path.stat().st_size < 2000
    with pytest.raises(CheckpointError, match='holds numpy.dtype') as error:
        read_file(str(path))
    assert len(str(error.value)) < 1000


@pytest.mark.parametrize('levels, refused', [(12, False), (40, True)])
def test_tuples_that_share_tuples_are_hashed_in_bounded_time(
        tmp_path, levels, refused):
    """``t = (t, t)`` repeated: a few bytes per level, and hashing the
    last (as a dict key, inside torch.load) visits 2**levels tuples (40
    levels: hours)."""
    pickled = b'\x80\x02]K\x00q\x00a'  # [0], 0 in the memo
    for i in range(levels):
        pickled += b'h%ch%c\x86q%ca' % (i, i, i + 1)  # append (t, t)
    pickled += b'}h%cK\x01sa.' % levels  # append {t: 1}
    path = tmp_path / 'payload.pth'
    path.write_bytes(_torch_zip(pickled))
    if refused:
        with pytest.raises(
                CheckpointError,
                match='would take over a million '
                'steps to hash'):
            read_file(str(path))
    else:
        assert len(read_file(str(path))[-1]) == 1


@pytest.mark.parametrize('form', ['key', 'set'])
def test_keys_whose_hashing_takes_too_long_are_refused(tmp_path, form):
    """Python does not keep a tuple's hash: a key of 1000 references to a
    tuple of 2000 items hashes 2 * 10**6 items each time it is stored
    (6.6 KB storing such a key again and again took minutes inside
    torch.load)."""
    row = (0, ) * 2000
    key = (row, ) * 1000
    path = tmp_path / 'payload.pth'
    torch.save(dict(value={key: 1} if form == 'key' else {key}), path)
    with pytest.raises(
            CheckpointError, match='would take over a million '
            'steps to hash'):
        read_file(str(path))


@pytest.mark.parametrize('case', ['assign', 'hooks'])
def test_state_that_changes_how_torch_loads_is_refused(tmp_path, case):
    """A state dict's ``_metadata`` may only hold module versions
    (``assign_to_params_buffers`` made load_state_dict take the file's
    float64 stride-0 tensors as the parameters); a tensor may not carry
    backward hooks (``backward()`` would call them)."""
    state = torch.nn.Linear(2, 2).state_dict()
    if case == 'assign':
        state._metadata[''] = dict(version=1, assign_to_params_buffers=True)
    else:  # torch.save drops hooks: written as the rebuild call
        state['weight'] = Call(torch._utils._rebuild_tensor_v2,
                               (torch.zeros(1).storage(), 0, (1, ),
                                (1, ), False, OrderedDict(h=set)))
    path = tmp_path / 'payload.pth'
    torch.save(state, path)
    live = torch.load(path, weights_only=True)
    assert live._metadata[''].get('assign_to_params_buffers') or \
        live['weight']._backward_hooks == dict(h=set)
    name = dict(assign='_metadata', hooks='_backward_hooks')[case]
    with pytest.raises(
            CheckpointError, match=f'carries the attributes '
            f"\\['{name}'\\]"):
        read_file(str(path))
