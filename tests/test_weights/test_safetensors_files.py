# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Malformed safetensors files and transformers configs, written byte by
byte: each gives one CheckpointError naming the file and the problem."""
import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights import read_file
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.test_weights.conftest import convert_error

F32_ZEROS = b'\x00' * 16


def safetensors_bytes(header, data=b''):
    """8-byte little-endian header length, the header, the buffer."""
    if not isinstance(header, bytes):
        header = json.dumps(header).encode()
    return struct.pack('<Q', len(header)) + header + data


def entry(dtype='F32', shape=(2, ), offsets=(0, 8)):
    return dict(dtype=dtype, shape=list(shape), data_offsets=list(offsets))


# name: (file bytes, words the message must contain)
MALFORMED = {
    'header is a JSON list': (safetensors_bytes([1, 2]), 'sequence'),
    'int entry': (safetensors_bytes({'a': 3}), 'integer `3`'),
    'missing dtype':
    (safetensors_bytes({'a': {
        'shape': [2],
        'data_offsets': [0, 8]
    }}, F32_ZEROS[:8]), 'missing field `dtype`'),
    'unknown dtype':
    (safetensors_bytes({'a': entry('X9')},
                       F32_ZEROS[:8]), 'unknown variant `X9`'),
    'negative offset': (safetensors_bytes({'a': entry(offsets=(-8, 0))},
                                          F32_ZEROS[:8]), 'integer `-8`'),
    'reversed offsets':
    (safetensors_bytes({'a': entry(offsets=(8, 0))},
                       F32_ZEROS[:8]), 'invalid offset for tensor `a`'),
    'overlapping offsets': (safetensors_bytes(
        {
            'a': entry(offsets=(0, 8)),
            'b': entry(offsets=(4, 12))
        }, F32_ZEROS[:12]), 'invalid offset for tensor `b`'),
    'shape does not fit the bytes':
    (safetensors_bytes({'a': entry(shape=(3, ))},
                       F32_ZEROS[:8]), 'invalid shape, data type, or offset'),
    'truncated buffer':
    (safetensors_bytes({'a': entry(shape=(4, ), offsets=(0, 16))},
                       F32_ZEROS[:8]), 'not fully covered'),
    'truncated header length': (b'\x10\x00\x00', 'header too small'),
    'header length beyond the file': (struct.pack('<Q', 10**12) + b'{}',
                                      'header too large'),
    'header not UTF-8': (safetensors_bytes(b'\xff\xfe{'), 'invalid UTF-8'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_malformed_file_refused(tmp_path, case):
    data, words = MALFORMED[case]
    path = tmp_path / 'model.safetensors'
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        read_file(str(path))
    message = str(info.value)
    assert str(path) in message and words in message, message
    assert '\n' not in message


def test_well_formed_file_reads(tmp_path):
    # The same writer, well formed: the values come back (a check that the
    # cases above fail for their defect, not for the writer).
    data = struct.pack('<2f', 1.5, -2.0) + struct.pack('<q', 7)
    path = tmp_path / 'model.safetensors'
    path.write_bytes(
        safetensors_bytes(
            {
                '__metadata__': {
                    'format': 'pt'
                },
                'a': entry(),
                'b': entry('I64', (1, ), (8, 16))
            }, data))
    tensors = read_file(str(path))
    assert tensors['a'].tolist() == [1.5, -2.0]
    assert tensors['b'].dtype == torch.int64 and tensors['b'].tolist() == [7]


def test_hf_folder_converts(hf_folder, tmp_path):
    result = convert_checkpoint(str(hf_folder), str(tmp_path / 'ok.pth'))
    assert result['arch']['image_encoder']['num_attention_heads'] == 2


def test_integer_tensor_refused_at_conversion(hf_copy, tmp_path):
    folder = hf_copy
    tensors = load_file(str(folder / 'model.safetensors'))
    key = 'vision_model.embeddings.position_embeddings'
    tensors[key] = tensors[key].to(torch.int16)
    save_file(tensors, str(folder / 'model.safetensors'))
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(folder), str(tmp_path / 'out.pth'))
    assert 'image_encoder.pos_embed (torch.int16, the model has ' \
        'torch.float32)' in str(info.value)


@pytest.mark.parametrize('text', ['[]', '3', '"groupvit"', '{"vision_config'])
def test_config_json_not_an_object(hf_copy, tmp_path, text):
    folder = hf_copy
    (folder / 'config.json').write_text(text)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(folder), str(tmp_path / 'out.pth'))
    assert str(folder / 'config.json') in str(info.value)


def test_cli_gives_one_error_line(hf_copy, tmp_path):
    folder = hf_copy
    data, _ = MALFORMED['overlapping offsets']
    (folder / 'model.safetensors').write_bytes(data)
    assert 'invalid offset for tensor `b`' in convert_error(
        str(folder), str(tmp_path / 'out.pth'))


@pytest.mark.parametrize('section,value', [('vision_config', [1]),
                                           ('text_config', 'x')])
def test_config_section_of_wrong_type(hf_copy, tmp_path, section, value):
    config = json.loads((hf_copy / 'config.json').read_text())
    config[section] = value
    (hf_copy / 'config.json').write_text(json.dumps(config))
    with pytest.raises(
            CheckpointError,
            match=f'"{section}" is a {type(value).__name__}, not an object'):
        convert_checkpoint(str(hf_copy), str(tmp_path / 'out.pth'))
