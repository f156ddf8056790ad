# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Merging a checkpoint's architecture into a model config, on hand-made
config and architecture dicts (no checkpoint file, no model)."""
import pytest
import torch

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights.checkpoint_loader import (_groupvit_models,
                                                      checkpoint_arch,
                                                      merge_arch)


def segmentor_cfg(image=None, text=None):
    return dict(
        type='GroupViTEncoderDecoder',
        image_encoder=dict(type='GroupViT', **(image or {})),
        text_encoder=dict(type='GroupViTTextEncoder', **(text or {})))


ARCH = dict(
    image_encoder=dict(hidden_size=64, num_attention_heads=4),
    text_encoder=dict(hidden_size=32, num_hidden_layers=2))


def test_missing_fields_are_filled_and_listed():
    cfg = segmentor_cfg(image=dict(hidden_size=64))
    applied = merge_arch(cfg, ARCH)
    assert cfg['image_encoder'] == dict(
        type='GroupViT', hidden_size=64, num_attention_heads=4)
    assert cfg['text_encoder'] == dict(
        type='GroupViTTextEncoder', hidden_size=32, num_hidden_layers=2)
    # Only what was missing is reported as applied.
    assert applied == [
        'image_encoder.num_attention_heads', 'text_encoder.hidden_size',
        'text_encoder.num_hidden_layers'
    ]


def test_contradictions_name_each_field_and_both_values():
    cfg = segmentor_cfg(
        image=dict(hidden_size=384), text=dict(num_hidden_layers=12))
    with pytest.raises(CheckpointError) as error:
        merge_arch(cfg, ARCH, source='ckpt.pth')
    message = str(error.value)
    assert 'contradicts the architecture recorded in ckpt.pth' in message
    assert 'image_encoder.hidden_size: config says 384, checkpoint says 64' \
        in message
    assert 'text_encoder.num_hidden_layers: config says 12, checkpoint ' \
           'says 2' in message
    assert 'Remove these fields from the config' in message
    # Nothing is changed when the merge is refused.
    assert cfg['image_encoder'] == dict(type='GroupViT', hidden_size=384)


def test_config_decides_a_field_the_checkpoint_does_not_record():
    arch = {part: dict(values) for part, values in ARCH.items()}
    del arch['image_encoder']['num_attention_heads']
    cfg = segmentor_cfg(image=dict(num_attention_heads=8))
    assert merge_arch(cfg, arch) == [
        'image_encoder.hidden_size', 'text_encoder.hidden_size',
        'text_encoder.num_hidden_layers'
    ]
    assert cfg['image_encoder']['num_attention_heads'] == 8
    # A recorded head count the config contradicts is refused, naming
    # both: no tensor shape would tell them apart.
    cfg = segmentor_cfg(image=dict(num_attention_heads=8))
    with pytest.raises(CheckpointError) as error:
        merge_arch(cfg, ARCH, source='ckpt.pth')
    assert 'image_encoder.num_attention_heads: config says 8, checkpoint ' \
        'says 4' in str(error.value)


def test_segmentors_are_found_inside_a_test_time_wrapper():
    inner = segmentor_cfg()
    wrapper = dict(type='SegTTAModel', module=inner)
    assert _groupvit_models(wrapper) == [inner]
    assert _groupvit_models(inner) == [inner]
    assert _groupvit_models(dict(type='EncoderDecoder', backbone={})) == []
    assert _groupvit_models(None) == []


def test_checkpoint_arch_is_the_recorded_one_less_what_was_assumed():
    # Older converters recorded an assumed head count and listed it.
    checkpoint = dict(
        meta=dict(
            groupvit_arch=ARCH,
            groupvit_arch_assumed=['image_encoder.num_attention_heads']),
        state_dict={})
    assert checkpoint_arch(checkpoint) == dict(
        image_encoder=dict(hidden_size=64), text_encoder=ARCH['text_encoder'])


def test_checkpoint_arch_of_another_model_is_none():
    other = dict(state_dict={'backbone.conv.weight': torch.zeros(1)})
    assert checkpoint_arch(other) is None
    assert checkpoint_arch({}) is None
