# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Weights that cannot give a trustworthy result (NaN, Inf, integer tensors
where the model has floats, non-tensors) are refused at conversion and at
load, with the tensors named."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE,
                            build_small_segmentor, varied_segmentor)

# One tensor of each part: image encoder, text encoder, both projectors and
# the temperature.
DAMAGED = ('image_encoder.stages.0.blocks.0.attn.qkv.weight',
           'text_encoder.blocks.1.mlp.fc2.bias',
           'image_encoder.projector.linear2.weight',
           'text_encoder.projector.bn.running_var', 'decode_head.logit_scale')


@pytest.fixture(scope='module')
def small_state():
    init_default_scope('mmseg')
    return build_small_segmentor().state_dict()


def save(path, state, meta=None):
    torch.save(dict(state_dict=state, meta=meta or {}), path)
    return str(path)


@pytest.mark.parametrize(
    'key,value', zip(DAMAGED,
                     [float('nan'), float('inf'), -float('inf')] * 2))
def test_nonfinite_weight_refused_at_load(tmp_path, small_state, key, value):
    state = {k: v.clone() for k, v in small_state.items()}
    state[key].view(-1)[0] = value
    model = build_small_segmentor(seed=1)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, save(tmp_path / 'nan.pth', state))
    assert f'1 tensor(s) hold NaN or Inf: [{key!r}]' in str(info.value)
    # Nothing was loaded: the model keeps its own weights.
    assert torch.isfinite(model.state_dict()[key]).all()


def test_nonfinite_weights_listed_with_count(tmp_path, small_state):
    state = {k: v.clone() for k, v in small_state.items()}
    floats = sorted(k for k, v in state.items() if v.is_floating_point())
    for key in floats[:7]:
        state[key].view(-1)[-1] = float('nan')
    model = build_small_segmentor()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, save(tmp_path / 'nan.pth', state))
    message = str(info.value)
    assert '7 tensor(s) hold NaN or Inf' in message
    assert all(repr(k) in message for k in floats[:5])
    assert repr(floats[5]) not in message and '...' in message


def test_nonfinite_weight_refused_by_backbone_init(tmp_path, small_state):
    # The image encoder alone, through mmengine's Pretrained init.
    state = {k: v.clone() for k, v in small_state.items()}
    state['image_encoder.pos_embed'][0, 3, 1] = float('inf')
    path = save(tmp_path / 'inf.pth', state)
    with pytest.raises(CheckpointError, match=r"NaN or Inf: \['pos_embed'\]"):
        build_small_segmentor(
            image_encoder=dict(
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=path,
                    prefix='image_encoder.')))


def test_integer_tensor_refused_at_load(tmp_path, small_state):
    state = dict(small_state)
    key = 'text_encoder.final_norm.weight'
    state[key] = torch.ones_like(state[key], dtype=torch.int32)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_small_segmentor(),
                        save(tmp_path / 'int.pth', state))
    assert f'{key} (torch.int32, the model has torch.float32)' in str(
        info.value)


def test_half_precision_weights_load(tmp_path, small_state):
    # A floating-point dtype other than the model's is a cast, not an error.
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in small_state.items()
    }
    model = build_small_segmentor(seed=1)
    load_checkpoint(model, save(tmp_path / 'half.pth', state))
    assert torch.equal(model.state_dict()['image_encoder.pos_embed'],
                       state['image_encoder.pos_embed'].float())


def converted_like(small_state):
    """A checkpoint in this package's layout with its architecture in meta,
    as the converter writes it, to be read back as a source."""
    return dict(
        state_dict={
            k: v.clone()
            for k, v in small_state.items()
        },
        meta=dict(groupvit_arch=SMALL_ARCH))


@pytest.mark.parametrize('key', DAMAGED)
def test_nonfinite_weight_refused_at_conversion(tmp_path, small_state, key):
    ckpt = converted_like(small_state)
    ckpt['state_dict'][key].view(-1)[0] = float('nan')
    src = tmp_path / 'src.pth'
    torch.save(ckpt, src)
    with pytest.raises(
            CheckpointError,
            match=rf"1 tensor\(s\) hold NaN or Inf: \['{key}'\]"):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def test_integer_tensor_refused_at_conversion(tmp_path, small_state):
    ckpt = converted_like(small_state)
    key = 'image_encoder.stages.1.group_token'
    ckpt['state_dict'][key] = ckpt['state_dict'][key].long()
    torch.save(ckpt, tmp_path / 'src.pth')
    with pytest.raises(
            CheckpointError,
            match=f'{key} \\(torch.int64, the model has '
            f'torch.float32\\)'):
        convert_checkpoint(
            str(tmp_path / 'src.pth'), str(tmp_path / 'out.pth'))


@pytest.mark.slow
def test_cli_gives_one_error_line(tmp_path, small_state):
    """tools/convert_weights.py and tools/test.py on a checkpoint with NaN:
    one ``error:`` line each, exit status 1, no traceback."""
    ckpt = converted_like(small_state)
    ckpt['state_dict']['decode_head.logit_scale'].fill_(float('nan'))
    src = tmp_path / 'nan.pth'
    torch.save(ckpt, src)
    config = tmp_path / 'small.py'
    config.write_text(
        f"_base_ = [{osp.join(REPO, 'configs', 'groupvit_voc.py')!r}]\n"
        f"model = dict(image_encoder={SMALL_ARCH['image_encoder']!r}, "
        f"text_encoder={SMALL_ARCH['text_encoder']!r})\n")
    commands = [
        [
            osp.join(REPO, 'tools', 'convert_weights.py'),
            str(src),
            str(tmp_path / 'out.pth')
        ],
        [
            osp.join(REPO, 'tools', 'test.py'),
            str(config),
            str(src), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
        ],
    ]
    for command in commands:
        proc = subprocess.run([sys.executable, *command],
                              cwd=REPO,
                              capture_output=True,
                              text=True)
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith('error:')]
        assert len(errors) == 1, proc.stderr[-2000:]
        assert "NaN or Inf: ['decode_head.logit_scale']" in errors[0]
        assert 'Traceback' not in proc.stderr


def test_values_that_become_non_finite_in_the_model_are_refused(
        tmp_path, small_state):
    """Finite in the file, not in the model: a float64 1e300 is Inf as
    float32, and a negative BatchNorm variance gives NaN scores."""
    key = 'image_encoder.stages.0.blocks.0.attn.qkv.weight'
    state = {k: v.clone() for k, v in small_state.items()}
    state[key] = state[key].double()
    state[key].view(-1)[0] = 1e300
    with pytest.raises(CheckpointError, match=f"hold NaN or Inf: .*{key}"):
        load_checkpoint(build_small_segmentor(), save(tmp_path / 'a', state))
    variance = 'image_encoder.projector.bn.running_var'
    state = {k: v.clone() for k, v in small_state.items()}
    state[variance].view(-1)[0] = -0.5
    with pytest.raises(
            CheckpointError, match=f'negative values: .*{variance}'):
        load_checkpoint(build_small_segmentor(), save(tmp_path / 'b', state))


def test_scores_that_overflow_are_an_error_not_one_label():
    """Finite weights can still overflow in the forward pass (all 3e38 in
    one layer): the head refuses NaN or Inf scores, where an argmax would
    label every pixel alike."""
    model = varied_segmentor()
    image = torch.rand(
        1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    metas = [dict(img_shape=(64, 64), ori_shape=(64, 64))]
    with torch.no_grad():
        assert torch.isfinite(model.encode_decode(image, metas)).all()
        model.image_encoder.stages[0].blocks[0].attn.qkv.weight.fill_(3e38)
        with pytest.raises(CheckpointError, match='NaN or Inf group-class'):
            model.encode_decode(image, metas)
