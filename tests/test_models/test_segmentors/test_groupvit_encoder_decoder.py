# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViTEncoderDecoder built from a shipped config: whole and slide
prediction on a real photo of odd size, class order, reproducibility and
vocabulary changes."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmseg.registry import MODELS

from groupvit_common.errors import ConfigValueError
from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE,
                            build_small_segmentor, varied_segmentor)

# 2007_000129 is 334 wide and 500 high (an odd size): resized to 448x671,
# two windows.
PHOTO = osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000129.jpg')
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='PackSegInputs')
]


def run(model, mode):
    model.test_cfg = ConfigDict(
        mode=mode, crop_size=(448, 448), stride=(224, 224), bg_thresh=0.95)
    data = Compose(PIPELINE)(dict(img_path=PHOTO))
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    with torch.no_grad():
        return model.predict(batch['inputs'], batch['data_samples'])[0]


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_predict_on_real_photo(mode):
    model = varied_segmentor(seed=1)
    result = run(model, mode)
    assert result.seg_logits.data.shape == (21, 500, 334)
    labels = result.pred_sem_seg.data[0]
    assert labels.shape == (500, 334)
    # Not a trivial prediction: background and a class are both present.
    assert (labels == 0).any() and (labels > 0).any()
    # The labels are the best-scoring channel of the scores.
    assert torch.equal(labels, result.seg_logits.data.argmax(0))
    # Reproducible: a second run gives the same labels bit for bit.
    assert torch.equal(run(model, mode).pred_sem_seg.data[0], labels)


def test_slide_equals_mean_of_windows():
    model = build_small_segmentor()
    result = run(model, 'slide')
    data = Compose(PIPELINE)(dict(img_path=PHOTO))
    inputs = model.data_preprocessor(pseudo_collate([data]), False)['inputs']
    assert inputs.shape[-2:] == (671, 448)
    with torch.no_grad():
        top = model._forward(inputs[..., :448, :])
        bottom = model._forward(inputs[..., 223:, :])
    canvas = torch.zeros(1, 21, 671, 448)
    count = torch.zeros(1, 1, 671, 448)
    canvas[..., :448, :] += top
    canvas[..., 223:, :] += bottom
    count[..., :448, :] += 1
    count[..., 223:, :] += 1
    expected = torch.nn.functional.interpolate(
        canvas / count, size=(500, 334), mode='bilinear', align_corners=False)
    torch.testing.assert_close(result.seg_logits.data, expected[0])


def test_class_order_follows_vocabulary():
    """Swapping two classes swaps their output channels."""
    model = build_small_segmentor()
    names = list(model.text_encoder.class_names)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        before = model._forward(x)
        names[0], names[5] = names[5], names[0]
        model.set_vocabulary(names)
        after = model._forward(x)
    torch.testing.assert_close(after[:, 1], before[:, 6])
    torch.testing.assert_close(after[:, 6], before[:, 1])
    torch.testing.assert_close(after[:, 0], before[:, 0])


def test_set_vocabulary_changes_class_count():
    model = build_small_segmentor()
    with torch.no_grad():
        model.set_vocabulary(['cat', 'grass', 'sky'])
        out = model._forward(torch.randn(1, 3, 64, 64))
    assert out.shape[1] == 4 and model.num_classes == 4


def test_contrastive_outputs():
    model = build_small_segmentor()
    images = torch.randn(3, 3, 224, 224)
    texts = ['a cat.', 'a dog.', 'a bird.']
    with torch.no_grad():
        out = model.contrastive(images, texts)
        # Two images against three texts: which side is which is in the
        # shapes.
        pair = model.contrastive(images[:2], texts, return_loss=False)
        image_embeds = model.image_encoder(images[:2])['image_embeds']
        text_embeds = model.text_encoder.encode_text(texts)
    scale = model.decode_head.logit_scale.exp()
    cosine = (F.normalize(text_embeds, dim=-1) @ F.normalize(
        image_embeds, dim=-1).t())  # [3 texts, 2 images]
    torch.testing.assert_close(pair['logits_per_text'], cosine * scale)
    torch.testing.assert_close(pair['logits_per_image'], cosine.t() * scale)
    assert 'loss' not in pair
    assert out['logits_per_image'].shape == (3, 3)
    cosine = out['image_embeds'] @ out['text_embeds'].t()
    torch.testing.assert_close(out['logits_per_image'], cosine * scale)
    target = torch.arange(3)
    expected = (
        torch.nn.functional.cross_entropy(cosine * scale, target) +
        torch.nn.functional.cross_entropy(cosine.t() * scale, target)) / 2
    torch.testing.assert_close(out['loss'], expected)


@pytest.mark.parametrize('with_bg,channels', [(True, 4), (False, 3)])
def test_vocabulary_alone_decides_the_classes(with_bg, channels):
    """The VOC config with a three-class vocabulary and no num_classes:
    the head follows the vocabulary (plus background with with_bg) and
    the model predicts one of those classes at every pixel."""
    model = build_small_segmentor(
        text_encoder=dict(vocabulary=['cat', 'grass', 'sky']),
        decode_head=dict(with_bg=with_bg))
    assert model.decode_head.num_classes == channels
    assert model.decode_head.out_channels == channels
    assert model.num_classes == model.out_channels == channels
    model.test_cfg = ConfigDict(mode='whole')
    with torch.no_grad():
        result = model.predict(torch.randn(1, 3, 64, 80))[0]
    assert result.seg_logits.data.shape == (channels, 64, 80)
    labels = result.pred_sem_seg.data
    assert labels.shape == (1, 64, 80)
    assert 0 <= int(labels.min()) and int(labels.max()) < channels


def test_configured_class_count_must_follow_the_vocabulary():
    """A num_classes left in a config is kept only when it agrees; a
    disagreeing one is refused naming both numbers, not overridden."""
    model = build_small_segmentor(
        text_encoder=dict(vocabulary=['cat', 'grass', 'sky']),
        decode_head=dict(num_classes=4))
    assert model.num_classes == 4
    with pytest.raises(
            ValueError,
            match='num_classes is 21 but the '
            'vocabulary has 3 classes plus background, so the '
            'head has 4 outputs'):
        build_small_segmentor(
            text_encoder=dict(vocabulary=['cat', 'grass', 'sky']),
            decode_head=dict(num_classes=21))
    # mmseg's head would refuse it with a message naming neither count.
    with pytest.raises(
            ConfigValueError,
            match='out_channels is 21 but the vocabulary has 3 classes plus '
            'background, so the head has 4 outputs'):
        build_small_segmentor(
            text_encoder=dict(vocabulary=['cat', 'grass', 'sky']),
            decode_head=dict(out_channels=21))
    assert build_small_segmentor(
        text_encoder=dict(vocabulary=['cat', 'grass', 'sky']),
        decode_head=dict(out_channels=4)).out_channels == 4


def test_asymetric_input_is_refused():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'groupvit_voc.py'))
    cfg.model.update(asymetric_input=True, encoder_resolution=0.5)
    with pytest.raises(ValueError, match='asymetric_input=True is not'):
        MODELS.build(cfg.model)


def test_checkpoint_check_leaves_the_state_dict_unchanged():
    """The strict check refuses a checkpoint naming the difference, and
    loading never changes the caller's state dict."""
    model = build_small_segmentor()
    state = model.state_dict()
    keys = list(state)
    model.load_state_dict(state)
    assert list(state) == keys
    bad = {k: v for k, v in state.items() if k != 'decode_head.logit_scale'}
    with pytest.raises(Exception, match='logit_scale'):
        model.load_state_dict(bad, strict=False)
    assert 'decode_head.logit_scale' not in bad


def test_background_first_needs_a_background_channel():
    """Without with_bg, a leading "background" would be dropped and "cat"
    would take label 0: every label shifted. Refused, when built and when
    changed, and a refused change leaves the model as it was."""
    vocabulary = ['background', 'cat', 'dog']
    with pytest.raises(ConfigValueError, match='every label would shift'):
        build_small_segmentor(
            text_encoder=dict(vocabulary=vocabulary),
            decode_head=dict(with_bg=False))
    model = build_small_segmentor(
        text_encoder=dict(vocabulary=['cat', 'dog']),
        decode_head=dict(with_bg=False))
    with pytest.raises(ConfigValueError, match='with_bg=False'):
        model.set_vocabulary(vocabulary)
    assert model.dataset_meta['classes'] == ['cat', 'dog']
    assert model.text_encoder.background_first is False
    assert model.num_classes == model.decode_head.out_channels == 2
    # With a background channel it names label 0, as before.
    with_bg = build_small_segmentor(text_encoder=dict(vocabulary=vocabulary))
    assert with_bg.dataset_meta['classes'] == vocabulary


def test_a_head_given_as_its_class_has_the_background_channel():
    """``type=GroupViTHead`` (lazy configs, scripts) without ``with_bg`` is
    the same model as ``type='GroupViTHead'``: channels, labels, and the
    protocol that tools/test.py prints after the config check."""
    from mmseg_groupvit.evaluation import run_lines
    from mmseg_groupvit.models.decode_heads import GroupViTHead
    from mmseg_groupvit.utils.config_file import read_config
    config = osp.join(REPO, 'configs', 'groupvit_voc.py')
    models, lines = [], []
    for head_type in ('GroupViTHead', GroupViTHead):
        cfg = Config.fromfile(config)
        cfg.model.decode_head = dict(type=head_type)
        lines.append(run_lines(read_config(cfg), config, None))
        cfg.model.image_encoder.update(SMALL_ARCH['image_encoder'])
        cfg.model.text_encoder.update(SMALL_ARCH['text_encoder'])
        torch.manual_seed(0)
        models.append(MODELS.build(cfg.model).eval())
    assert models[1].decode_head.with_bg and models[1].num_classes == 21
    inputs = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        labels = [m.predict(inputs)[0].pred_sem_seg.data for m in models]
    assert torch.equal(*labels)
    assert lines[0] == lines[1]
    assert '21 classes incl. background' in lines[1][3]
    assert 'bg_thresh 0.95' in lines[1][4]
