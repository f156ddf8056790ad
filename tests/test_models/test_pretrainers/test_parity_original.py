# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""One pretraining step against the original code's (fixture A's
``train_reference.npz``): NVlabs ``MultiLabelContrastive.forward_train`` on
a fixed batch, Gumbel noise off, training mode, world size 1."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_groupvit.weights import infer_arch
from mmseg_groupvit.weights.convert import convert_nvlabs


def pretrainer_from_fixture(fixture_a, gumbel=False):
    """The pretrainer with fixture A's weights, converted from the NVlabs
    layout, and the converted state dict."""
    state = torch.load(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'), weights_only=True)['model']
    state = convert_nvlabs(state)
    # The shapes tell the architecture but the vision head count, which
    # the original's config records.
    with open(osp.join(fixture_a, 'nvlabs_config.json')) as f:
        heads = json.load(f)['model']['img_encoder']['num_heads'][0]
    arch = infer_arch(state)
    arch['image_encoder']['num_attention_heads'] = heads
    # The original's text tower has width // 64 heads, as CLIP's.
    arch['text_encoder']['num_attention_heads'] = (
        arch['text_encoder']['hidden_size'] // 64)
    model = MODELS.build(
        dict(
            type='GroupViTPretrainer',
            image_encoder=dict(
                type='GroupViT', gumbel=gumbel, **arch['image_encoder']),
            text_encoder=dict(
                type='GroupViTTextEncoder',
                frozen=False,
                dataset_name='voc',
                **arch['text_encoder']),
            decode_head=dict(type='GroupViTHead'),
            multi_label=3))
    model.load_state_dict(state)
    return model.train(), state


def reference_batch(ref):
    samples = []
    for tokens in ref['text_ids']:
        sample = SegDataSample()
        sample.text_tokens = torch.from_numpy(tokens).long()
        samples.append(sample)
    return torch.from_numpy(ref['images']), samples


@pytest.fixture(scope='module')
def step(fixture_a):
    ref = np.load(osp.join(fixture_a, 'train_reference.npz'))
    model, state = pretrainer_from_fixture(fixture_a)
    assert 'multi_label_logit_scale' in state  # kept by the conversion
    losses = model.loss(*reference_batch(ref))
    sum(losses.values()).backward()
    names = json.load(open(osp.join(fixture_a, 'train_inputs.json')))['grads']
    return model, losses, ref, names


def test_losses_match_the_original(step):
    _, losses, ref, _ = step
    for ours, theirs in (('loss_contrastive', 'loss__loss'),
                         ('loss_multi_label', 'loss__multi_label_loss')):
        expected = float(ref[theirs])
        assert abs(losses[ours].item() - expected) <= 1e-5 * abs(expected), \
            (ours, losses[ours].item(), expected)


def test_gradients_match_the_original(step):
    model, _, ref, names = step
    params = dict(model.named_parameters())
    assert len(names) == 16
    for name in names:
        (key, expected), = convert_nvlabs({
            name:
            torch.from_numpy(ref[f'grad__{name}'])
        }).items()
        grad = params[key].grad
        scale = expected.abs().max().item()
        # logit_scale is 4.9 > log(100): the clamp leaves it no gradient.
        assert (grad - expected).abs().max().item() <= 1e-4 * scale, name


def test_batchnorm_statistics_match_the_original(step):
    model, _, ref, _ = step
    buffers = dict(model.named_buffers())
    stats = [k for k in ref.files if k.startswith('bn_after__')]
    assert len(stats) == 4
    for name in stats:
        (key, expected), = convert_nvlabs({
            name[len('bn_after__'):]:
            torch.from_numpy(ref[name])
        }).items()
        assert torch.allclose(buffers[key], expected, rtol=0, atol=1e-5), key


def test_eval_features_use_the_updated_statistics(step):
    model, _, ref, _ = step
    model.eval()
    with torch.no_grad():
        feats = model.image_encoder(torch.from_numpy(ref['images']))
    model.train()
    expected = torch.from_numpy(ref['eval_image_x'])
    assert torch.allclose(
        feats['image_embeds'], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_ten_steps_from_the_converted_checkpoint_lower_the_loss(fixture_a):
    """Training continues from converted weights: AdamW on the fixture
    batch, the original's clipping at 5."""
    ref = np.load(osp.join(fixture_a, 'train_reference.npz'))
    model, _ = pretrainer_from_fixture(fixture_a)
    images, samples = reference_batch(ref)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, weight_decay=0.05)
    totals = []
    for _ in range(11):
        total = sum(model.loss(images, samples).values())
        totals.append(total.item())
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    assert totals[0] == pytest.approx(10.169559, rel=1e-5)
    assert totals[-1] < totals[0] - 1.0, totals
