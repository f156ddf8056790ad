# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Architecture values read from a checkpoint (an NVlabs config, a
converted checkpoint's meta, tensor shapes) are checked before any
arithmetic, copy, comparison or message uses them: a crafted value is one
short error line, not a huge allocation, a slow repr or a traceback."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from groupvit_common.errors import CheckpointError, shown
from mmseg_groupvit.weights import resolve_load_from
from mmseg_groupvit.weights.arch import arch_diff, check_arch, infer_arch
from tests.conftest import REPO
from tests.test_weights.conftest import convert_error


def shared_lists(levels: int) -> list:
    """A list of two references to a list of two ... (2**levels leaves)."""
    value = [0]
    for _ in range(levels):
        value = [value, value]
    return value


def test_shown_is_short_for_shared_nested_lists():
    assert len(shown(shared_lists(64))) < 100
    assert shown(['foo', 1.5]) == "['foo', 1.5]"
    assert shown(10**5000) == "<16610-bit int>"


def test_arch_diff_shows_a_shared_nested_value_briefly():
    lines = arch_diff(
        dict(image_encoder=dict(depths=[1])),
        dict(image_encoder=dict(depths=shared_lists(64))))
    assert len(lines) == 1 and len(lines[0]) < 100


@pytest.mark.parametrize('img_encoder, words', [
    (dict(embed_dim=[0], mlp_ratio=2**28), 'embed_dim=[0]'),
    (dict(embed_dim='a', mlp_ratio=2**45), "embed_dim='a'"),
    (dict(embed_dim=1e308, mlp_ratio=10.0), 'embed_dim=1e+308'),
    (dict(num_heads=[shared_lists(16), 1]), 'num_heads=[[[...'),
    (dict(depths=torch.zeros(3, dtype=torch.long)), 'depths is a Tensor'),
    (dict(depths=shared_lists(16)), 'depths=[[[...'),
])
def test_nvlabs_config_values_are_checked_first(tmp_path, img_encoder, words):
    src = tmp_path / 'nvlabs.pth'
    torch.save(
        dict(
            model={
                'img_encoder.x': torch.zeros(1),
                'text_encoder.y': torch.zeros(1)
            },
            config=dict(model=dict(img_encoder=img_encoder))), src)
    message = convert_error(str(src), str(tmp_path / 'out.pth'))
    assert str(src) in message and words in message


@pytest.mark.parametrize('arch, words', [
    ({
        'image_encoder': {
            1: 2
        }
    }, 'unknown architecture field(s) [1]'),
    ({
        'foo': {
            'a': 1
        }
    }, "'foo' is not an architecture part"),
    ({
        'image_encoder': [1]
    }, 'is not an architecture part'),
    ('abc', 'the architecture is a str'),
    ({
        'image_encoder': {
            'depths': shared_lists(16)
        }
    }, 'depths=[[[...'),
    ({
        'image_encoder': {
            'depths': torch.zeros(3)
        }
    }, 'depths=<Tensor>'),
])
def test_recorded_arch_is_checked_before_use(tmp_path, arch, words):
    src = str(tmp_path / 'meta.pth')
    state = {
        'image_encoder.x': torch.zeros(1),
        'text_encoder.y': torch.ones(1)
    }
    torch.save(dict(state_dict=state, meta=dict(groupvit_arch=arch)), src)
    message = convert_error(src, str(tmp_path / 'out.pth'))
    assert f'meta.groupvit_arch of {src}' in message and words in message
    # tools/test.py reads it before merging it into the config.
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'groupvit_voc.py'))
    with pytest.raises(CheckpointError) as info:
        resolve_load_from(cfg, src)
    assert '\n' not in str(info.value) and words in str(info.value)


def test_zero_width_from_tensor_shapes_is_refused():

    def empty(*shape):
        return torch.empty(shape, device='meta')

    state = {
        'image_encoder.pos_embed': empty(1, 4, 0),
        'image_encoder.patch_embed.proj.weight': empty(1, 1, 1, 1),
        'image_encoder.stages.0.blocks.0.mlp.fc1.weight': empty(1, 1),
        'image_encoder.stages.0.grouping.mlp_inter.fc1.weight': empty(1, 1),
        'image_encoder.stages.0.grouping.mlp_channels.fc1.weight': empty(1, 1),
    }
    with pytest.raises(CheckpointError, match='hidden_size=0 cannot work'):
        check_arch(infer_arch(state), 'x.pth')


def test_transformers_qkv_of_different_widths(tmp_path):
    src = tmp_path / 'model.bin'
    prefix = 'vision_model.encoder.stages.0.layers.0.self_attn.'
    torch.save(
        {
            f'{prefix}{w}_proj.weight': torch.zeros(2, n)
            for w, n in zip('qkv', (3, 4, 3))
        }, src)
    message = convert_error(str(src), str(tmp_path / 'out.pth'))
    assert f'{src}: {prefix}[qkv]_proj.weight have the shapes' in message
