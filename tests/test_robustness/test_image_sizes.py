# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Images far from the usual size: tiny, smaller than a window, smaller
than a patch after resizing, and very large (bounded post-processing)."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmseg.structures import SegDataSample
from PIL import Image

import mmseg_groupvit.models.segmentors.groupvit_encoder_decoder as postprocess
from groupvit_common.errors import ImageSizeError
from tests.conftest import VOC_SAMPLE, build_small_segmentor

PHOTO = osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000129.jpg')
PIPELINE = [
    dict(type='RobustLoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='PackSegInputs')
]


def predict(model, path, mode='slide', pipeline=PIPELINE, **test_cfg):
    model.test_cfg = ConfigDict(
        mode=mode,
        crop_size=(448, 448),
        stride=(224, 224),
        bg_thresh=0.95,
        **test_cfg)
    data = Compose(pipeline)(dict(img_path=str(path)))
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    with torch.no_grad():
        return model.predict(batch['inputs'], batch['data_samples'])[0]


def reference_labels(logits, size):
    """mmseg's way: resize every class at once, then argmax."""
    return F.interpolate(
        logits, size=size, mode='bilinear', align_corners=False).argmax(dim=1)


@pytest.mark.parametrize('step', [1, 3, 7])
def test_resize_argmax_matches_full_resize(monkeypatch, step):
    """Labels from steps of ``step`` classes, each resized alone, equal
    mmseg's argmax of all classes resized at once."""
    monkeypatch.setattr(postprocess, 'channels_per_step', lambda *a: step)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 7, 13, 17, generator=gen)
    # Ties: class 5 repeats class 2, and class 6 is a constant that wins in
    # places; argmax keeps the first index.
    logits[:, 5] = logits[:, 2]
    logits[:, 6] = 0.5
    labels = postprocess.step_labels(lambda first, last: logits[:, first:last],
                                     7, dict(ori_shape=(61, 83)), (13, 17),
                                     False)
    assert labels.dtype == torch.int64 and labels.shape == (1, 61, 83)
    torch.testing.assert_close(
        labels, reference_labels(logits, (61, 83)), rtol=0, atol=0)
    assert not (labels == 5).any()


def test_bounded_postprocess_gives_the_same_labels():
    model = build_small_segmentor()
    data = Compose(PIPELINE)(dict(img_path=PHOTO))
    sample = model.data_preprocessor(pseudo_collate([data]),
                                     False)['data_samples'][0]
    # Scores at the network resolution (the 334x500 photo resized to
    # 448x671), smooth enough to give regions.
    gen = torch.Generator().manual_seed(0)
    logits = F.interpolate(
        torch.randn(1, 21, 12, 8, generator=gen), size=(671, 448))
    model.test_cfg = ConfigDict(mode='whole')
    unbounded = model.postprocess_result(logits, [sample.clone()])[0]
    model.test_cfg.max_full_size_scores_bytes = 0
    bounded = model.postprocess_result(logits, [sample.clone()])[0]
    assert len(unbounded.pred_sem_seg.data.unique()) > 5
    torch.testing.assert_close(
        bounded.pred_sem_seg.data, unbounded.pred_sem_seg.data, rtol=0, atol=0)
    # Full-size scores are not kept in the bounded result.
    assert unbounded.seg_logits.data.shape == (21, 500, 334)
    assert bounded.seg_logits.data.shape == (21, 671, 448)


def test_large_image_never_resizes_all_classes_at_once(monkeypatch):
    """A 1600x1200 'original' with 21 classes: full-size scores would take
    161 MB; every resize stays within the 64 MB step, and the labels equal
    mmseg's."""
    sizes = []
    real = F.interpolate

    def recording(x, *args, **kwargs):
        out = real(x, *args, **kwargs)
        sizes.append(out.numel() * out.element_size())
        return out

    monkeypatch.setattr(postprocess.F, 'interpolate', recording)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 21, 448, 597, generator=gen)
    model = build_small_segmentor()
    model.test_cfg = ConfigDict(
        max_full_size_scores_bytes=postprocess.CHUNK_BYTES)
    sample = SegDataSample(
        metainfo=dict(ori_shape=(1200, 1600), img_shape=(448, 597)))
    result = model.postprocess_result(logits, [sample])[0]
    assert 21 * 1200 * 1600 * 4 > 2 * postprocess.CHUNK_BYTES
    assert sizes and max(sizes) <= postprocess.CHUNK_BYTES
    assert result.seg_logits.data.shape == (21, 448, 597)
    expected = reference_labels(logits, (1200, 1600))
    torch.testing.assert_close(
        result.pred_sem_seg.data, expected, rtol=0, atol=0)


def test_tiny_image_is_upscaled_and_segmented(tmp_path):
    path = tmp_path / 'tiny.png'
    Image.fromarray(np.full((10, 12, 3), 128, np.uint8)).save(path)
    result = predict(build_small_segmentor(), path)
    assert result.pred_sem_seg.data.shape == (1, 10, 12)


def test_image_smaller_than_the_window_equals_whole_inference():
    """An input smaller than the 448 crop is one window: slide == whole."""
    model = build_small_segmentor()
    inputs = torch.randn(1, 3, 224, 320)
    metas = [
        dict(ori_shape=(224, 320), img_shape=(224, 320), pad_shape=(224, 320))
    ]
    model.test_cfg = ConfigDict(
        mode='slide', crop_size=(448, 448), stride=(224, 224), bg_thresh=0.5)
    with torch.no_grad():
        slide = model.inference(inputs, [dict(m) for m in metas])
        model.test_cfg.mode = 'whole'
        whole = model.inference(inputs, [dict(m) for m in metas])
    assert slide.shape == (1, 21, 224, 320)
    torch.testing.assert_close(slide, whole, rtol=0, atol=0)


def test_image_smaller_than_a_patch_after_resizing(tmp_path):
    """A 640x10 strip (64:1, the most elongated file accepted) resized to a
    long side of 512 keeps its aspect ratio: 512x8, less than one 16x16
    patch high. The error names the file and says so instead of failing
    deep in the network."""
    path = tmp_path / 'strip.png'
    Image.fromarray(np.zeros((10, 640, 3), np.uint8)).save(path)
    pipeline = list(PIPELINE)
    pipeline[1] = dict(type='Resize', scale=(512, 448), keep_ratio=True)
    with pytest.raises(
            ImageSizeError,
            match=r'strip.png \(10x640, 8x512 after the test pipeline\): '
            r'Image \(8, 448\) is smaller than one 16x16 patch'):
        predict(build_small_segmentor(), path, pipeline=pipeline)
