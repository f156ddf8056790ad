# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The one entry through which a checkpoint file becomes objects
(:func:`read_file`) and the only place per-file trust is honoured; see
docs/weights.md."""
import ast
import hashlib
import io
import math
import os.path as osp
import pickletools
import shlex
import struct
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections import defaultdict
from typing import Callable, Optional

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from groupvit_common.errors import (CheckpointError, DataFileError, first_line,
                                    shown)
from groupvit_common.files import file_sha256, read_bytes

#: Containers nested deeper than this are refused.
MAX_DEPTH = 100
#: The largest checkpoint file read (it is read into memory once).
MAX_BYTES = 8 << 30
# Tensors may claim this many bytes per byte of the file (shared storages).
_CLAIM_FACTOR = 4
# What torch writes for tensors and plain containers.
_TORCH_NAMES = {
    'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state', 'collections.OrderedDict',
    '_codecs.encode', 'builtins.set', 'builtins.complex', 'torch.Size',
    'torch.device'
}
# Trusted files: real path -> SHA-256 of the bytes the user trusted.
_TRUSTED = {}
_LEGACY_MAGIC = b'\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19'
_KINDS = ((b'\xff\xd8\xff', 'a JPEG image'), (b'\x89PNG', 'a PNG image'),
          (b'GIF8', 'a GIF image'), (b'%PDF', 'a PDF document'),
          (b'\x1f\x8b', 'a gzip archive'), (b'BZh', 'a bzip2 archive'),
          (_LEGACY_MAGIC, 'a checkpoint in torch\'s legacy format (before '
           'torch 1.6), which the safe loader does not read (load it with '
           '--trust-pickle if you trust its source)'),
          (b'\x80', 'a Python pickle, not a torch.save zip file'))


def curl_command(url: str, dst: str) -> str:
    """The shell command that downloads ``url`` to ``dst``."""
    return f'curl -L -o {shlex.quote(dst)} {shlex.quote(url)}'


class Refused(Exception):
    """What the stand-ins do not rebuild (torch rewrites UnpicklingError)."""


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
            dtype = np.dtype(spec) if isinstance(spec, str) else None
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in 'biufc':
            raise Refused(f'numpy.dtype {shown(spec)} (only numeric '
                          f'dtypes are read)')
        self.dtype = dtype

    def __setstate__(self, state):
        if (not isinstance(state, tuple) or len(state) != 8
                or state[2:5] != (None, None, None)):
            raise Refused('numpy.dtype with fields or a sub-array')
        if state[1] in ('<', '>'):
            self.dtype = self.dtype.newbyteorder(state[1])


class Array:
    """``np.ndarray``, built from its bytes."""

    array = None  # until __setstate__ runs

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5
                and isinstance(state[1], tuple)
                and isinstance(state[2], Dtype) and state[2].dtype is not None
                and isinstance(state[4], bytes)):
            raise Refused('numpy.ndarray that is not a plain numeric array')
        _, shape, dtype, fortran, data = state
        if not all(isinstance(n, int) and n >= 0
                   for n in shape) or (math.prod(shape) * dtype.dtype.itemsize
                                       != len(data)):
            raise Refused(f'numpy.ndarray whose shape {shown(shape)} does not '
                          f'match its {len(data)} bytes')
        self.array = np.frombuffer(
            data, dtype=dtype.dtype).reshape(
                shape, order='F' if fortran else 'C').copy()


class Buffer(ConfigNode):
    """mmengine's ``HistoryBuffer``: values and counts only."""


def _reconstruct(subtype, shape, dtype_char):
    if subtype is not Array:
        raise Refused('numpy._reconstruct of a class other than numpy.ndarray')
    return Array()


def _scalar(dtype, data):
    if not isinstance(dtype, Dtype) or dtype.dtype is None or not isinstance(
            data, bytes) or len(data) != dtype.dtype.itemsize:
        raise Refused('numpy scalar that is not a plain number')
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _statistic(obj, name):
    """``getattr`` for its one use in training checkpoints."""
    if obj is Buffer and name in ('min', 'max', 'current', 'mean'):
        return None
    owner = getattr(obj, '__qualname__', type(obj).__qualname__)
    owner = _REAL_NAMES.get(owner, owner)
    raise Refused(f'builtins.getattr (attribute {shown(name)} of {owner})')


def _container(kind: type, accepted: tuple):
    """``kind`` of a value of the ``accepted`` types only (``list(tensor)``
    could make gigabytes from a stride-0 tensor)."""

    def build(items=()):
        if not isinstance(items, accepted):
            raise Refused(
                f'builtins.{kind.__name__} of a {type(items).__name__}')
        return kind(items)

    return build


def _defaultdict(factory=None) -> defaultdict:
    return defaultdict(factory)  # pickles set the items one by one


def _empty_bytes(*args) -> bytes:
    """``bytes()`` (protocol 2); ``bytes(n)`` would allocate n bytes."""
    if args:
        raise Refused(f'builtins.bytes with arguments ({len(args)} given)')
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
] + _NUMPY + [(_container(dict, (dict, list, tuple)), 'builtins.dict'),
              (_container(list, (list, tuple)), 'builtins.list'),
              (int, 'builtins.int'), (_defaultdict, 'collections.defaultdict'),
              (Buffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
              (_statistic, 'builtins.getattr'),
              (_empty_bytes, 'builtins.bytes')]
STAND_INS = (ConfigNode, Dtype, Array)
_REAL_NAMES = dict(Buffer='HistoryBuffer', Array='ndarray', Dtype='dtype')


def real(obj, restore):
    """The real object of a :data:`STAND_INS` instance (OmegaConf: plain
    dicts and lists); ``restore`` restores the state kept."""
    if isinstance(obj, (Dtype, Array)):
        value = obj.dtype if isinstance(obj, Dtype) else obj.array
        if value is None:
            raise Refused(f'numpy.{_REAL_NAMES[type(obj).__name__]} stand-in '
                          f'without its state')
        return value
    state = obj.state if isinstance(obj.state, dict) else {}
    if not isinstance(obj, Buffer):  # OmegaConf: the metadata is dropped
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
        raise Refused(
            'mmengine HistoryBuffer whose values are not two arrays of '
            'one length')
    return HistoryBuffer(list(values[0]), list(values[1]), length)


_ALLOWED = _TORCH_NAMES | {name for _, name in SAFE_GLOBALS}


def trust_checkpoint(path: str) -> None:
    """Let :func:`read_file` unpickle ``path`` fully (which can run code)
    while its bytes do not change."""
    path = osp.realpath(osp.expanduser(path))
    if osp.isfile(path):
        _TRUSTED[path] = file_sha256(path)


def read_file(path: str,
              check_digest: Optional[Callable] = None,
              url: Optional[str] = None):
    """Read a torch zip (``.pth``, ``.bin``) or safetensors file safely;
    ``check_digest`` gets the hex SHA-256 first (it raises to refuse);
    ``url``: where a temporary ``path`` was downloaded from (named in
    errors instead).

    Returns:
        Tensors, plain values and containers, numpy values and
        ``HistoryBuffer`` objects; OmegaConf configs as dicts and lists.

    Raises:
        CheckpointError: Missing, empty, damaged or refused files.
    """
    if not osp.lexists(path):
        raise CheckpointError(
            f'Checkpoint not found: {path}. Check the path, or download the '
            f'GroupViT weights (see docs/weights.md).')
    try:
        data = read_bytes(path, MAX_BYTES, 'checkpoint')
    except DataFileError as e:
        raise CheckpointError(str(e)) from None
    name = url or path
    if not data:
        raise CheckpointError(f'Checkpoint {name} is empty (0 bytes); the '
                              f'download probably failed. Download it again.')
    digest = hashlib.sha256(data).hexdigest()
    if check_digest is not None:
        check_digest(digest)
    trusted = _TRUSTED.get(osp.realpath(path))
    if trusted not in (None, digest):
        raise CheckpointError(
            f'{path} changed after it was trusted (--trust-pickle); it is not '
            f'unpickled. Trust the new file explicitly if you mean to.')
    try:
        # A safetensors header: its length (8 bytes), then a JSON object.
        if path.endswith('.safetensors') or (
                data[8:9] == b'{'
                and int.from_bytes(data[:8], 'little') < len(data)):
            return load_safetensors(data)
        if trusted:
            return torch.load(
                io.BytesIO(data), map_location='cpu', weights_only=False)
        if not data.startswith(b'PK\x03\x04'):
            raise CheckpointError(f'{name} is {_kind(data)}, not a PyTorch '
                                  f'checkpoint. Give a GroupViT checkpoint '
                                  f'(.pth), a transformers folder or a '
                                  f'.safetensors file.')
        _check_archive(data)
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(
                io.BytesIO(data), map_location='cpu', weights_only=True)
        obj = _Walk(len(data)).restore(obj, 0)
    except CheckpointError:
        raise
    except Refused as e:
        how = (f'convert it once with `tools/convert_weights.py '
               f'--trust-pickle {path} OUT.pth` (or pass --trust-pickle to '
               f'tools/test.py)') if url is None else (
                   f'download it (`{curl_command(url, "FILE")}`) and '
                   f'convert it once with `tools/convert_weights.py '
                   f'--trust-pickle FILE OUT.pth`')
        raise CheckpointError(
            f'{name} was refused: it holds {e}, which the safe loader does '
            f'not rebuild (it reads tensors, plain containers, the NVlabs '
            f'OmegaConf config and mmengine training state). Loading it '
            f'fully could run code hidden in the file; if you trust its '
            f'source, {how}.') from None
    except _Damaged as e:
        raise CheckpointError(f'{name} was refused: {e}. The file is damaged '
                              f'or crafted; use another checkpoint.') from None
    except SafetensorError as e:
        raise CheckpointError(
            f'{name} is not a valid safetensors file ({first_line(e)}); it '
            f'may be truncated or corrupt. Download it again.') from None
    except Exception as e:  # torch raises many types for damaged files
        raise CheckpointError(
            f'{name} is not a readable PyTorch checkpoint ({first_line(e)}); '
            f'it is probably truncated or corrupt. Download it again.'
        ) from None
    neutralise_config_strings(obj)
    return obj


class _Damaged(Exception):
    """A structure no checkpoint has (damaged or crafted)."""


def _check_archive(data: bytes) -> None:
    """Refuse, before torch reads it, a torch zip file whose records are
    compressed or overflow it, or whose pickle :func:`_check_pickle`
    refuses."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    records = archive.infolist()
    names = [r.filename for r in records]
    pickles = [n for n in names if n.endswith('/data.pkl')]
    if len(set(names)) != len(names) or len(pickles) != 1 or any(
            r.compress_type != zipfile.ZIP_STORED
            for r in records) or sum(r.file_size for r in records) > len(data):
        raise _Damaged('its zip records are compressed, repeated or larger '
                       'than the file (torch.save writes none of these)')
    # torch's zip reader finds names case-insensitively and skips data
    # before the archive: it must read the records checked here.
    reader = torch._C.PyTorchFileReader(io.BytesIO(data))
    offsets = {}
    for r in records:  # a record's bytes start after its local header
        start = r.header_offset
        name, extra = struct.unpack('<HH', data[start + 26:start + 30])
        offsets[r.filename.partition('/')[2]] = start + 30 + name + extra
    if sorted(reader.get_all_records()) != sorted(offsets) or any(
            reader.get_record_offset(name) != offset
            for name, offset in offsets.items()):
        raise _Damaged('torch would read other zip records than the ones '
                       'checked (names that differ only in case, or data '
                       'before the archive)')
    _check_pickle(archive.read(pickles[0]))


class _Global(str):
    """A GLOBAL's ``module.name`` on :func:`_check_pickle`'s stack."""


def _weight(value) -> int:
    """The steps hashing a stack value takes (a tuple's items, shared ones
    each time)."""
    return value.weight if type(value) is _Tuple else 1


class _Tuple(tuple):
    """A tuple in the file, with its :func:`_weight`."""

    def __new__(cls, items):
        self = super().__new__(cls, items)
        self.weight = 1 + sum(map(_weight, items))
        return self


class _List(list):
    """A list in the file, weighing its items (set and OrderedDict hash
    them)."""
    weight = 0


_MARK = pickletools.markobject
# The calls torch maps itself, with the arguments torch writes: given a
# tensor, containers make a tensor per element; other codecs, chained, make
# gigabytes of a few bytes.
_CALLS = {
    '_codecs.encode': ([(str, 'latin1')], "encode(TEXT, 'latin1')"),
    'builtins.set': ([(_List, )], 'set(LIST)'),
    'collections.OrderedDict': ([(), (_List, )], 'OrderedDict(LIST)'),
    'torch.Size': ([(_Tuple, )], 'Size(TUPLE)'),
}


def _check_pickle(pickled: bytes) -> None:
    """Refuse a pickle naming a global outside :data:`_ALLOWED`, calling
    one of :data:`_CALLS` otherwise, or whose dict keys and set items take
    over ``10**6 + len(pickled)`` steps to hash. The stack tracks GLOBALs,
    strings and the file's lists and tuples (else None)."""
    stack, marks, memo, hashed = [], [], {}, 0
    for op, arg, _ in pickletools.genops(pickled):
        if op.name in ('STACK_GLOBAL', 'INST', 'OBJ'):
            raise Refused(f'a class or function named by {op.name}')
        before, items = op.stack_before, ()
        try:
            if _MARK in before:
                at = marks.pop()
                items = tuple(stack[at:])
                del stack[at:]
                before = before[:before.index(_MARK)]
            popped = [stack.pop() for _ in before][::-1]
        except IndexError:
            raise _Damaged('its pickle takes more from the stack than it '
                           'puts there') from None
        pushed = [None] * len(op.stack_after)
        if op.name == 'MARK':
            marks.append(len(stack))
            pushed = []
        elif op.name == 'GLOBAL':
            pushed = [_Global(_check_global(arg))]
        elif 'UNICODE' in op.name or 'STRING' in op.name:
            pushed = [arg]
        elif op.name in ('EMPTY_LIST', 'LIST'):
            pushed = [_List()]
            pushed[0].weight = sum(map(_weight, items))
        elif 'TUPLE' in op.name:
            pushed = [_Tuple(tuple(popped) + items)]
        elif op.name in ('GET', 'BINGET', 'LONG_BINGET'):
            pushed = [memo.get(arg)]
        elif op.name in ('APPEND', 'APPENDS', 'SETITEM', 'SETITEMS',
                         'ADDITEMS', 'BUILD', 'DUP', 'MEMOIZE'):
            pushed = popped[:1] * len(pushed)
            added = popped[1:] + list(items)
            if op.name.startswith('SETITEM'):
                hashed += sum(map(_weight, added[::2]))  # the keys
            elif type(popped[0]) is _List:
                popped[0].weight += sum(map(_weight, added))
        elif op.name in ('REDUCE', 'NEWOBJ', 'NEWOBJ_EX') and type(
                popped[0]) is _Global and popped[0] in _CALLS:
            func, args = popped[:2]  # NEWOBJ: torch writes none of them
            shapes, written = _CALLS[func]
            if op.name != 'REDUCE' or not any(
                    type(args) is _Tuple and len(args) == len(shape) and all(
                        a == s if isinstance(s, str) else type(a) is s
                        for a, s in zip(args, shape)) for shape in shapes):
                raise Refused(f'{func} called other than as torch writes '
                              f'it, {written}')
            if args and type(args[0]) is _List:  # set, OrderedDict
                hashed += args[0].weight
        if hashed > 10**6 + len(pickled):
            raise _Damaged('its dict keys and set items would take over a '
                           'million steps to hash (tuples that share tuples)')
        stack += pushed
        if op.name in ('PUT', 'BINPUT', 'LONG_BINPUT', 'MEMOIZE') and stack:
            memo[len(memo) if arg is None else arg] = stack[-1]


def _check_global(arg: str) -> str:
    """The ``module.name`` of an allowed GLOBAL (Python 2 names mapped as
    torch maps them); storage types and dtypes are torch's."""
    module, name = arg.split(' ', 1)
    module, name = NAME_MAPPING.get((module, name),
                                    (IMPORT_MAPPING.get(module, module), name))
    full = f'{module}.{name}'
    if full in _ALLOWED or module == 'torch' and (
            name.endswith('Storage')
            or isinstance(getattr(torch, name, None), torch.dtype)):
        return full
    if module in ('torch._utils', 'torch._tensor'):
        raise _Damaged(f'it holds a tensor that is not a plain dense one '
                       f'({full}); only dense tensors are read')
    raise Refused('the class or function ' +
                  (name if module == 'builtins' else full))


_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.dtype,
          torch.device, np.ndarray, np.generic, np.dtype)


class _Walk:
    """Restores stand-ins and refuses what a checkpoint cannot hold."""

    def __init__(self, file_bytes: int):
        self.seen, self.sizes = {}, {}
        self.claimed = self.visits = 0
        self.limit = _CLAIM_FACTOR * file_bytes + (1 << 20)

    def restore(self, obj, depth: int):
        """``obj`` restored, counting the visits reading it whole takes
        (shared objects each time; torch.save writes no more than this
        limit)."""
        start = self.visits
        self.visits += self.sizes.get(id(obj), 1)
        if self.visits > 10**6 + self.limit:
            raise _Damaged('its objects share objects so that reading them '
                           'whole would visit over a million')
        restored = self._restore(obj, depth)
        if id(obj) in self.seen and id(obj) not in self.sizes:
            self.sizes[id(obj)] = self.visits - start
        return restored

    def _restore(self, obj, depth: int):
        if depth > MAX_DEPTH:
            raise _Damaged(f'its objects nest too deeply (over {MAX_DEPTH} '
                           f'levels) to be a checkpoint')
        # torch sets attributes on a Parameter or an OrderedDict (BUILD):
        # they would shadow methods (numel, items). A state dict keeps the
        # modules' versions in _metadata (other keys change how torch loads).
        attributes = set()
        if isinstance(obj, (torch.Tensor, dict)):
            attributes.update(getattr(obj, '__dict__', ()))
        if isinstance(obj, dict):
            metadata = getattr(obj, '_metadata', {})
            if isinstance(metadata, dict) and all(
                    type(k) is str and type(v) is dict
                    and set(v) <= {'version'} for k, v in metadata.items()):
                attributes.discard('_metadata')
        if isinstance(obj, torch.Tensor) and obj._backward_hooks:
            attributes.add('_backward_hooks')
        if attributes:
            raise _Damaged(f'a {type(obj).__name__} carries the attributes '
                           f'{shown(sorted(attributes, key=shown))}, '
                           f'which torch.save writes for none of a '
                           f'checkpoint\'s objects')
        if isinstance(obj, torch.Tensor):
            self.claimed += obj.numel() * obj.element_size()
            if self.claimed > self.limit:
                raise _Damaged(f'its tensors claim over {self.claimed} bytes, '
                               f'more than the file holds')
            return obj
        if isinstance(obj, _PLAIN):
            return obj
        if id(obj) in self.seen:  # shared or cyclic: restored once
            return self.seen[id(obj)]
        if isinstance(obj, STAND_INS):
            self.seen[id(obj)] = real(
                obj, lambda state: self.restore(state, depth + 1))
        elif isinstance(obj, dict):
            self.seen[id(obj)] = obj
            items = [(self.restore(k, depth + 1), self.restore(v, depth + 1))
                     for k, v in obj.items()]
            obj.clear()
            obj.update(items)
            if hasattr(obj, '_metadata'):  # a state dict's versions
                obj._metadata = self.restore(obj._metadata, depth + 1)
        elif type(obj) is list:
            self.seen[id(obj)] = obj
            obj[:] = [self.restore(v, depth + 1) for v in obj]
        elif type(obj) in (tuple, torch.Size):  # shared tuples: once
            self.seen[id(obj)] = type(obj)(
                self.restore(v, depth + 1) for v in obj)
        elif type(obj) is set and all(isinstance(v, _PLAIN) for v in obj):
            return obj
        else:
            raise Refused(f'an object of class {type(obj).__name__}')
        return self.seen[id(obj)]


#: Run by mmengine in place of a checkpoint's own config: the code is ours.
REFUSED_CONFIG = (
    'raise ValueError("The config stored in this checkpoint is not used: '
    'mmengine would run it as Python code, which a file can fill with '
    'anything. Give the config file: MMSegInferencer(model=CONFIG, '
    'weights=CHECKPOINT).")\n')


def neutralise_config_strings(checkpoint) -> None:
    """Make the config strings mmengine runs as code harmless, in place:
    ``meta['cfg']`` and ``message_hub['runtime_info']['cfg']`` become
    :data:`REFUSED_CONFIG`; ``meta['config']`` (``Runner.resume`` compares
    the GPU count) keeps only a parsed ``gpu_ids = [ints]``."""
    if not isinstance(checkpoint, dict):
        return
    meta = checkpoint.get('meta')
    hub = checkpoint.get('message_hub')
    for owner in (meta,
                  hub.get('runtime_info') if isinstance(hub, dict) else None):
        if isinstance(owner, dict) and 'cfg' in owner:
            owner['cfg'] = REFUSED_CONFIG
    if isinstance(meta, dict) and 'config' in meta:
        gpu_ids = _gpu_ids(meta.pop('config'))
        if gpu_ids is not None:
            meta['config'] = f'gpu_ids = {gpu_ids!r}\n'


def _gpu_ids(text) -> Optional[list]:
    try:
        tree = ast.parse(text)
    except (TypeError, ValueError, SyntaxError, RecursionError, MemoryError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and [
                getattr(t, 'id', None) for t in node.targets
        ] == ['gpu_ids'] and isinstance(node.value, (ast.List, ast.Tuple)):
            ids = [getattr(e, 'value', None) for e in node.value.elts]
            if all(type(i) is int for i in ids):
                return ids
    return None


def _kind(data: bytes) -> str:
    """What a file that is not a torch zip file is."""
    for magic, kind in _KINDS:
        if data.startswith(magic):
            return kind
    try:
        text = data[:4096].decode('utf-8')
    except UnicodeDecodeError:
        return 'unrecognised binary data'
    if all(c.isprintable() or c in '\n\r\t' for c in text):
        first = text.strip().splitlines()[0][:40] if text.strip() else ''
        return f'a text file (it starts with {first!r})'
    return 'unrecognised binary data'
