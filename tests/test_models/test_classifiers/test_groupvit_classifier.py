# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViTClassifier against the original code and transformers
(reference fixture A), and the segmentor's checkpoints."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.datasets.imagenet import imagenet_classes, imagenet_wnids
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import REPO, SMALL_ARCH, varied_segmentor

LOGIT_TOL = 1e-5


def classifier_cfg(vocabulary=None, dataset_name='voc20', **text):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'classification', 'groupvit_imagenet.py'))
    cfg.model.image_encoder.update(SMALL_ARCH['image_encoder'])
    cfg.model.text_encoder.update(SMALL_ARCH['text_encoder'])
    cfg.model.text_encoder.update(
        vocabulary=vocabulary, dataset_name=dataset_name, **text)
    return cfg


@pytest.fixture(scope='module')
def reference(fixture_a):
    return np.load(osp.join(fixture_a, 'reference.npz'))


@pytest.fixture(scope='module')
def fixture_classifier(fixture_a, reference, tmp_path_factory):
    """The fixture's weights (NVlabs layout, converted) in a classifier
    whose vocabulary is the fixture's 20 VOC prompt names."""
    out = tmp_path_factory.mktemp('cls')
    info = convert_checkpoint(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'),
        str(out / 'nv.pth'),
        arch_config=osp.join(fixture_a, 'nvlabs_config.json'))
    seg_cfg = Config.fromfile(info['config'])
    model_cfg = ConfigDict(
        type='GroupViTClassifier',
        image_encoder=seg_cfg.model.image_encoder,
        text_encoder=dict(
            seg_cfg.model.text_encoder,
            dataset_name=None,
            vocabulary=[str(c) for c in reference['class_names'][1:]],
            templates='simple'))
    model = MODELS.build(model_cfg)
    load_checkpoint(model, str(out / 'nv.pth'), map_location='cpu')
    return model.eval()


def test_logits_equal_the_original_and_transformers(fixture_classifier,
                                                    reference):
    model = fixture_classifier
    prompts = [p for c in model.text_encoder.prompts() for p in c]
    assert prompts == [str(p) for p in reference['prompts']]
    with torch.no_grad():
        logits = model(
            torch.from_numpy(reference['img224_input']), mode='tensor')
    nv = torch.from_numpy(reference['nv_logits_per_image_224'])
    # transformers scales by exp(logit_scale), unclamped.
    hf = torch.from_numpy(reference['hf_logits_per_image_224']) / float(
        np.exp(reference['logit_scale']))
    assert logits.shape == nv.shape == (3, 20)
    assert torch.allclose(logits, nv, atol=LOGIT_TOL, rtol=0)
    assert torch.allclose(logits, hf, atol=LOGIT_TOL, rtol=0)
    assert logits.argmax(1).tolist() == nv.argmax(1).tolist()
    assert logits.argmax(1).tolist() == hf.argmax(1).tolist()


def test_predict_scores_rank_like_the_logits(fixture_classifier, reference):
    model = fixture_classifier
    inputs = torch.from_numpy(reference['img224_input'])
    with torch.no_grad():
        samples = model(inputs, mode='predict')
        logits = model(inputs, mode='tensor')
    scale = min(float(np.exp(reference['logit_scale'])), 100.)
    for sample, row in zip(samples, logits):
        expected = torch.softmax(row * scale, dim=0)
        assert torch.allclose(sample.pred_score, expected, atol=1e-6)
        assert int(sample.pred_label) == int(row.argmax())
        assert abs(float(sample.pred_score.sum()) - 1) < 1e-5


def test_loads_a_segmentor_checkpoint_and_matches_its_embeddings():
    segmentor = varied_segmentor(seed=3)
    model = MODELS.build(classifier_cfg().model).eval()
    state = segmentor.state_dict()
    keys = list(state)
    # Strict: the segmentor's temperature is loaded under its own name.
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(state) == keys  # the caller's dict is not changed
    images = torch.randn(
        2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.image_embeddings(images)
        theirs = segmentor.contrastive(
            images, ['a'], return_loss=False)['image_embeds']
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.equal(model.logit_scale.detach(),
                       segmentor.decode_head.logit_scale.detach())


def test_refuses_a_checkpoint_of_another_architecture():
    model = MODELS.build(classifier_cfg().model)
    state = model.state_dict()
    state['image_encoder.pos_embed'] = torch.zeros(1, 4, 64)
    with pytest.raises(CheckpointError, match='pos_embed'):
        model.load_state_dict(state)


def test_imagenet_classes_are_the_original_1000():
    wnids, names = imagenet_wnids(), imagenet_classes()
    assert len(wnids) == len(set(wnids)) == len(names) == 1000
    assert wnids == sorted(wnids)
    assert (wnids[0], names[0]) == ('n01440764', 'tench')
    assert (wnids[-1], names[-1]) == ('n15075141', 'toilet paper')
    # The original's list repeats two names; both classes stay.
    assert names.count('missile') == names.count('sunglasses') == 2


def test_repeated_names_share_one_embedding():
    model = MODELS.build(
        classifier_cfg(dataset_name='imagenet', templates='subset').model)
    assert len(model.class_names) == 1000
    assert len(model.text_encoder.classes) == 998
    a, b = [i for i, n in enumerate(model.class_names) if n == 'missile']
    with torch.no_grad():
        embeds = model.class_embeddings()
    assert embeds.shape[0] == 1000
    assert torch.equal(embeds[a], embeds[b])
    assert not torch.equal(embeds[a], embeds[a + 1])


@pytest.mark.parametrize('clamp, scale', [(100., 100.), (None, 200.)])
def test_the_temperature_is_clamped_only_when_a_clamp_is_set(clamp, scale):
    """As the decode head: ``logit_scale_max=None`` keeps ``exp(s)``."""
    cfg = classifier_cfg().model
    cfg.logit_scale_max = clamp
    model = MODELS.build(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(200.))
        images = torch.randn(2, 3, 224, 224, generator=torch.manual_seed(0))
        cosine = model.logits(images)
        scores = torch.stack([s.pred_score for s in model.predict(images)])
    assert torch.allclose(scores, torch.softmax(cosine * scale, dim=-1))


def test_loss_mode_is_refused():
    model = MODELS.build(classifier_cfg().model)
    with pytest.raises(RuntimeError, match='zero-shot'):
        model(torch.zeros(1, 3, 224, 224), mode='loss')


def test_a_refused_vocabulary_change_leaves_the_classifier_as_it_was():
    """set_vocabulary refused by the text encoder (a template without
    ``{}``) had already renamed the classes: cat's probability was then
    reported as dog's."""
    from mmseg_groupvit.apis import classify_image, init_classifier
    photo = osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg')
    model = init_classifier(
        osp.join(REPO, 'configs', 'classification',
                 'groupvit_voc-dominant-sample.py'),
        random_weights=True,
        vocabulary=['cat', 'dog'])
    before = classify_image(model, photo)
    with pytest.raises(ValueError, match='replacement field'):
        model.set_vocabulary(['dog', 'cat', 'bird'], templates=['a photo'])
    assert classify_image(model, photo) == before
    assert model.class_names == ['cat', 'dog']


def test_classify_image_takes_an_array_as_inference_model():
    """A BGR uint8 array (as cv2.imread gives) ranks as its file; arrays
    the Pillow resize cannot take are refused as inference_model refuses
    them (it was "embedded null character in path" for every array)."""
    import cv2

    from groupvit_common.errors import ImageSizeError
    from mmseg_groupvit.apis import classify_image, init_classifier
    photo = osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg')
    model = init_classifier(
        osp.join(REPO, 'configs', 'classification',
                 'groupvit_voc-dominant-sample.py'),
        random_weights=True,
        vocabulary=['cat', 'dog', 'car'])
    array = cv2.imread(photo)
    assert classify_image(model, array) == classify_image(model, photo)
    assert classify_image(model, array.astype(np.int64)) == \
        classify_image(model, photo)
    with pytest.raises(ValueError, match='does not hold pixel values 0..255'):
        classify_image(model, array.astype(np.float32) / 255)
    with pytest.raises(ImageSizeError, match='the image array is empty'):
        classify_image(model, array[:0])
    for other in (array[..., 0], np.dstack([array, array[..., :1]]),
                  array.astype(np.float32)):
        with pytest.raises(
                ValueError,
                match='^classify_image takes an image array as '
                'cv2.imread gives it, HxWx3 uint8 BGR'):
            classify_image(model, other)
