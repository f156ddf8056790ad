# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Reproduce the original GroupViT code's outputs (reference fixture A).

The fixture holds a small GroupViT saved by the NVlabs code, the same weights
in the transformers layout, and the original code's outputs on three real
photos (see its README). It lives in ``../shared/fixtures`` and these tests
are skipped, with the reason, where it is absent.
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from mmseg_groupvit.models.decode_heads import group_maps
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint

EMBED_TOL = 1e-5
SCORE_TOL = 1e-4


@pytest.fixture(scope='module')
def reference(fixture_a):
    return np.load(osp.join(fixture_a, 'reference.npz'))


@pytest.fixture(scope='module')
def converted(fixture_a, tmp_path_factory):
    out = tmp_path_factory.mktemp('converted')
    nv = convert_checkpoint(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'),
        str(out / 'nvlabs' / 'model.pth'),
        arch_config=osp.join(fixture_a, 'nvlabs_config.json'))
    hf = convert_checkpoint(
        osp.join(fixture_a, 'hf'), str(out / 'hf' / 'model.pth'))
    return nv, hf, out


@pytest.fixture(scope='module')
def model(converted):
    _, hf, out = converted
    cfg = Config.fromfile(hf['config'])
    init_default_scope('mmseg')  # module scope: before the autouse fixture
    segmentor = MODELS.build(ConfigDict(cfg.model))
    load_checkpoint(segmentor, hf['config'][:-3] + '.pth', map_location='cpu')
    segmentor.cfg = cfg
    return segmentor.eval()


def test_both_layouts_convert_to_the_same_checkpoint(converted, fixture_a):
    nv, hf, out = converted
    a = torch.load(out / 'nvlabs' / 'model.pth')['state_dict']
    b = torch.load(out / 'hf' / 'model.pth')['state_dict']
    # The NVlabs layout also keeps the multi-label loss's temperature, for
    # pretraining to continue (transformers' layout has none); every other
    # tensor is the same, bit for bit.
    assert set(a) - set(b) == {'multi_label_logit_scale'}
    assert set(b) <= set(a)
    assert all(torch.equal(a[k], b[k]) for k in b)
    original = torch.load(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'), weights_only=True)['model']
    assert torch.equal(a['multi_label_logit_scale'],
                       original['multi_label_logit_scale'])
    for arch in (nv['arch'], hf['arch']):
        assert arch['image_encoder']['num_attention_heads'] == 4
        assert arch['text_encoder']['num_attention_heads'] == 1
    # Identical configs, bit for bit: the architecture decides the bytes,
    # not the source layout or path.
    assert (out / 'nvlabs' /
            'model.py').read_bytes() == (out / 'hf' / 'model.py').read_bytes()


def test_converted_keys_equal_model_keys(model, converted):
    state = torch.load(converted[2] / 'hf' / 'model.pth')['state_dict']
    assert set(state) == set(model.state_dict())


def test_embeddings(model, reference):
    with torch.no_grad():
        text = model.text_encoder()
        feats = model.image_encoder(
            torch.from_numpy(reference['img224_input']))
        image_x = feats['image_embeds']
        image_embed = torch.nn.functional.normalize(image_x, dim=-1)
        cosine = image_embed @ text.t()
    pairs = [
        (text, 'nv_text_embedding'),
        (image_x, 'nv_image_x_224'),
        (image_embed, 'nv_image_embed_224'),
        (feats['group_embeds'], 'nv_image_feat_224'),
        (cosine, 'nv_logits_per_image_224'),
    ]
    for ours, key in pairs:
        diff = (ours - torch.from_numpy(reference[key])).abs().max().item()
        assert diff <= EMBED_TOL, f'{key}: max abs diff {diff:.2e}'
    assert [str(p) for p in reference['prompts']] == [
        t.format(n) for n in model.text_encoder.class_names
        for t in model.text_encoder.templates
    ]


def test_tokens_and_text_features(model, reference):
    """The prompts' token ids and projected features (before the template
    mean and normalisation) equal the original's."""
    prompts = [str(p) for p in reference['prompts']]
    tokens = model.text_encoder.tokenize(prompts)
    np.testing.assert_array_equal(tokens.numpy(), reference['text_ids'])
    with torch.no_grad():
        text_x = model.text_encoder.encode_text(prompts)
    diff = (text_x - torch.from_numpy(reference['nv_text_x'])).abs().max()
    assert diff.item() <= EMBED_TOL, f'nv_text_x: max abs diff {diff:.2e}'


@pytest.mark.parametrize('i', [0, 1, 2])
def test_image_feature_of_the_whole_resized_image(model, reference, i):
    """The pooled feature of the whole resized image (671x448, 448x612 and
    448x448): the position table interpolated to the image's grid, square
    or not, as the original does (bicubic)."""
    inputs = torch.from_numpy(reference[f'img{i}_input'])
    with torch.no_grad():
        image_x = model.image_encoder(inputs)['image_embeds']
    ref = torch.from_numpy(reference[f'img{i}_nv_image_x_full'])
    assert image_x.shape == ref.shape
    diff = (image_x - ref).abs().max().item()
    assert diff <= EMBED_TOL, f'image {i}: max abs diff {diff:.2e}'


def test_logits_per_image_match_transformers(model, reference):
    prompts = [str(p) for p in reference['prompts']]
    images = torch.from_numpy(reference['img224_input'])
    with torch.no_grad():
        out = model.contrastive(images, prompts, return_loss=False)
    ref = torch.from_numpy(reference['hf_logits_per_image_224'])
    # Logits are cosines times exp(4.9) = 134: 1e-5 on the cosine.
    assert (out['logits_per_image'] - ref).abs().max().item() <= 134 * 1e-5
    hf_text = torch.from_numpy(reference['hf_text_embeds'])
    assert (out['text_embeds'] - hf_text).abs().max().item() <= EMBED_TOL


def check_scores(scores, labels, reference, i):
    ref_scores = torch.from_numpy(reference[f'img{i}_seg_logits'])
    assert scores.shape == ref_scores.shape
    close = ((scores - ref_scores).abs() <= SCORE_TOL).all(dim=1)
    assert close.float().mean().item() >= 0.9999, \
        f'image {i}: {close.float().mean().item():.6f} of pixels within ' \
        f'{SCORE_TOL}'
    same = (labels == reference[f'img{i}_label']).mean()
    assert same >= 0.999, f'image {i}: {same:.5f} of labels equal'


@pytest.mark.parametrize('i', [0, 1, 2])
def test_segmentation_from_exact_inputs(model, reference, i):
    inputs = torch.from_numpy(reference[f'img{i}_input'])
    height, width, h, w = (int(v) for v in reference[f'img{i}_hw'])
    meta = dict(img_shape=(h, w), ori_shape=(height, width), pad_shape=(h, w))
    with torch.no_grad():
        scores = model.inference(inputs, [meta])
    labels = torch.nn.functional.interpolate(
        scores, size=(height, width), mode='bilinear',
        align_corners=False).argmax(1)[0].numpy()
    check_scores(scores, labels, reference, i)


@pytest.mark.parametrize('i', [0, 1, 2])
def test_segmentation_through_mmseg_pipeline(model, reference, fixture_a, i):
    """LoadImageFromFile -> Resize -> SegDataPreProcessor -> slide inference
    -> postprocess_result, from the photo on disk."""
    shared = osp.dirname(osp.dirname(fixture_a))
    path = osp.join(shared, str(reference['image_files'][i]))
    pipeline = Compose(
        [t for t in model.cfg.test_pipeline if t['type'] != 'LoadAnnotations'])
    batch = model.data_preprocessor(
        pseudo_collate([pipeline(dict(img_path=path))]), False)
    inputs = batch['inputs']
    diff = (inputs - torch.from_numpy(reference[f'img{i}_input'])).abs()
    assert diff.max().item() <= 1e-4
    with torch.no_grad():
        metas = [s.metainfo for s in batch['data_samples']]
        scores = model.inference(inputs, metas)
        result = model.predict(inputs, batch['data_samples'])[0]
    labels = result.pred_sem_seg.data[0].numpy()
    assert labels.shape == reference[f'img{i}_label'].shape
    check_scores(scores, labels, reference, i)


def test_group_maps_and_scores_per_window(model, reference):
    """Per-window soft assignments, pixel-to-group maps and group scores of
    the first photo."""
    inputs = torch.from_numpy(reference['img0_input'])
    boxes = reference['img0_crop_boxes']
    for k, (y1, y2, x1, x2) in enumerate(boxes):
        window = inputs[:, :, y1:y2, x1:x2]
        with torch.no_grad():
            feats = model.image_encoder(window)
            for stage, soft in enumerate(feats['soft_assigns']):
                ref = reference[f'img0_crop{k}_attn_soft_stage{stage}']
                ref = torch.from_numpy(ref)[:, 0]
                assert (soft - ref).abs().max().item() <= EMBED_TOL
            scores = model.decode_head.group_class_scores(
                feats['group_embeds'], feats['image_embeds'],
                model.text_encoder())[0]
            pixel_group = group_maps(feats['soft_assigns'], feats['grid'],
                                     window.shape[-2:]).argmax(1)[0]
        same = (pixel_group.numpy() == reference[f'img0_crop{k}_group_map'])
        assert same.mean() >= 0.999
        ref_scores = torch.from_numpy(reference[f'img0_crop{k}_group_scores'])
        owned = ~torch.isnan(ref_scores[:, 0])
        # Reference rows are [background, K classes]; ours are the K.
        diff = (scores[owned] - ref_scores[owned][:, 1:]).abs().max().item()
        assert diff <= SCORE_TOL, f'window {k}: {diff:.2e}'
