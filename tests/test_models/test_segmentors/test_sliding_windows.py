# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Batched sliding windows and autocast in ``GroupViTEncoderDecoder``.

The reference for the slide path is mmseg's own
``MultimodalEncoderDecoder.slide_inference`` (one window at a time, scores
padded to the image size), run on the same model; the window layout is
checked against boxes worked out by hand.
"""
import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.models.segmentors import MultimodalEncoderDecoder

from groupvit_common.window_grid import window_boxes
from tests.conftest import build_small_segmentor, varied_segmentor


def slide_cfg(**extra):
    return ConfigDict(
        mode='slide',
        crop_size=(64, 64),
        stride=(40, 40),
        bg_thresh=0.95,
        **extra)


def test_window_boxes_by_hand():
    # 448 x 600, crop 448, stride 224: one row, the second window shifted
    # back to end at 600.
    boxes = window_boxes(448, 600, (448, 448), (224, 224))
    assert boxes == [(0, 448, 0, 448), (0, 448, 152, 600)]
    # 100 x 130, crop 64, stride 40: rows at 0 and 36 (shifted back),
    # columns at 0, 40 and 66.
    rows, columns = [(0, 64), (36, 100)], [(0, 64), (40, 104), (66, 130)]
    boxes = window_boxes(100, 130, (64, 64), (40, 40))
    assert boxes == [row + column for row in rows for column in columns]
    # Smaller than the window: one window of the image's size.
    assert window_boxes(30, 50, (64, 64), (40, 40)) == [(0, 30, 0, 50)]


@pytest.mark.parametrize('per_pass', [1, 2, 4, 6, 10])
def test_batched_slide_equals_mmseg_loop(per_pass):
    model = build_small_segmentor()
    model.test_cfg = slide_cfg(window_batch=per_pass)
    inputs = torch.randn(2, 3, 100, 130)  # 2 images, 6 windows each
    metas = [dict(ori_shape=(100, 130)) for _ in range(2)]
    with torch.no_grad():
        ours = model.inference(inputs, [dict(m) for m in metas])
        mmseg = MultimodalEncoderDecoder.slide_inference(
            model, inputs, [dict(m) for m in metas])
    assert ours.shape == (2, 21, 100, 130)
    if per_pass == 1:
        # Same windows, same additions in the same order.
        assert torch.equal(ours, mmseg)
    else:
        torch.testing.assert_close(ours, mmseg, atol=1e-5, rtol=0)


def test_bad_window_batch_names_the_setting():
    model = build_small_segmentor()
    with pytest.raises(ValueError, match='model.test_cfg.window_batch'):
        model.test_cfg = slide_cfg(window_batch=0)


def test_autocast_bf16_runs_backbone_in_bf16_and_head_in_fp32():
    """bf16 changes the scores a little, not the segmentation: the labels
    stay those of the float32 model on most pixels."""
    model = varied_segmentor()
    torch.manual_seed(0)
    inputs = torch.randn(1, 3, 64, 64)
    metas = [dict(img_shape=inputs.shape[2:], pad_shape=inputs.shape[2:])]
    seen = {}

    def record(module, args, output):
        seen['dtype'] = output.dtype

    model.image_encoder.patch_embed.proj.register_forward_hook(record)
    with torch.no_grad():
        model.test_cfg = slide_cfg()
        exact = model.encode_decode(inputs, metas)
        assert seen.pop('dtype') == torch.float32
        model.test_cfg = slide_cfg(autocast='bf16')
        fast = model.encode_decode(inputs, metas)
        assert seen.pop('dtype') == torch.bfloat16
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    # Channel 0 is the 0/1 background flag, the rest probabilities.
    assert ((fast[:, 0] == 0) | (fast[:, 0] == 1)).all()
    assert 0 <= fast[:, 1:].min() and fast[:, 1:].max() <= 1
    labels, fast_labels = exact.argmax(1), fast.argmax(1)
    # Not trivial: background and a class are both predicted.
    assert (labels == 0).any() and (labels > 0).any()
    # 97 % measured on this input; bf16 kernels differ between CPUs.
    assert (fast_labels == labels).float().mean() >= 0.9


def test_bad_autocast_names_the_setting():
    model = build_small_segmentor()
    with pytest.raises(ValueError, match='model.test_cfg.autocast'):
        model.test_cfg = slide_cfg(autocast='int8')
