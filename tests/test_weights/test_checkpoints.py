# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Bad checkpoints give one clear error naming the problem and the fix."""
import argparse

import pytest
import torch
from mmengine.runner import load_checkpoint

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights import load_source_checkpoint
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import build_small_segmentor
from tests.test_weights.conftest import convert_error


@pytest.fixture
def small_checkpoint(tmp_path):
    model = build_small_segmentor()
    path = tmp_path / 'small.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_source_checkpoint(str(tmp_path / 'nope.pth'))
    assert 'Checkpoint not found' in convert_error(
        str(tmp_path / 'nope.pth'), str(tmp_path / 'out.pth'))


def test_truncated_checkpoint(tmp_path, small_checkpoint):
    data = small_checkpoint.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 3])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_source_checkpoint(str(truncated))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        load_source_checkpoint(str(empty))


def test_truncated_safetensors(tmp_path):
    folder = tmp_path / 'hf'
    folder.mkdir()
    (folder / 'model.safetensors').write_bytes(b'\x10\x00\x00\x00')
    with pytest.raises(CheckpointError, match='safetensors'):
        load_source_checkpoint(str(folder))


def test_another_models_checkpoint(tmp_path):
    resnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    path = tmp_path / 'resnet.pth'
    torch.save(resnet.state_dict(), path)
    with pytest.raises(CheckpointError, match='not look like a GroupViT'):
        convert_checkpoint(str(path), str(tmp_path / 'out.pth'))
    # Loaded directly into the segmentor (mmengine loads non-strictly).
    model = build_small_segmentor()
    torch.save(dict(state_dict=resnet.state_dict()), path)
    with pytest.raises(CheckpointError, match='not a converted GroupViT'):
        load_checkpoint(model, str(path))


def test_other_architecture_names_the_fields(small_checkpoint):
    model = build_small_segmentor(
        image_encoder=dict(
            depths=[2, 1, 1],
            num_group_tokens=[16, 4, 0],
            num_output_groups=[16, 4]))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, str(small_checkpoint))
    message = str(info.value)
    assert 'image_encoder.depths: expected [2, 1, 1], got [1, 1, 1]' in \
        message
    assert 'image_encoder.num_group_tokens' in message


def test_pickled_objects_are_refused(tmp_path):
    # argparse.Namespace stands for the OmegaConf config of NVlabs files:
    # any class outside torch's allow-list is refused.
    path = tmp_path / 'nvlabs.pth'
    torch.save(dict(model={}, config=argparse.Namespace(lr=1)), path)
    with pytest.raises(
            CheckpointError,
            match='holds the class or function argparse.Namespace.*'
            '--trust-pickle'):
        load_source_checkpoint(str(path))
    layout, _, config = load_source_checkpoint(str(path), trust_pickle=True)
    assert layout == 'nvlabs' and config.lr == 1


def test_matching_checkpoint_loads(small_checkpoint):
    model = build_small_segmentor(seed=1)
    load_checkpoint(model, str(small_checkpoint))
    reference = torch.load(small_checkpoint)['state_dict']
    assert all(
        torch.equal(v, reference[k]) for k, v in model.state_dict().items())
