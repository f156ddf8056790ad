# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Dense outputs of the GroupViT backbone (``out_indices``), freezing, and
pretrained loading through ``init_cfg``.

The dense maps are checked against transformers' ``GroupViTModel`` on
shared weights (the released architecture, loaded through mmengine's
``Pretrained`` init with a prefix from a converted checkpoint): the stage-1
map against its stage-1 tokens captured with a hook and reshaped, the later
maps against its own stage tokens and groupings, spread back by hand.
"""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import SMALL_ARCH

ATOL = 1e-4


def build_backbone(seed=0, **kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='GroupViT', **SMALL_ARCH['image_encoder'])
    cfg.update(kwargs)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


# ----------------------------------------------------------------------
# against transformers, on shared weights
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def hf_pair(tmp_path_factory):
    """transformers' default-architecture model with randomised weights and
    our backbone loaded from its converted checkpoint via ``init_cfg``."""
    transformers = pytest.importorskip('transformers')
    tmp = tmp_path_factory.mktemp('hf_dense')
    torch.manual_seed(0)
    # The released vision tower; a small text tower keeps this fast.
    config = transformers.GroupViTConfig(
        text_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2))
    hf = transformers.GroupViTModel(config).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in hf.vision_model.named_parameters():
            # Off transformers' constant inits (zero biases and tokens,
            # unit norms), so nothing matches by accident.
            if name.endswith('.bias') or 'group_token' in name or \
                    'position_embeddings' in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
            elif 'norm' in name:
                param.copy_(1 + torch.randn(param.shape, generator=gen) * .1)
    hf.save_pretrained(str(tmp / 'hf'))
    ckpt = str(tmp / 'groupvit.pth')
    convert_checkpoint(str(tmp / 'hf'), ckpt)
    init_default_scope('mmseg')
    ours = MODELS.build(
        dict(
            type='GroupViT',
            out_indices=(0, 1, 2),
            with_projector=False,
            init_cfg=dict(
                type='Pretrained', checkpoint=ckpt, prefix='image_encoder.')))
    ours.init_weights()
    return hf.eval(), ours.eval(), ckpt


def hf_reference(hf, images):
    """transformers' stage tokens (via hooks), groupings and final tokens,
    at any input size (``interpolate_pos_encoding``)."""
    captured = {}
    hooks = [
        stage.downsample.register_forward_pre_hook(
            lambda module, args, i=i: captured.__setitem__(i, args[0]))
        for i, stage in enumerate(hf.vision_model.encoder.stages)
        if stage.downsample is not None
    ]
    try:
        with torch.no_grad():
            emb = hf.vision_model.embeddings(
                images, interpolate_pos_encoding=True)
            enc = hf.vision_model.encoder(
                hidden_states=emb, output_attentions=True, return_dict=True)
            final = hf.vision_model.layernorm(enc.last_hidden_state)
    finally:
        for hook in hooks:
            hook.remove()
    return captured, [a.numpy() for a in enc.attentions], final


@pytest.mark.parametrize('size', [(224, 224), (224, 320)])
def test_dense_maps_match_transformers(hf_pair, size):
    hf, ours, _ = hf_pair
    torch.manual_seed(2)
    images = torch.randn(2, 3, *size)
    tokens, (a1, a2), final = hf_reference(hf, images)
    with torch.no_grad():
        maps = ours(images)
    h, w = size[0] // 16, size[1] // 16
    assert [tuple(m.shape) for m in maps] == [(2, 384, h, w)] * 3

    # Stage 1: the transformers stage-1 patch tokens, reshaped row-major.
    stage1 = tokens[0].numpy()  # [B, h*w, C]
    assert stage1.shape == (2, h * w, 384)
    ref0 = stage1.reshape(2, h, w, 384).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(maps[0].numpy(), ref0, atol=ATOL, rtol=0)

    # Stage 2: its 64 segment tokens, each patch taking the mix given by
    # the stage-1 grouping (a1: [B, 64 groups, h*w patches]).
    stage2 = tokens[1].numpy()  # [B, 64, C]
    ref1 = np.einsum('bgp,bgc->bcp', a1, stage2).reshape(2, 384, h, w)
    np.testing.assert_allclose(maps[1].numpy(), ref1, atol=ATOL, rtol=0)

    # Stage 3: the final LayerNorm-ed tokens through both groupings.
    patch_to_final = np.einsum('bgp,bfg->bpf', a1, a2)  # [B, h*w, 8]
    ref2 = np.einsum('bpf,bfc->bcp', patch_to_final,
                     final.numpy()).reshape(2, 384, h, w)
    np.testing.assert_allclose(maps[2].numpy(), ref2, atol=ATOL, rtol=0)


def test_pretrained_init_loads_every_key(hf_pair):
    _, ours, ckpt = hf_pair
    state = torch.load(
        ckpt, map_location='cpu', weights_only=True)['state_dict']
    expected = {
        k[len('image_encoder.'):]: v
        for k, v in state.items() if k.startswith('image_encoder.')
    }
    own = ours.state_dict()
    # The projector's keys are left over (built with_projector=False).
    assert set(own) == {k for k in expected if not k.startswith('projector.')}
    for key, value in own.items():
        assert torch.equal(value, expected[key]), key


# ----------------------------------------------------------------------
# structure and properties
# ----------------------------------------------------------------------
def test_zero_shot_output_unchanged_without_out_indices():
    images = torch.randn(2, 3, 64, 96)
    plain = build_backbone()
    both = build_backbone(out_indices=(0, 1, 2), with_zero_shot=True)
    both.load_state_dict(plain.state_dict())
    with torch.no_grad():
        out, out_both = plain(images), both(images)
    assert 'dense' not in out
    assert set(out_both) == set(out) | {'dense'}
    for key, value in out.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, out_both[key]), key
        elif key == 'grid':
            assert value == out_both[key]
        else:
            assert all(
                torch.equal(a, b) for a, b in zip(value, out_both[key])), key
    assert len(out_both['dense']) == 3


@pytest.mark.parametrize('out_indices,expected', [((0, 1, 2), (0, 1, 2)),
                                                  ((2, 0), (2, 0)),
                                                  ((-1, ), (2, )), (1, (1, ))])
def test_out_indices_select_and_order(out_indices, expected):
    images = torch.randn(1, 3, 48, 80)
    full = build_backbone(out_indices=(0, 1, 2))
    part = build_backbone(out_indices=out_indices)
    part.load_state_dict(full.state_dict())
    with torch.no_grad():
        all_maps, maps = full(images), part(images)
    assert isinstance(maps, tuple) and len(maps) == len(expected)
    for got, index in zip(maps, expected):
        assert torch.equal(got, all_maps[index])


def test_later_maps_are_convex_mixtures_of_segment_tokens():
    """Each patch of a later stage is a weighted mean of that stage's
    tokens (weights summing to one), so it lies inside their per-channel
    range, and constant tokens give a constant map."""
    model = build_backbone(out_indices=(0, 1, 2))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(images)
        maps = model.forward_dense(feats)
        for level, tokens in ((1, feats['stage_tokens'][1]),
                              (2, feats['group_tokens'])):
            flat = maps[level].flatten(2)  # [B, C, h*w]
            low = tokens.min(dim=1).values[..., None] - 1e-5
            high = tokens.max(dim=1).values[..., None] + 1e-5
            assert torch.all(flat >= low) and torch.all(flat <= high)
        feats['group_tokens'] = torch.ones_like(feats['group_tokens']) * 3
        const = model.forward_dense(feats)[2]
    torch.testing.assert_close(const, torch.full_like(const, 3.))


def test_mmseg_heads_read_the_maps():
    model = build_backbone(out_indices=(0, 1, 2))
    head = MODELS.build(
        dict(
            type='FCNHead',
            in_channels=[64, 64, 64],
            in_index=[0, 1, 2],
            input_transform='resize_concat',
            channels=16,
            num_classes=5,
            norm_cfg=dict(type='BN')))
    with torch.no_grad():
        logits = head.eval()(model(torch.randn(2, 3, 64, 80)))
    assert logits.shape == (2, 5, 4, 5)


# ----------------------------------------------------------------------
# freezing
# ----------------------------------------------------------------------
def _frozen_names(model):
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def test_frozen_stages_follow_mmseg_semantics():
    names = {n for n, _ in build_backbone().named_parameters()}
    stem = {n for n in names if n.startswith(('patch_embed.', 'pos_embed'))}
    stage0 = {n for n in names if n.startswith('stages.0.')}
    assert _frozen_names(build_backbone()) == set()
    assert _frozen_names(build_backbone(frozen_stages=0)) == stem
    assert _frozen_names(build_backbone(frozen_stages=1)) == stem | stage0
    every_stage = {n for n in names if not n.startswith('projector.')}
    assert _frozen_names(build_backbone(frozen_stages=3)) == every_stage
    assert _frozen_names(build_backbone(frozen=True)) == names
    assert _frozen_names(build_backbone(freeze_projector=True)) == {
        n
        for n in names if n.startswith('projector.')
    }
    assert _frozen_names(build_backbone(freeze_group_tokens=True)) == {
        'stages.0.group_token', 'stages.1.group_token'
    }


def test_frozen_stages_stay_in_eval_mode():
    """Frozen stages keep eval behaviour under ``train()``: their grouping
    takes the hard argmax, not a Gumbel sample, so what they produce no
    longer changes from call to call."""
    images = torch.randn(2, 3, 64, 64)
    for frozen_stages, stable in ((-1, False), (1, True)):
        model = build_backbone(
            out_indices=(1, ), frozen_stages=frozen_stages).train()
        assert model.training and model.stages[1].training
        assert model.stages[0].training is not stable
        with torch.no_grad():
            first, second = model(images)[0], model(images)[0]
        assert torch.equal(first, second) is stable


def test_frozen_parts_get_no_gradient():
    model = build_backbone(
        out_indices=(0, 1, 2), frozen_stages=1,
        freeze_group_tokens=True).train()
    sum(m.sum() for m in model(torch.randn(2, 3, 64, 64))).backward()
    for name, param in model.named_parameters():
        if name.startswith('projector.'):
            continue  # not used by the dense maps
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, \
                name
        else:
            assert param.grad is None, name


# ----------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,match', [
    (dict(out_indices=(3, )), r'out_indices=\(3,\) must be stage indices'),
    (dict(out_indices=()), 'must be stage indices'),
    (dict(with_zero_shot=True), 'needs out_indices'),
    (dict(frozen_stages=4), 'frozen_stages=4 must be between -1'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(**kwargs)


def test_pretrained_mismatch_fails_clearly(tmp_path):
    source = build_backbone()
    state = {f'image_encoder.{k}': v for k, v in source.state_dict().items()}
    ckpt = str(tmp_path / 'small.pth')
    torch.save(dict(state_dict=state), ckpt)

    # Another architecture: one block more in stage 1.
    deeper = dict(SMALL_ARCH['image_encoder'], depths=[2, 1, 1])
    init_default_scope('mmseg')
    model = MODELS.build(
        dict(
            type='GroupViT',
            init_cfg=dict(
                type='Pretrained', checkpoint=ckpt, prefix='image_encoder.'),
            **deeper))
    with pytest.raises(
            CheckpointError, match=r'key\(s\) missing.*'
            r'stages\.0\.blocks\.1'):
        model.init_weights()

    # A prefix that exists but names another part.
    state['text_encoder.x'] = torch.zeros(1)
    torch.save(dict(state_dict=state), ckpt)
    model = MODELS.build(
        dict(
            type='GroupViT',
            init_cfg=dict(
                type='Pretrained', checkpoint=ckpt, prefix='text_encoder.'),
            **SMALL_ARCH['image_encoder']))
    with pytest.raises(CheckpointError, match="none of its .* keys"):
        model.init_weights()
