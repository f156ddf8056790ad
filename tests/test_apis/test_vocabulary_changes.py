# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Changing the vocabulary of a built model: class embeddings follow
transformers' text tower (synonyms and templates averaged as documented in
``groupvit_common.vocabulary``), outputs equal those of a model built
with the new vocabulary, and nothing stale is served from the cache."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmseg.apis import init_model
from mmseg.utils import tokenize

from groupvit_common.errors import ConfigValueError
from mmseg_groupvit.utils import get_templates
from .conftest import PHOTO

ATOL = 2e-5


def reference_embeddings(hf, classes, templates):
    """Class embeddings from transformers: every (synonym x template) prompt
    through ``get_text_features`` (projected, not normalised), the mean per
    class, then L2-normalised."""
    embeds = []
    for names in classes:
        prompts = [t.format(n) for n in names for t in templates]
        with torch.no_grad():
            feats = hf.get_text_features(
                input_ids=tokenize(prompts)).pooler_output
        embeds.append(F.normalize(feats.mean(0), dim=-1))
    return torch.stack(embeds)


def build(small, vocabulary=None, templates=None):
    """A model from the converted checkpoint, with its vocabulary set in
    the config (never changed after building)."""
    cfg = Config.fromfile(small.config)
    if vocabulary is not None:
        cfg.model.text_encoder.vocabulary = vocabulary
        cfg.model.decode_head.num_classes = len(vocabulary) + 1
    if templates is not None:
        cfg.model.text_encoder.templates = templates
    return init_model(cfg, small.checkpoint, device='cpu')


@pytest.fixture(scope='module')
def window(small):
    """The photo as the model sees it, cropped to one 448x448 window."""
    model = build(small)
    pipeline = [
        t for t in model.cfg.test_pipeline if t['type'] != 'LoadAnnotations'
    ]
    data = Compose(pipeline)(dict(img_path=PHOTO))
    inputs = model.data_preprocessor(pseudo_collate([data]), False)['inputs']
    return inputs[..., :448, :448]


def scores(model, window):
    with torch.no_grad():
        return model._forward(window)


def test_vocabulary_changed_twice_follows(small, window, tmp_path):
    model = build(small)  # the VOC classes
    voc = scores(model, window)
    first = [['person'], ['bicycle', 'bike'], ['road']]
    vocab_file = tmp_path / 'vocab.txt'
    vocab_file.write_text('background\ntree, trees\nperson, people, rider\n'
                          'helmet\nwall\n')
    second = [['tree', 'trees'], ['person', 'people', 'rider'], ['helmet'],
              ['wall']]

    # 1: a list with synonyms, default 'simple' template.
    model.set_vocabulary(['person', 'bicycle, bike', ['road']])
    assert model.text_encoder.classes == first
    with torch.no_grad():
        embeds_1 = model.text_encoder()
    torch.testing.assert_close(
        embeds_1,
        reference_embeddings(small.hf, first, ['a photo of a {}.']),
        atol=ATOL,
        rtol=0)
    out_1 = scores(model, window)
    assert out_1.shape[1] == 4
    torch.testing.assert_close(
        out_1, scores(build(small, first), window), atol=0, rtol=0)

    # 2: a vocabulary file and the 7 'subset' templates.
    model.set_vocabulary(str(vocab_file), templates='subset')
    assert model.text_encoder.classes == second
    assert model.dataset_meta['classes'] == [
        'background', 'tree', 'person', 'helmet', 'wall'
    ]
    with torch.no_grad():
        embeds_2 = model.text_encoder()
    torch.testing.assert_close(
        embeds_2,
        reference_embeddings(small.hf, second, get_templates('subset')),
        atol=ATOL,
        rtol=0)
    out_2 = scores(model, window)
    assert out_2.shape[1] == 5
    torch.testing.assert_close(
        out_2, scores(build(small, second, 'subset'), window), atol=0, rtol=0)

    # Back to the first vocabulary: the same embeddings and scores again.
    model.set_vocabulary(first, templates='simple')
    with torch.no_grad():
        torch.testing.assert_close(
            model.text_encoder(), embeds_1, atol=0, rtol=0)
    torch.testing.assert_close(scores(model, window), out_1, atol=0, rtol=0)
    # The VOC classes still give the VOC scores.
    model.set_vocabulary(dataset_name='voc')
    torch.testing.assert_close(scores(model, window), voc, atol=0, rtol=0)


def test_synonyms_combine_as_documented(small):
    """Every prompt of every synonym weighs the same in one mean, taken
    before normalising: so a class with synonyms is neither the first
    name's embedding nor the mean of the per-name unit vectors."""
    templates = ['a photo of a {}.', 'art of the {}.']
    model = build(small, [['dog', 'puppy', 'hound']], templates)
    with torch.no_grad():
        got = model.text_encoder()[0]
        feats = small.hf.get_text_features(
            input_ids=tokenize([
                t.format(n) for n in ['dog', 'puppy', 'hound']
                for t in templates
            ])).pooler_output
    torch.testing.assert_close(
        got, F.normalize(feats.mean(0), dim=-1), atol=ATOL, rtol=0)
    dog = reference_embeddings(small.hf, [['dog']], templates)[0]
    per_name = F.normalize(
        reference_embeddings(small.hf, [['dog'], ['puppy'], ['hound']],
                             templates).mean(0),
        dim=-1)
    assert (got - dog).abs().max() > 1e-3
    assert (got - per_name).abs().max() > 1e-4


@pytest.mark.parametrize(
    'templates',
    ['full', 'identity', ['a photo of a {}.', 'a drawing of the {}.']])
def test_templates_by_name_or_list(small, templates):
    model = build(small)
    model.set_vocabulary(['cat', 'dog'], templates=templates)
    expected = get_templates(templates)
    assert model.text_encoder.templates == expected
    assert len(model.text_encoder.prompts()[0]) == len(expected)
    with torch.no_grad():
        got = model.text_encoder()
    torch.testing.assert_close(
        got,
        reference_embeddings(small.hf, [['cat'], ['dog']], expected),
        atol=ATOL,
        rtol=0)


def test_editing_classes_in_place_is_not_served_stale(small, window):
    model = build(small, [['cat'], ['dog']])
    with torch.no_grad():
        before = model.text_encoder()
        model.text_encoder.classes[1] = ['wolf']
        model.text_encoder.templates = ['art of the {}.']
        after = model.text_encoder()
    torch.testing.assert_close(
        after,
        reference_embeddings(small.hf, [['cat'], ['wolf']],
                             ['art of the {}.']),
        atol=ATOL,
        rtol=0)
    assert not np.allclose(before.numpy(), after.numpy(), atol=1e-3)


def test_bad_vocabularies_are_named(small, tmp_path):
    model = build(small)
    with pytest.raises(ValueError, match="'cat'.*'Cat'"):
        model.set_vocabulary(['cat', 'Cat'])
    # Every problem of the text options is the user's: one error type.
    with pytest.raises(ConfigValueError, match='does not exist'):
        model.set_vocabulary(str(tmp_path / 'missing.txt'))
    with pytest.raises(ConfigValueError, match='must be a str'):
        model.set_vocabulary(['cat'], templates=['a {}.', 3])
    with pytest.raises(ValueError, match='Unknown prompt template set'):
        model.set_vocabulary(['cat'], templates='fancy')
    with pytest.raises(ValueError, match='only "background"'):
        model.set_vocabulary(['background'])
    # A failed change leaves the model as it was.
    assert model.dataset_meta['classes'][1:3] == ['aeroplane', 'bicycle']


def test_a_vocabulary_given_replaces_one_this_machine_lacks(small, tmp_path):
    """The config is checked with the vocabulary that is built: one given
    to ``init_groupvit`` (``tools/demo.py --vocab``) replaces the config's
    (a file of another machine, or one that a head without a background
    channel refuses); the config's own is named before any checkpoint is
    looked for."""
    from mmseg_groupvit.apis import init_groupvit
    config = tmp_path / 'elsewhere.py'
    config.write_text(f'_base_ = [{small.config!r}]\n'
                      f'model = dict(text_encoder=dict(dataset_name=None, '
                      f'vocabulary={str(tmp_path / "missing.txt")!r}))\n')
    model = init_groupvit(
        str(config), small.checkpoint, vocabulary=['cat', 'dog'])
    assert model.dataset_meta['classes'] == ['background', 'cat', 'dog']
    with pytest.raises(ConfigValueError, match='missing.txt.*does not exist'):
        init_groupvit(str(config), 'http://127.0.0.1:9/unreachable.pth')
    no_bg = dict(
        cfg_options={
            'model.text_encoder.vocabulary': ['background', 'cat', 'dog'],
            'model.decode_head.with_bg': False
        })
    model = init_groupvit(
        small.config, small.checkpoint, vocabulary=['cat', 'dog'], **no_bg)
    assert model.dataset_meta['classes'] == ['cat', 'dog']
    with pytest.raises(ConfigValueError, match='every label would shift'):
        init_groupvit(small.config, small.checkpoint, **no_bg)
