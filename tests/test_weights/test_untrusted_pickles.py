# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""No checkpoint runs code: crafted files through every loader and tool.

Each hostile file is first shown to be live: fully unpickled, it creates the
marker file. Then every way the package reads a checkpoint must refuse it
with one message naming the file and what it holds, and the marker must not
exist afterwards. The tools are run as a user runs them, in a subprocess
whose Python path lets the attacker's module be imported.
"""
import io
import os
import os.path as osp
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights import load_source_checkpoint
from mmseg_groupvit.weights.safe_load import SAFE_GLOBALS
from tests.conftest import REPO, VOC_SAMPLE, build_small_segmentor
from tests.test_weights.hostile_checkpoints import (Call,
                                                    write_hostile_checkpoints)

ROUTES = ('reduce_os_system', 'reduce_exec', 'build_setstate', 'getattr_chain',
          'nested_containers')


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('hostile'))
    init_default_scope('mmseg')
    state_dict = build_small_segmentor().state_dict()
    return write_hostile_checkpoints(folder, state_dict)


def _refused(path, marker, load):
    with pytest.raises(CheckpointError) as info:
        load(path)
    assert not osp.exists(marker)
    message = str(info.value)
    assert path in message and 'refused' in message
    assert '--trust-pickle' in message and 'weights_only' not in message
    return message


@pytest.mark.parametrize('route', ROUTES)
def test_payload_is_live_when_unpickled_fully(hostile, route):
    """The payloads really run code: the refusals below are not vacuous."""
    paths, marker = hostile
    sys.path.insert(0, osp.dirname(marker))
    try:
        torch.load(paths[route], weights_only=False)
    finally:
        sys.path.remove(osp.dirname(marker))
    assert osp.exists(marker)
    os.remove(marker)


@pytest.mark.parametrize('route', ROUTES)
def test_every_route_is_refused_by_both_loaders(hostile, route):
    paths, marker = hostile
    path = paths[route]
    message = _refused(path, marker, CheckpointLoader.load_checkpoint)
    _refused(path, marker, load_source_checkpoint)
    expected = {
        'reduce_os_system': 'posix.system',
        'reduce_exec': 'function exec,',
        'build_setstate': 'hostile_options.Options',
        'getattr_chain': "'__init__' of HistoryBuffer",
        'nested_containers': 'function exec,',
    }[route]
    assert expected in message
    # Nothing of ours was added to torch's process-wide allow-list.
    allowed = torch.serialization.get_safe_globals()
    assert getattr not in allowed and HistoryBuffer not in allowed
    assert not any(
        entry in allowed or (isinstance(entry, tuple) and entry[0] in allowed)
        for entry in SAFE_GLOBALS)


def test_trust_pickle_is_for_one_named_file(hostile, tmp_path):
    """The converter's --trust-pickle unpickles the file it is given (and
    runs what it holds, as documented); other files stay refused."""
    paths, marker = hostile
    from mmseg_groupvit.weights import trust_checkpoint
    trust_checkpoint(paths['reduce_exec'])
    CheckpointLoader.load_checkpoint(paths['reduce_exec'])
    assert osp.exists(marker)
    os.remove(marker)
    _refused(paths['nested_containers'], marker,
             CheckpointLoader.load_checkpoint)


def _training_checkpoint(meta=None):
    hub = MessageHub('hostile_test')  # a fresh hub, not the shared instance
    for value in (1.5, 2.5, np.float32(3.0)):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 3)
    return dict(
        meta=meta or {},
        message_hub=hub.state_dict(),
        state_dict={'w': torch.ones(2)})


def test_training_state_is_read_back(tmp_path):
    """mmengine's message hub (HistoryBuffer, numpy arrays, scalars and
    dtypes in both byte orders) survives the safe loader."""
    path = str(tmp_path / 'iter_3.pth')
    torch.save(
        _training_checkpoint(
            dict(
                seed=np.int64(7),
                big_endian=np.arange(6, dtype='>f4').reshape(2, 3),
                fortran=np.asfortranarray(np.arange(6).reshape(2, 3)))), path)
    loaded = CheckpointLoader.load_checkpoint(path)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() == pytest.approx(7 / 3)
    assert buffer.statistics('max') == 3.0
    assert loaded['meta']['seed'] == 7
    assert type(loaded['meta']['seed']) is np.int64
    np.testing.assert_array_equal(loaded['meta']['big_endian'],
                                  np.arange(6).reshape(2, 3))
    assert loaded['meta']['big_endian'].dtype == np.dtype('>f4')
    np.testing.assert_array_equal(loaded['meta']['fortran'],
                                  np.arange(6).reshape(2, 3))


def _dtype_with_flags(flags):
    """A float64 dtype whose pickled flags claim it holds objects, so that
    numpy would read the array's bytes as object pointers."""

    class Forged:

        def __reduce__(self):
            return np.dtype, ('f8', False, True), (3, '<', None, None, None,
                                                   -1, -1, flags)

    return Forged()


def test_forged_numpy_dtype_flags_give_plain_numbers(tmp_path):
    """The pickled flags of a dtype are not trusted: the array is built
    from its bytes as plain float64."""
    values = np.array([1.0, 2.0, 3.0])

    class ForgedArray:

        def __reduce__(self):
            return (np.core.multiarray._reconstruct, (np.ndarray, (0, ), b'b'),
                    (1, (3, ), _dtype_with_flags(63), False, values.tobytes()))

    path = str(tmp_path / 'forged.pth')
    torch.save(_training_checkpoint(dict(array=ForgedArray())), path)
    array = CheckpointLoader.load_checkpoint(path)['meta']['array']
    assert not array.dtype.hasobject
    np.testing.assert_array_equal(array, values)


@pytest.mark.parametrize(
    'value, refused',
    [(np.array([1, 'a'], dtype=object), 'numpy.dtype'),
     (Call(getattr, np.ndarray, 'tofile'), "'tofile' of"),
     (Call(getattr, HistoryBuffer, 'update'), "'update' of HistoryBuffer")])
def test_objects_and_other_lookups_are_refused(tmp_path, value, refused):
    path = str(tmp_path / 'other.pth')
    torch.save(_training_checkpoint(dict(value=value)), path)
    with pytest.raises(CheckpointError, match=refused):
        CheckpointLoader.load_checkpoint(path)


def test_file_types_are_named(tmp_path):
    """A file that is not a checkpoint is named for what it is, not called
    'pickled Python objects'."""
    photo = osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg')
    cases = {
        photo: 'a JPEG image',
        osp.join(REPO, 'configs', 'groupvit_voc.py'): 'a text file',
    }
    noise = tmp_path / 'noise.pth'
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    cases[str(noise)] = 'unrecognised binary data'
    buffer = io.BytesIO()
    torch.save({'w': torch.zeros(100)}, buffer)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(buffer.getvalue()[:300])
    cases[str(truncated)] = 'truncated or corrupt'
    for path, expected in cases.items():
        with pytest.raises(CheckpointError, match=expected) as info:
            CheckpointLoader.load_checkpoint(path)
        assert 'refused' not in str(info.value)
        assert 'weights_only' not in str(info.value)


# Through the tools, as a user runs them. Each entry point gets another
# route, so that every route meets a command line once.
def _run(args, marker, env_dir):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, env_dir]))
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600)
    assert not osp.exists(marker), proc.stderr[-2000:]
    return proc


def _one_error_line(proc, path, name):
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    errors = [
        line for line in proc.stderr.splitlines() if line.startswith('error:')
    ]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert path in errors[0] and name in errors[0]
    assert 'weights_only' not in proc.stderr


VOC_OPTIONS = [
    '--cfg-options', f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
]


def test_tools_test_refuses(hostile, tmp_path):
    paths, marker = hostile
    proc = _run([
        'tools/test.py', 'configs/groupvit_voc.py', paths['getattr_chain'],
        '--work-dir',
        str(tmp_path / 'work')
    ] + VOC_OPTIONS, marker, osp.dirname(marker))
    _one_error_line(proc, paths['getattr_chain'], 'builtins.getattr')


@pytest.mark.slow
def test_demo_and_converter_refuse(hostile, tmp_path):
    paths, marker = hostile
    photo = osp.join('samples', 'images', 'groupvit_demo_voc.jpg')
    proc = _run([
        'tools/demo.py', photo, '--checkpoint', paths['build_setstate'],
        '--out',
        str(tmp_path / 'demo')
    ], marker, osp.dirname(marker))
    _one_error_line(proc, paths['build_setstate'], 'hostile_options.Options')
    proc = _run([
        'tools/convert_weights.py', paths['reduce_os_system'],
        str(tmp_path / 'out.pth')
    ], marker, osp.dirname(marker))
    _one_error_line(proc, paths['reduce_os_system'], 'posix.system')
    assert not osp.exists(tmp_path / 'out.pth')


def test_mmseg_apis_refuse(hostile):
    """``init_model`` and ``MMSegInferencer`` load through mmengine's
    CheckpointLoader, which the package makes safe."""
    paths, marker = hostile
    code = (f'import sys\n'
            f'from mmseg.apis import MMSegInferencer, init_model\n'
            f'from groupvit_common.errors import CheckpointError\n'
            f'for load in (init_model, MMSegInferencer):\n'
            f'    try:\n'
            f'        load("configs/groupvit_voc.py", '
            f'{paths["nested_containers"]!r})\n'
            f'    except CheckpointError as e:\n'
            f'        print("refused:", e)\n'
            f'    else:\n'
            f'        sys.exit("loaded")\n')
    proc = _run(['-c', code], marker, osp.dirname(marker))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('holds the class or function exec,') == 2


@pytest.mark.slow
def test_training_entry_points_refuse(hostile, tmp_path):
    """tools/train.py: a backbone's init_cfg, load_from and --resume."""
    from tests.test_finetune import _train_config
    paths, marker = hostile
    path = paths['reduce_exec']
    config = _train_config(tmp_path, path, iters=2)
    work_dir = tmp_path / 'work'
    proc = _run(['tools/train.py', config, '--work-dir',
                 str(work_dir)], marker, osp.dirname(marker))
    _one_error_line(proc, path, 'function exec,')
    # No init_cfg, the hostile file as load_from.
    proc = _run([
        'tools/train.py', config, '--work-dir',
        str(work_dir), '--cfg-options', 'model.backbone.init_cfg=None',
        f'load_from={path}'
    ], marker, osp.dirname(marker))
    _one_error_line(proc, path, 'function exec,')
    # --resume finds the hostile file as the last checkpoint.
    (work_dir / 'last_checkpoint').write_text(path)
    proc = _run([
        'tools/train.py', config, '--work-dir',
        str(work_dir), '--resume', '--cfg-options',
        'model.backbone.init_cfg=None'
    ], marker, osp.dirname(marker))
    _one_error_line(proc, path, 'function exec,')


def test_shapes_of_objects_that_break_the_restoring_are_refused(tmp_path):
    """Cycles, deep nesting and numpy stand-ins whose state never comes
    give a CheckpointError (one line from the tools), not a traceback."""
    cyclic = []
    cyclic.append(cyclic)
    path = str(tmp_path / 'cyclic.pth')
    torch.save(_training_checkpoint(dict(value=cyclic)), path)
    value = CheckpointLoader.load_checkpoint(path)['meta']['value']
    assert value[0] is value  # a cycle is data, restored once

    deep = []
    for _ in range(5000):
        deep = [deep]
    path = str(tmp_path / 'deep.pth')
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50000)
    try:
        torch.save(_training_checkpoint(dict(value=deep)), path)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(CheckpointError, match='nest too deeply'):
        CheckpointLoader.load_checkpoint(path)

    class Dtype:
        """Pickles as NEWOBJ numpy.dtype with no BUILD: the stand-in's
        __init__ and __setstate__ never run."""

    path = str(tmp_path / 'newobj.pth')
    with mock.patch.object(np, 'dtype', Dtype):
        Dtype.__module__, Dtype.__qualname__ = 'numpy', 'dtype'
        torch.save(dict(state_dict={}, meta=dict(value=Dtype())), path)
    with pytest.raises(CheckpointError, match='numpy.dtype stand-in without'):
        CheckpointLoader.load_checkpoint(path)


def test_trust_is_for_the_contents_that_were_trusted(hostile, tmp_path):
    """A trusted file replaced afterwards (by a hostile one) is refused."""
    from mmseg_groupvit.weights import trust_checkpoint
    paths, marker = hostile
    path = tmp_path / 'trusted.pth'
    torch.save(_training_checkpoint(), path)
    trust_checkpoint(str(path))
    CheckpointLoader.load_checkpoint(str(path))
    path.write_bytes(open(paths['reduce_exec'], 'rb').read())
    with pytest.raises(CheckpointError, match='changed after it was trusted'):
        CheckpointLoader.load_checkpoint(str(path))
    assert not osp.exists(marker)


@pytest.mark.parametrize('field, value, message', [
    ('num_attention_heads', 0, 'must be a positive integer'),
    ('assign_eps', -1.0, 'assign_eps=-1.0 cannot work'),
    ('layer_norm_eps', 1e300, 'must be a small positive number'),
    ('foo', 1, "unknown architecture field\\(s\\) \\['foo'\\]"),
])
def test_architecture_in_a_checkpoints_meta_is_checked(tmp_path, field, value,
                                                       message):
    """The meta of a converted checkpoint is as untrusted as its tensors:
    fields no model can be built with are refused before building one."""
    from mmengine.config import Config

    from mmseg_groupvit.weights import resolve_load_from
    from mmseg_groupvit.weights.arch import released_arch
    arch = released_arch()
    arch['image_encoder'][field] = value
    path = str(tmp_path / 'meta.pth')
    torch.save(dict(state_dict={}, meta=dict(groupvit_arch=arch)), path)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'groupvit_voc.py'))
    with pytest.raises(CheckpointError, match=message):
        resolve_load_from(cfg, path)
