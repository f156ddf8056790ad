# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViTHead: a hand-computed case, and the original algorithm run step
by step with plain torch on a model's own outputs."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from PIL import Image

from groupvit_common.errors import ConfigValueError
from mmseg_groupvit.models.layers import chain_assignments
from tests.conftest import PHOTOS, varied_segmentor

E = math.e


def build_head(**kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='GroupViTHead', num_classes=4, logit_scale_init=0.0)
    cfg.update(kwargs)
    return MODELS.build(cfg).eval()


def hand_inputs():
    """2 groups, 3 classes, a 2x2 window with one patch per pixel.

    Class embeddings are the unit vectors e1, e2, e3 and s = exp(0) = 1.
    The image feature e1 + e2 gates (top-2) classes 0 and 1 in. Group 0 is
    e3, the gated-out class; group 1 is e1.
    """
    class_embeds = torch.eye(3)
    group_embeds = torch.tensor([[[0., 0., 1.], [1., 0., 0.]]])
    image_embeds = torch.tensor([[1., 1., 0.]])
    # Pixels 0, 1 (top row) belong mostly to group 0, pixels 2, 3 to group 1.
    soft = torch.tensor([[[0.9, 0.8, 0.3, 0.1], [0.1, 0.2, 0.7, 0.9]]])
    feats = dict(
        group_embeds=group_embeds,
        image_embeds=image_embeds,
        soft_assigns=[soft],
        grid=(2, 2))
    return [torch.zeros(1, 3, 2, 2), feats, class_embeds]


# P[g, c] worked out by hand from the docstring above.
P_GROUP0 = [0.5 / (2 + E), 0.5 / (2 + E), 0.0]
P_GROUP1 = [E / (E + 1) * E / (E + 2), 1 / (E + 1) / (E + 2), 0.0]


def test_hand_computed_scores_gate_and_product():
    head = build_head(topk=2, bg_thresh=0.3)
    out = head.forward(hand_inputs())
    assert out.shape == (1, 4, 2, 2)
    expected = torch.tensor([P_GROUP0, P_GROUP0, P_GROUP1, P_GROUP1])
    got = out[0, 1:].permute(1, 2, 0).reshape(4, 3)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    # Group 0's best class by cosine (class 2) is gated out: score 0.
    assert (out[0, 3] == 0).all()
    # Background where the pixel's best score (0.106) < 0.3.
    assert out[0, 0].tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_hand_computed_threshold_is_clamped_to_best_group():
    # bg_thresh 0.95 exceeds every score; the clamp min(0.95, max P) keeps
    # the best group (group 1, 0.421) foreground.
    head = build_head(topk=2, bg_thresh=0.95)
    out = head.forward(hand_inputs())
    assert out[0, 0].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    # A threshold from test_cfg overrides the head's.
    out = head.forward(hand_inputs(), bg_thresh=0.05)
    assert (out[0, 0] == 0).all()


def test_hand_computed_without_gate_and_background():
    head = build_head(topk=3, with_bg=False, num_classes=3)
    out = head.forward(hand_inputs())
    assert out.shape == (1, 3, 2, 2)
    # No gate: P = softmax(G)^2 per group.
    g1 = torch.tensor([E, 1., 1.]) / (E + 2)
    torch.testing.assert_close(out[0, :, 1, 1], g1 * g1)


def test_temperature_is_clamped_to_100():
    head = build_head(logit_scale_init=math.log(500.))
    assert head.temperature.item() == pytest.approx(100.)


def test_chain_assignments_by_hand():
    a1 = torch.tensor([[[1., 0., .5, 0.], [0., 1., .5, 1.]]])  # [1, 2, 4]
    a2 = torch.tensor([[[.25, 1.], [.75, 0.]]])  # [1, 2, 2]
    # token -> final group: sum_j a1[j, n] * a2[g, j]
    expected = torch.tensor([[[.25, .75], [1., 0.], [.625, .375], [1., 0.]]])
    torch.testing.assert_close(chain_assignments([a1, a2]), expected)


def original_algorithm(feats, class_embeds, logit_scale, bg_thresh, size):
    """The published algorithm, written out step by step for one window
    (NVlabs ``GroupViTSegInference.encode_decode``)."""
    attn = None
    for soft in feats['soft_assigns']:
        step = soft[0].t()  # [S_prev, S]
        attn = step if attn is None else attn @ step
    h, w = feats['grid']
    maps = attn.t().reshape(1, -1, h, w)
    maps = F.interpolate(
        maps, size=size, mode='bilinear', align_corners=False)[0]
    onehot = F.one_hot(maps.argmax(0), maps.shape[0]).float()  # [H, W, G]
    group = F.normalize(feats['group_embeds'][0], dim=-1)
    image = F.normalize(feats['image_embeds'][0], dim=-1)
    scale = min(math.exp(logit_scale), 100.)
    affinity = group @ class_embeds.t() * scale
    ungated = affinity.softmax(-1)
    image_probs = (image @ class_embeds.t() * scale).softmax(-1)
    keep = torch.zeros_like(image_probs)
    keep[image_probs.topk(min(5, len(image_probs))).indices] = 1
    affinity = affinity.masked_fill(keep[None] == 0, float('-inf'))
    scores = affinity.softmax(-1) * ungated
    out = torch.zeros(class_embeds.shape[0] + 1, *size)
    pixel = onehot @ scores  # [H, W, K]
    out[1:] = pixel.permute(2, 0, 1)
    thresh = min(bg_thresh, scores.max().item())
    out[0][pixel.max(-1).values < thresh] = 1
    return out


@pytest.mark.parametrize('bg_thresh', [0.95, 0.35])
def test_matches_step_by_step_algorithm_on_real_photo(bg_thresh):
    """At 0.95 no pixel scores that high, so the threshold is clamped to the
    best score (the pixels of the best group stay foreground); at 0.35 it is
    not. Both give background and a class."""
    model = varied_segmentor(seed=2, text_encoder=True)
    with torch.no_grad():
        model.decode_head.logit_scale.fill_(3.5)
    img = Image.open(osp.join(PHOTOS,
                              'groupvit_demo_coco.jpg')).convert('RGB').resize(
                                  (320, 224))
    mean = np.array([123.675, 116.28, 103.53])
    std = np.array([58.395, 57.12, 57.375])
    x = torch.from_numpy(
        ((np.asarray(img) - mean) / std).astype(np.float32)).permute(2, 0,
                                                                     1)[None]
    with torch.no_grad():
        class_embeds = model.text_encoder()
        feats = model.image_encoder(x)
        ours = model.decode_head.forward([x, feats, class_embeds],
                                         bg_thresh=bg_thresh)[0]
        ref = original_algorithm(feats, class_embeds, 3.5, bg_thresh,
                                 (224, 320))
    # Not a trivial comparison: background and a class are both present,
    # and the threshold is clamped at 0.95 only.
    labels = ref.argmax(0)
    assert (labels == 0).any() and (labels > 0).any()
    assert (ref[1:].max() < bg_thresh) == (bg_thresh == 0.95)
    assert torch.equal(ours[0], ref[0])
    torch.testing.assert_close(ours[1:], ref[1:], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('kwargs, message', [
    (dict(bg_thresh=-1), 'model.decode_head.bg_thresh must be a number in'),
    (dict(bg_thresh=2), 'model.decode_head.bg_thresh must be a number in'),
    (dict(bg_thresh=math.nan), 'model.decode_head.bg_thresh must be a'),
    (dict(bg_thresh='abc'), 'model.decode_head.bg_thresh must be a'),
    (dict(num_classes='abc'), 'model.decode_head.num_classes must be a'),
    (dict(num_classes=0), 'model.decode_head.num_classes must be a'),
    (dict(topk=0), 'model.decode_head.topk must be a positive integer'),
])
def test_bad_settings_are_refused_when_built(kwargs, message):
    """Each setting is checked by the head, whatever builds it; a threshold
    outside [0, 1] would make every pixel foreground (< 0) or every group
    but the best background (> 1) without a word."""
    with pytest.raises(ConfigValueError) as info:
        build_head(**kwargs)
    assert message in str(info.value)


def test_threshold_bounds_are_accepted():
    assert build_head(bg_thresh=0).bg_thresh == 0.0
    assert build_head(bg_thresh=1).bg_thresh == 1.0
