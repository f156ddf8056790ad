# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Compact prediction for large vocabularies gives mmseg's labels bit for
bit, without any dense ``[C, H, W]`` score map."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

import mmseg_groupvit.models.segmentors.groupvit_encoder_decoder as compact
from mmseg_groupvit.models.decode_heads import GroupViTHead
from tests.conftest import VOC_SAMPLE, build_small_segmentor, varied_segmentor

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='PackSegInputs')
]
DENSE, COMPACT = 1 << 62, 1
#: Two 500x375 photos (448x597 after the resize, padded to 448x608).
PAIR = ['2007_000123', '2007_000346']


class RegionHead(GroupViTHead):
    """A head whose compact scores cover many classes: 24 groups laid out in
    bands across the window, and a table drawn from the window's pixels
    with values on a 1/8 grid (so averaged and resized scores tie often).
    The dense path paints the same tables through :meth:`forward`."""

    groups = 24

    def assign(self, inputs, bg_thresh=None):
        images = inputs[0]
        batch, _, height, width = images.shape
        rows = torch.arange(height)[:, None] // 37
        cols = torch.arange(width)[None] // 53
        pixel_group = ((rows * 5 + cols * 3) % self.groups).expand(
            batch, height, width).contiguous()
        tables = []
        for image in images:
            seed = int(round(float(image.mean()) * 1e4)) % (1 << 31)
            gen = torch.Generator().manual_seed(seed)
            table = torch.randint(
                0, 9, (self.groups, self.num_classes), generator=gen) / 8
            tables.append(table)
        return pixel_group, torch.stack(tables)


def load_batch(model, names, flip=False):
    """Photos at the test resize; several are padded to a multiple of 32
    (bottom, right; ``padding_size`` in the metas), as mmseg can batch test
    images of one size."""
    pipeline = PIPELINE
    if len(names) > 1:
        model.data_preprocessor.test_cfg = dict(size_divisor=32)
    datas = [
        Compose(pipeline)(
            dict(img_path=osp.join(VOC_SAMPLE, 'JPEGImages', name + '.jpg')))
        for name in names
    ]
    batch = model.data_preprocessor(pseudo_collate(datas), False)
    if flip:
        for sample in batch['data_samples']:
            sample.set_metainfo(dict(flip=True, flip_direction='horizontal'))
    return batch


def predict(model, batch, budget, mode='slide', window_batch=2, bg_thresh=0.):
    model.test_cfg = ConfigDict(
        mode=mode,
        crop_size=(448, 448),
        stride=(224, 224),
        bg_thresh=bg_thresh,
        window_batch=window_batch,
        max_dense_scores_bytes=budget,
        max_full_size_scores_bytes=budget)
    samples = batch['data_samples']
    if samples is not None:
        samples = [sample.clone() for sample in samples]
    with torch.no_grad():
        return model.predict(batch['inputs'], samples)


def region_segmentor(num_classes=150):
    init_default_scope('mmseg')
    model = build_small_segmentor()
    model.set_vocabulary([f'thing {i}' for i in range(num_classes)])
    head = RegionHead(num_classes=num_classes + 1)
    head.eval()
    model.decode_head = head
    return model


@pytest.mark.parametrize('mode,window_batch,names,flip', [
    ('slide', 2, ['2007_000129'], False),
    ('slide', 1, PAIR, False),
    ('slide', 3, ['2007_000663'], True),
    ('whole', 1, PAIR, True),
])
@pytest.mark.slow
def test_compact_labels_equal_dense_labels(monkeypatch, mode, window_batch,
                                           names, flip):
    """Synthetic head, 151 classes with many ties, 7 classes per step:
    labels bit-identical to mmseg's dense path, including padded batches of
    two sizes, flipped metas and whole-image inference."""
    monkeypatch.setattr(compact, 'channels_per_step', lambda *args: 7)
    model = region_segmentor()
    batch = load_batch(model, names, flip)
    if len(names) > 1:
        assert batch['data_samples'][0].img_padding_size == (0, 11, 0, 0)
    dense = predict(model, batch, DENSE, mode, window_batch)
    result = predict(model, batch, COMPACT, mode, window_batch)
    for expected, got in zip(dense, result):
        labels = got.pred_sem_seg.data
        assert labels.shape == expected.pred_sem_seg.data.shape
        assert labels.shape[1:] == expected.metainfo['ori_shape']
        torch.testing.assert_close(
            labels, expected.pred_sem_seg.data, rtol=0, atol=0)
        assert labels.unique().numel() > 20
        assert 'seg_logits' not in got
        assert got.metainfo['score_channels'] == 151


def test_ties_keep_the_first_class(monkeypatch):
    """Two identical score columns: the label is never the later one, as
    with ``argmax``; the tie spans a step boundary (steps of 7)."""
    monkeypatch.setattr(compact, 'channels_per_step', lambda *args: 7)
    model = region_segmentor(20)
    real_assign = model.decode_head.assign

    def duplicated(inputs, bg_thresh=None):
        pixel_group, table = real_assign(inputs, bg_thresh)
        table = table.clone()
        table[..., 9] = table[..., 3]
        return pixel_group, table

    model.decode_head.assign = duplicated
    batch = load_batch(model, ['2007_000129'])
    dense = predict(model, batch, DENSE)[0].pred_sem_seg.data
    labels = predict(model, batch, COMPACT)[0].pred_sem_seg.data
    torch.testing.assert_close(labels, dense, rtol=0, atol=0)
    assert (labels == 3).any() and not (labels == 9).any()


def test_without_data_samples_labels_are_at_input_size():
    model = region_segmentor()
    batch = load_batch(model, ['2007_000129'])
    batch['data_samples'] = None
    dense = predict(model, batch, DENSE)[0].pred_sem_seg.data
    labels = predict(model, batch, COMPACT)[0].pred_sem_seg.data
    assert labels.shape[1:] == batch['inputs'].shape[2:]
    torch.testing.assert_close(labels, dense, rtol=0, atol=0)


def test_real_groupvit_head_with_background():
    """The GroupViT head itself (groups, gate, background threshold) on a
    real photo with the 150 ADE20K classes: compact labels equal dense."""
    init_default_scope('mmseg')
    model = varied_segmentor(text_encoder=True)
    model.set_vocabulary(dataset_name='ade20k')
    batch = load_batch(model, PAIR)
    for bg_thresh in (0.0, 0.5):
        dense = predict(model, batch, DENSE, bg_thresh=bg_thresh)
        result = predict(model, batch, COMPACT, bg_thresh=bg_thresh)
        for expected, got in zip(dense, result):
            torch.testing.assert_close(
                got.pred_sem_seg.data,
                expected.pred_sem_seg.data,
                rtol=0,
                atol=0)
        labels = torch.cat([r.pred_sem_seg.data.flatten() for r in result])
        assert labels.unique().numel() >= 3
        assert bool((labels == 0).any()) == (bg_thresh > 0)


@pytest.mark.slow
def test_no_dense_score_map_is_built(monkeypatch):
    """2000 classes on a real photo: every canvas and every resized step
    holds at most the step's classes (64 MiB), while the dense canvas would
    take 2.3 GB."""
    model = region_segmentor(2000)
    sizes = []
    real_interpolate, real_paint = F.interpolate, compact.paint_scores

    def recording(function):

        def wrapper(*args, **kwargs):
            out = function(*args, **kwargs)
            sizes.append(out.numel() * out.element_size())
            return out

        return wrapper

    monkeypatch.setattr(compact.F, 'interpolate', recording(real_interpolate))
    monkeypatch.setattr(compact, 'paint_scores', recording(real_paint))
    batch = load_batch(model, ['2007_000129'])
    model.test_cfg = ConfigDict(
        mode='slide', crop_size=(448, 448), stride=(224, 224))
    metas = [sample.metainfo for sample in batch['data_samples']]
    assert not model.keeps_seg_logits(batch['inputs'], metas)
    with torch.no_grad():
        result = model.predict(batch['inputs'], batch['data_samples'])[0]
    dense_bytes = 2001 * batch['inputs'][:, :1].numel() * 4
    assert dense_bytes > 2e9
    assert sizes and max(sizes) <= 64 << 20
    assert result.pred_sem_seg.data.shape == (1, 500, 334)
    assert 'seg_logits' not in result


def test_small_vocabularies_keep_mmseg_path():
    """The shipped protocols (21 classes at 448x671) keep mmseg's path and
    its ``seg_logits``."""
    init_default_scope('mmseg')
    model = build_small_segmentor()
    batch = load_batch(model, ['2007_000129'])
    model.test_cfg = ConfigDict(
        mode='slide', crop_size=(448, 448), stride=(224, 224))
    metas = [sample.metainfo for sample in batch['data_samples']]
    assert model.keeps_seg_logits(batch['inputs'], metas)
    with torch.no_grad():
        result = model.predict(batch['inputs'], batch['data_samples'])[0]
    assert result.seg_logits.data.shape == (21, 500, 334)
