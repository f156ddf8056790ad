# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT backbone: output structure, any input size, position-embedding
interpolation and input checks."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from tests.conftest import SMALL_ARCH


def build_backbone(**kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='GroupViT', **SMALL_ARCH['image_encoder'])
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def test_default_architecture_matches_the_paper():
    model = MODELS.build(dict(type='GroupViT'))
    stage_tokens = [
        s.group_token.shape[1] if s.group_token is not None else 0
        for s in model.stages
    ]
    assert [len(s.blocks) for s in model.stages] == [6, 3, 3]
    assert stage_tokens == [64, 8, 0]
    assert model.pos_embed.shape == (1, 196, 384)
    # 28,837,136 vision + 2,633,984 projection parameters (spec Sec. 9).
    assert sum(p.numel() for p in model.parameters()) == 28837136 + 2633984


@pytest.mark.parametrize('size', [(224, 224), (448, 597), (200, 130)])
def test_outputs_for_any_size(size):
    model = build_backbone()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    grid = (size[0] // 16, size[1] // 16)
    assert out['grid'] == grid
    assert out['group_tokens'].shape == (2, 4, 64)
    assert out['pooled'].shape == (2, 64)
    assert out['group_embeds'].shape == (2, 4, 32)
    assert out['image_embeds'].shape == (2, 32)
    first, second = out['soft_assigns']
    assert first.shape == (2, 8, grid[0] * grid[1])
    assert second.shape == (2, 4, 8)
    # Soft assignments are distributions over the groups.
    torch.testing.assert_close(first.sum(1), torch.ones(2, first.shape[2]))
    torch.testing.assert_close(second.sum(1), torch.ones(2, 8))
    torch.testing.assert_close(out['pooled'], out['group_tokens'].mean(1))


def test_pos_embed_interpolation_is_bicubic_to_explicit_size():
    model = build_backbone()
    table = model.pos_embed.reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(
        table, size=(28, 37), mode='bicubic',
        align_corners=False).flatten(2).transpose(1, 2)
    with torch.no_grad():
        got = model.interpolate_pos_embed((28, 37))
        again = model.interpolate_pos_embed((28, 37))
    assert torch.equal(got, expected)
    assert again is got  # cached per grid in eval without autograd
    assert model.interpolate_pos_embed((14, 14)) is model.pos_embed


def test_pos_embed_cache_follows_weight_updates():
    model = build_backbone()
    with torch.no_grad():
        before = model.interpolate_pos_embed((20, 20)).clone()
        model.pos_embed.add_(1.0)
        after = model.interpolate_pos_embed((20, 20))
    torch.testing.assert_close(after, before + 1.0)


def test_projector_is_optional():
    model = build_backbone(with_projector=False)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert 'group_embeds' not in out and model.projector is None


@pytest.mark.parametrize('channels', [1, 4])
def test_wrong_channel_count_is_named(channels):
    model = build_backbone()
    with pytest.raises(ValueError, match=f'got {channels} channels'):
        model(torch.randn(1, channels, 64, 64))


def test_image_smaller_than_a_patch_is_named():
    model = build_backbone()
    with pytest.raises(ValueError, match='smaller than one'):
        model(torch.randn(1, 3, 8, 64))
