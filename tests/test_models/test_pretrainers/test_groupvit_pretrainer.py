# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The pretrainer's training step: non-finite losses and gradients are
caught at their step and never trained on; skipped steps are counted."""
import copy
import functools
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import tokenize

from groupvit_common.errors import (CheckpointError, ConfigValueError,
                                    NonFiniteLossError)
from mmseg_groupvit.datasets.pretraining import CaptionTokenize
from tests.conftest import SMALL_ARCH

CAPTIONS = [['a dog on the grass', 'a photo of a dog.', 'a photo of grass.'],
            ['a red bus', 'a photo of a bus.', 'a red bus'],
            ['two cats asleep', 'a photo of cats.', 'two cats asleep'],
            ['a boat at sea', 'a photo of a boat.', 'a photo of the sea.']]


def _config(model_type):
    return dict(
        type=model_type,
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size=(32, 32)),
        image_encoder=dict(
            type='GroupViT',
            image_size=32,
            patch_size=8,
            **SMALL_ARCH['image_encoder']),
        text_encoder=dict(
            type='GroupViTTextEncoder',
            frozen=False,
            dataset_name='voc',
            **SMALL_ARCH['text_encoder']),
        decode_head=dict(type='GroupViTHead'))


@functools.lru_cache()
def _built():
    torch.manual_seed(0)
    model = MODELS.build(dict(_config('GroupViTPretrainer'), multi_label=2))
    model.init_weights()
    return model


def tiny_pretrainer(**attributes):
    """A small pretrainer (2 prompts per caption), built once and copied;
    ``attributes`` (``on_nonfinite``, ``multi_label``) are set on it."""
    model = copy.deepcopy(_built())
    for name, value in attributes.items():
        setattr(model, name, value)
    return model.train()


def batch():
    gen = torch.Generator().manual_seed(0)
    samples = []
    for texts in CAPTIONS:
        sample = SegDataSample()
        sample.text_tokens = tokenize(texts)
        samples.append(sample)
    inputs = [
        torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8)
        for _ in CAPTIONS
    ]
    return dict(inputs=inputs, data_samples=samples)


def optim_wrapper(model):
    return OptimWrapper(
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        clip_grad=dict(max_norm=5.0))


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def unchanged(model, before):
    return all(
        torch.equal(v, before[k]) for k, v in model.state_dict().items()
        if 'running' not in k and 'num_batches' not in k)


def nan_term(model, name):
    """Make the loss term ``name`` NaN on the next call."""
    loss = model.loss

    def poisoned(*args):
        losses = loss(*args)
        losses[name] = losses[name] * math.nan
        return losses

    model.loss = poisoned


@pytest.fixture(autouse=True)
def at_step_three():
    MessageHub.get_current_instance().update_info('iter', 2)


def test_a_finite_step_updates_the_weights():
    model = tiny_pretrainer()
    before = snapshot(model)
    log_vars = model.train_step(batch(), optim_wrapper(model))
    assert set(log_vars) == {'loss', 'loss_contrastive', 'loss_multi_label'}
    assert not unchanged(model, before)


def test_a_nan_loss_stops_naming_the_step_and_the_term():
    model = tiny_pretrainer(on_nonfinite='stop')
    before = snapshot(model)
    nan_term(model, 'loss_multi_label')
    with pytest.raises(NonFiniteLossError) as error:
        model.train_step(batch(), optim_wrapper(model))
    assert 'training step 3: loss_multi_label not finite' in str(error.value)
    assert unchanged(model, before)


def test_a_nan_loss_is_skipped_and_counted():
    model = tiny_pretrainer(on_nonfinite='skip')
    wrapper = optim_wrapper(model)
    before = snapshot(model)
    nan_term(model, 'loss_contrastive')
    log_vars = model.train_step(batch(), wrapper)
    assert log_vars['nonfinite_skips'] == 1
    assert unchanged(model, before)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    del model.loss  # the next step is finite and trains
    log_vars = model.train_step(batch(), wrapper)
    assert log_vars['nonfinite_skips'] == 1
    assert not unchanged(model, before)


def test_a_nan_gradient_is_caught_before_the_optimizer_step():
    model = tiny_pretrainer(on_nonfinite='stop')
    before = snapshot(model)
    model.image_encoder.pos_embed.register_hook(lambda g: g * math.nan)
    with pytest.raises(NonFiniteLossError) as error:
        model.train_step(batch(), optim_wrapper(model))
    assert 'the gradient of image_encoder.pos_embed' in str(error.value)
    assert unchanged(model, before)


@pytest.mark.parametrize('value', [True, -1, 2.0])
def test_multi_label_must_be_a_count(value):
    """``multi_label=True`` would train with one prompt per caption."""
    with pytest.raises(ConfigValueError, match='number of noun prompts'):
        MODELS.build(dict(_config('GroupViTPretrainer'), multi_label=value))
    with pytest.raises(ConfigValueError, match='number of noun prompts'):
        CaptionTokenize(multi_label=value)


def test_text_rows_must_match_multi_label():
    model = tiny_pretrainer(multi_label=3)
    with pytest.raises(ConfigValueError, match='multi_label=3 needs'):
        model.train_step(batch(), optim_wrapper(model))


def test_gumbel_noise_only_in_training():
    model = tiny_pretrainer()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        first = model.image_encoder(images)['image_embeds']
        assert torch.equal(first, model.image_encoder(images)['image_embeds'])
        model.train()
        noisy = [
            model.image_encoder.forward_features(images)['pooled']
            for _ in range(2)
        ]
    assert not torch.equal(*noisy)


def test_its_weights_load_into_the_zero_shot_segmentor():
    """A pretrainer's state dict (with the training-only
    multi_label_logit_scale) loads strictly into the segmentor of the same
    architecture, which drops that key; any other extra key is refused."""
    pretrainer = _built()
    segmentor = MODELS.build(_config('GroupViTEncoderDecoder'))
    state = pretrainer.state_dict()
    assert 'multi_label_logit_scale' in state
    result = segmentor.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys
    for key in segmentor.state_dict():
        assert torch.equal(segmentor.state_dict()[key], state[key]), key
    state['decode_head.extra'] = torch.zeros(())
    with pytest.raises(CheckpointError, match='decode_head.extra'):
        segmentor.load_state_dict(state)
