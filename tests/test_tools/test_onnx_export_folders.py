# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/deployment/onnx_segment.py on export folders from anyone: each
edited, damaged or crafted folder is one ``error:`` line naming what is
wrong, never a traceback, and never used silently."""
import gzip
import json
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest

from groupvit_common import export_format, files
from tests.conftest import PHOTOS, load_script

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

TOOL = 'tools/deployment/onnx_segment.py'
PHOTO = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')
BPE = 'bpe_simple_vocab_16e6.txt.gz'


@pytest.fixture
def export(voc_onnx_export):
    return voc_onnx_export['dir']


def edit(export, tmp_path, resign=True, **changes):
    """A copy of ``export`` with ``changes`` (``protocol`` keys, or whole
    files by name as bytes); with ``resign`` its digests are computed again,
    as whoever crafts a folder can."""
    folder = tmp_path / 'export'
    shutil.copytree(export, folder)
    with open(folder / 'deploy.json') as f:
        meta = json.load(f)
    for key, value in changes.items():
        if isinstance(value, bytes):
            (folder / key).write_bytes(value)
        else:
            meta['protocol'][key] = value
    if resign:
        data = {}
        for name in ('image.onnx', 'text.onnx', BPE):
            data[name] = (folder / name).read_bytes()
        meta['sha256'] = export_format.digests(meta['protocol'], data)
    with open(folder / 'deploy.json', 'w') as f:
        json.dump(meta, f)
    return folder


def run_tool(folder, tmp_path, *options):
    tool = load_script(TOOL, '_groupvit_onnx_segment_folders')
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(folder), PHOTO, '--out', str(out), *options])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    assert not out.exists()
    return message


@pytest.mark.parametrize('key,value', [('mean', [0, 0, 0]), ('std', [1, 1, 1]),
                                       ('bg_thresh', 0)])
def test_an_edited_protocol_is_refused(key, value, export, tmp_path):
    """Each of these changes a third or more of the labels; the protocol's
    digest no longer matches."""
    folder = edit(export, tmp_path, resign=False, **{key: value})
    message = run_tool(folder, tmp_path)
    assert 'protocol differ from what was exported' in message
    assert message.endswith('export again with '
                            'tools/deployment/pytorch2onnx.py.')


@pytest.mark.parametrize('name', ['image.onnx', 'text.onnx', BPE])
def test_an_edited_file_is_refused(name, export, tmp_path):
    data = bytearray(open(osp.join(export, name), 'rb').read())
    data[len(data) // 2] ^= 1
    folder = edit(export, tmp_path, resign=False, **{name: bytes(data)})
    assert f': {name} differ from what was exported' in run_tool(
        folder, tmp_path)


def test_an_export_of_the_earlier_version_is_refused(export, tmp_path):
    folder = edit(export, tmp_path)
    meta = json.loads((folder / 'deploy.json').read_text())
    meta['format'] = 'mmseg-groupvit onnx 1'
    del meta['sha256']
    (folder / 'deploy.json').write_text(json.dumps(meta))
    message = run_tool(folder, tmp_path)
    assert 'an export of an earlier version' in message
    assert 'export again' in message


def _graph_with(export, change):
    model = onnx.load(osp.join(export, 'image.onnx'))
    change(model)
    return model.SerializeToString()


def _custom_op(model):
    node = model.graph.node[0]
    node.domain = 'com.attacker'
    model.opset_import.add(domain='com.attacker', version=1)


def _external_data(model):
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    tensor.ClearField('raw_data')
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (('location', '../../../../etc/passwd'), ('offset', '0'),
                       ('length', '64')):
        tensor.external_data.add(key=key, value=value)


@pytest.mark.parametrize('case,says', [
    ('template_field', 'protocol.templates'),
    ('template_attribute', 'protocol.templates'),
    ('huge_scale', 'protocol.resize.scale [100000, 100000] would resize'),
    ('garbage_graph', 'onnxruntime cannot load'),
    ('custom_op', 'onnxruntime cannot load'),
    ('external_data', 'onnxruntime cannot load'),
    ('swapped_graphs', "takes ['tokens'] and gives ['text_features']"),
    ('with_bg', 'protocol.with_bg is False but the image graph takes'),
    ('bpe_bomb', 'expands to more than'),
    ('bpe_pickle', 'is a gzipped pickle'),
])
def test_a_crafted_folder_is_one_error_line(case, says, export, tmp_path):
    """Folders whose digests were computed again by whoever crafted them:
    the checks behind the digest still hold."""
    changes = dict(
        template_field=dict(templates=['a {x} of a {}.']),
        template_attribute=dict(templates=['{}{.__class__}']),
        huge_scale=dict(resize=dict(scale=[100000, 100000], keep_ratio=True)),
        garbage_graph={'image.onnx': os.urandom(4096)},
        custom_op={'image.onnx': _graph_with(export, _custom_op)},
        external_data={'image.onnx': _graph_with(export, _external_data)},
        with_bg=dict(with_bg=False),
        swapped_graphs={
            'image.onnx': open(osp.join(export, 'text.onnx'), 'rb').read()
        },
        bpe_bomb={BPE: gzip.compress(b'\0' * (64 << 20))},
        bpe_pickle={BPE: gzip.compress(pickle.dumps({'merges': []}))},
    )[case]
    assert says in run_tool(edit(export, tmp_path, **changes), tmp_path)


@pytest.mark.parametrize('case,says', [
    ('nested', 'nests deeper than'),
    ('not_object', 'is not a JSON object'),
    ('symlink', 'is a symbolic link'),
    ('outside', 'not a file of the export folder'),
])
def test_a_broken_folder_is_one_error_line(case, says, export, tmp_path):
    folder = edit(export, tmp_path)
    meta_path = folder / 'deploy.json'
    if case == 'nested':
        meta_path.write_text('[' * 100000 + ']' * 100000)
    elif case == 'not_object':
        meta_path.write_text('[1, 2]')
    elif case == 'symlink':
        target = tmp_path / 'elsewhere.onnx'
        shutil.move(str(folder / 'image.onnx'), str(target))
        os.symlink(target, folder / 'image.onnx')
    else:
        meta = json.loads(meta_path.read_text())
        meta['image_graph']['file'] = '../image.onnx'
        meta_path.write_text(json.dumps(meta))
    assert says in run_tool(folder, tmp_path)


def test_threads_beyond_the_cores_are_capped(export, tmp_path, capsys):
    """--threads 100000 took 16 GB of thread stacks: at most the cores."""
    tool = load_script(TOOL, '_groupvit_onnx_segment_folders')
    tool.main(
        [export, PHOTO, '--out',
         str(tmp_path / 'o'), '--threads', '100000'])
    cores = os.cpu_count()
    assert (f'warning: --threads 100000 is more than the {cores} cores of '
            f'this machine; using {cores}.') in capsys.readouterr().out


def test_the_bpe_file_is_read_once(export, monkeypatch):
    """The tokenizer uses the bytes whose digest was checked: a second read
    could see a file swapped in between."""
    from groupvit_ort import OnnxSegmenter
    read_bytes, reads = files.read_bytes, []

    def counted(path, *args, **kwargs):
        reads.append(osp.basename(path))
        return read_bytes(path, *args, **kwargs)

    monkeypatch.setattr(files, 'read_bytes', counted)
    OnnxSegmenter(export)
    assert reads.count(BPE) == 1, reads


def test_a_protocol_that_is_no_mapping_is_one_error_line(export, tmp_path):
    folder = edit(export, tmp_path)
    meta = json.loads((folder / 'deploy.json').read_text())
    meta['protocol'] = ['crop_size', 448]
    data = {n: (folder / n).read_bytes() for n in ('image.onnx', 'text.onnx')}
    data[BPE] = (folder / BPE).read_bytes()
    meta['sha256'] = export_format.digests(meta['protocol'], data)
    (folder / 'deploy.json').write_text(json.dumps(meta))
    assert '"protocol" must be a mapping' in run_tool(folder, tmp_path)


def test_a_crafted_context_length_takes_no_memory(export, tmp_path):
    """A context of 10**12 tokens in a crafted protocol: the prompts are
    padded to the longest one, not to the context (10**12 ids each ran out
    of memory), so the class embeddings are the export's own; a prompt
    longer than the graph's position table would fail in onnxruntime."""
    from groupvit_ort import OnnxSegmenter
    honest = OnnxSegmenter(export)
    crafted = OnnxSegmenter(edit(export, tmp_path, context_length=10**12))
    classes = [['cat'], ['potted plant', 'flower pot']]
    expected, _ = honest.class_embeddings(classes)
    found, _ = crafted.class_embeddings(classes)
    assert np.array_equal(found, expected)
