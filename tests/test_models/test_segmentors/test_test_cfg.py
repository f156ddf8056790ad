# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``test_cfg`` is checked by the segmentor when it is set, so that every
entry point refuses the values that cannot give a correct result.

The reference for "cannot give a correct result" is mmseg's own slide
inference: with a stride larger than the window some pixels are covered by
no window, their count is 0 and their score 0/0 = NaN (mmseg's loop
asserts that every pixel is covered).
"""
import math

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmseg.models.segmentors import MultimodalEncoderDecoder

from groupvit_common.errors import ConfigValueError
from groupvit_common.window_grid import window_boxes
from mmseg_groupvit.apis import init_groupvit
from mmseg_groupvit.models.segmentors.groupvit_encoder_decoder import \
    window_counts
from tests.conftest import REPO, SMALL_ARCH, build_small_segmentor

SLIDE = dict(mode='slide', crop_size=(64, 64), stride=(32, 32))


@pytest.fixture(scope='module')
def model():
    init_default_scope('mmseg')
    model = build_small_segmentor()
    model.test_cfg = ConfigDict(SLIDE)
    return model


def test_larger_stride_leaves_pixels_uncovered(model):
    """Why the stride is checked: windows 32 wide every 48 pixels leave
    rows and columns 32..47 to no window (score 0/0 = NaN in the batched
    loop), and mmseg's own loop asserts full coverage."""
    boxes = window_boxes(80, 80, (32, 32), (48, 48))
    assert boxes == [(0, 32, 0, 32), (0, 32, 48, 80), (48, 80, 0, 32),
                     (48, 80, 48, 80)]
    counts = window_counts(torch.zeros(1, 3, 80, 80), boxes)[0, 0]
    assert counts[32:48].eq(0).all() and counts[:, 32:48].eq(0).all()
    assert counts[:32, :32].eq(1).all()
    model._test_cfg = ConfigDict(
        mode='slide', crop_size=(32, 32), stride=(48, 48))
    try:
        with torch.no_grad(), pytest.raises(AssertionError):
            MultimodalEncoderDecoder.slide_inference(
                model, torch.randn(1, 3, 80, 80), [dict(ori_shape=(80, 80))])
    finally:
        model._test_cfg = ConfigDict(SLIDE)


@pytest.mark.parametrize(
    'update, key',
    [
        (dict(stride=(65, 64)), 'stride (65, 64) is larger than'),
        (dict(stride=(64, 300)), 'stride (64, 300) is larger than'),
        (dict(stride=(0, 0)), 'model.test_cfg.stride must be two positive'),
        (dict(stride=(-32, 32)), 'model.test_cfg.stride must be two positive'),
        (dict(stride=None), 'model.test_cfg.stride must be two positive'),
        (dict(crop_size=(8, 8), stride=(8, 8)),
         'crop_size (8, 8) is smaller than one 16x16 patch'),
        (dict(crop_size=(0, 64)), 'model.test_cfg.crop_size must be two'),
        (dict(mode='foo'),
         "model.test_cfg.mode must be one of 'whole', 'slide'"),
        (dict(window_batch=0),
         'model.test_cfg.window_batch must be a positive'),
        (dict(window_batch=1.5), 'model.test_cfg.window_batch must be a'),
        (dict(max_dense_scores_bytes=-1),
         'model.test_cfg.max_dense_scores_bytes must be'),
        (dict(max_full_size_scores_bytes=1.5),
         'model.test_cfg.max_full_size_scores_bytes must be'),
        # The former key, which set both budgets: refused, the settings
        # named include its two replacements.
        (dict(max_logits_bytes=0), "no setting 'max_logits_bytes'"),
        (dict(max_logits_bytes=0), 'window_batch, autocast, '
         'max_dense_scores_bytes, max_full_size_scores_bytes.'),
        (dict(autocast='int8'), 'model.test_cfg.autocast must be one of'),
        # A misspelled key would be ignored: refused, naming the real ones.
        (dict(max_dense_score_bytes=0),
         "no setting 'max_dense_score_bytes': it would be ignored. The "
         'settings are mode, crop_size'),
        (dict(bg_thresh=-1), 'model.test_cfg.bg_thresh must be a number in'),
        (dict(bg_thresh=2), 'model.test_cfg.bg_thresh must be a number in'),
        (dict(bg_thresh=math.nan),
         'model.test_cfg.bg_thresh must be a number'),
        (dict(bg_thresh='abc'),
         'model.test_cfg.bg_thresh must be a number in'),
    ])
def test_bad_test_cfg_is_refused_when_set(model, update, key):
    with pytest.raises(ConfigValueError) as info:
        model.test_cfg = ConfigDict(SLIDE, **update)
    assert key in str(info.value)
    # The segmentor keeps the test_cfg it had.
    assert model.test_cfg == ConfigDict(SLIDE)


@pytest.mark.parametrize(
    'update',
    [
        dict(stride=(64, 64)),  # windows side by side: every pixel covered
        dict(stride=(1, 1)),
        dict(crop_size=(16, 16), stride=(16, 16)),  # one patch per window
        dict(bg_thresh=0),
        dict(bg_thresh=1),
        dict(autocast='bf16', window_batch=3, max_dense_scores_bytes=1 << 20),
        dict(max_dense_scores_bytes=0, max_full_size_scores_bytes=0),
        dict(mode='whole', crop_size=None, stride=None),
    ])
def test_good_test_cfg_is_kept(model, update):
    cfg = ConfigDict(SLIDE, **update)
    model.test_cfg = cfg
    assert model.test_cfg is cfg
    model.test_cfg = ConfigDict(SLIDE)


def test_bad_test_cfg_is_refused_at_build():
    with pytest.raises(
            ConfigValueError, match=r'stride \(448, 448\) is larger'):
        build_small_segmentor(
            test_cfg=dict(stride=(448, 448), crop_size=(224, 224)))


@pytest.mark.parametrize('bg_thresh', [-1, 2, math.nan, 'abc'])
def test_init_groupvit_refuses_bg_thresh(bg_thresh, tmp_path):
    config = tmp_path / 'small.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/groupvit_voc.py']\n"
        f"model = dict(image_encoder={SMALL_ARCH['image_encoder']!r}, "
        f"text_encoder={SMALL_ARCH['text_encoder']!r})\n")
    with pytest.raises(ConfigValueError, match='bg_thresh must be a number'):
        init_groupvit(str(config), bg_thresh=bg_thresh, random_weights=True)
