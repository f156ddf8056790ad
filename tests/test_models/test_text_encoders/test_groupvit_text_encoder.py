# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViTTextEncoder: template and synonym averaging, exact truncated
encoding, caching and vocabulary changes."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.utils import tokenize
from mmseg.utils.tokenizer import _tokenizer

from groupvit_common.errors import ConfigValueError
from tests.conftest import SMALL_ARCH, randomise_batchnorm


def build_encoder(**kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='GroupViTTextEncoder', **SMALL_ARCH['text_encoder'])
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1) if p.dim() > 1 else None
    randomise_batchnorm(model)
    return model.eval()


def full_length_features(model, texts):
    """Encode all 77 positions (no truncation), pooled at the EOT token."""
    tokens = tokenize(texts)
    x = model.token_embedding(tokens) + model.positional_embedding
    for block in model.blocks:
        x = block(x, is_causal=True)
    x = model.final_norm(x)[torch.arange(len(texts)), tokens.argmax(-1)]
    return model.projector(x)


def test_truncated_encoding_is_exact():
    model = build_encoder(vocabulary=['cat'])
    texts = ['a photo of a cat.', 'a photo of a traffic light.', 'x']
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_text(texts),
            full_length_features(model, texts),
            atol=1e-5,
            rtol=1e-5)


def test_template_mean_before_normalisation():
    templates = ['a photo of a {}.', 'art of the {}.', 'itap of a {}.']
    model = build_encoder(vocabulary=['cat', 'dog'], templates=templates)
    with torch.no_grad():
        got = model()
        for i, name in enumerate(['cat', 'dog']):
            feats = model.encode_text([t.format(name) for t in templates])
            torch.testing.assert_close(got[i],
                                       F.normalize(feats.mean(0), dim=-1))
            # CLIP's normalise-then-average would differ here.
            clip_style = F.normalize(
                F.normalize(feats, dim=-1).mean(0), dim=-1)
            assert not torch.allclose(got[i], clip_style, atol=1e-4)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(2))


def test_synonyms_are_averaged_like_templates():
    model = build_encoder(vocabulary=[['cat', 'kitty'], 'dog'])
    with torch.no_grad():
        got = model()
        feats = model.encode_text(['a photo of a cat.', 'a photo of a kitty.'])
    torch.testing.assert_close(got[0], F.normalize(feats.mean(0), dim=-1))
    assert model.class_names == ['cat', 'dog']


def test_dataset_name_drops_background_and_vocabulary_wins():
    model = build_encoder(dataset_name='voc')
    assert len(model.classes) == 20 and model.class_names[10] == 'table'
    model = build_encoder(dataset_name='voc', vocabulary=['sky', 'sea'])
    assert model.class_names == ['sky', 'sea']


def test_cache_and_vocabulary_changes():
    model = build_encoder(vocabulary=['cat', 'dog'])
    with torch.no_grad():
        first = model()
        assert model() is first
        model.set_vocabulary(['dog', 'cat', 'bird'])
        second = model()
        assert second.shape[0] == 3
        torch.testing.assert_close(second[0], first[1])
        torch.testing.assert_close(second[1], first[0])
        # New weights loaded in place invalidate the cache.
        model.token_embedding.weight.mul_(2.0)
        third = model()
    assert not torch.allclose(third, second)


def test_chunked_encoding_equals_one_pass():
    names = [f'class {i}' for i in range(7)]
    one = build_encoder(vocabulary=names)
    chunked = build_encoder(vocabulary=names, chunk_size=2)
    with torch.no_grad():
        torch.testing.assert_close(one(), chunked(), atol=1e-6, rtol=1e-6)


def test_empty_vocabulary_is_named():
    with pytest.raises(ValueError, match='no class names'):
        build_encoder(vocabulary=[])
    with pytest.raises(ValueError, match='vocabulary'):
        build_encoder()


def test_long_prompt_warns_and_is_cut():
    model = build_encoder(vocabulary=['word ' * 100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with torch.no_grad():
            out = model()
    assert out.shape == (1, 32)
    assert any('longer than 77 tokens' in str(w.message) for w in caught)


def test_frozen_by_default():
    model = build_encoder(vocabulary=['cat'])
    assert not any(p.requires_grad for p in model.parameters())


def test_frozen_encoder_stays_in_eval_mode():
    model = build_encoder(vocabulary=['cat', 'dog'])
    with torch.no_grad():
        before = model().clone()
        model.train()
        assert not model.training and not model.projector.bn.training
        after = model()
    assert torch.equal(before, after)
    trainable = build_encoder(vocabulary=['cat'], frozen=False).train()
    assert trainable.training


@pytest.mark.parametrize('kwargs, message', [
    (dict(vocabulary=['cat', 'background']),
     '"background" is a name of the prompted class "background"'),
    (dict(vocabulary=['cat', 'sky, background']),
     '"background" is a name of the prompted class "sky, background"'),
    (dict(vocabulary=['background, void', 'cat']),
     'class "background, void", but it may only be the first class, alone'),
    (dict(dataset_name='voc', extra_classes=['background']),
     '"background" is a name of the prompted class "background"'),
    (dict(vocabulary=['t-shirt', 't - shirt']),
     "tokenize the same and would give identical prompts: 't-shirt' and "
     "'t - shirt'"),
    (dict(vocabulary=['tv/monitor', 'dog', 'tv / monitor']),
     "'tv/monitor' and 'tv / monitor'"),
    (dict(vocabulary=['cat'], extra_classes=['dog.', 'dog .'
                                             ]), "'dog.' and 'dog .'"),
    (dict(vocabulary=['cat'], extra_classes='grass'),
     "model.text_encoder.extra_classes 'grass' is neither a vocabulary file "
     'nor a list'),
    (dict(vocabulary='cat'), "model.text_encoder.vocabulary 'cat' is neither"),
    (dict(vocabulary=['cat'], chunk_size=0),
     'model.text_encoder.chunk_size must be a positive integer'),
])
def test_ambiguous_or_malformed_vocabulary_is_refused(kwargs, message):
    """A second background would be a prompted class named like label 0;
    names that the CLIP tokenizer turns into the same tokens would give two
    classes with identical embeddings (one could never win)."""
    with pytest.raises(ConfigValueError) as info:
        build_encoder(**kwargs)
    assert message in str(info.value)


def test_names_that_tokenize_differently_are_kept():
    # 'ice cream' is two tokens, 'icecream' one: distinct prompts.
    assert _tokenizer.encode('ice cream') != _tokenizer.encode('icecream')
    model = build_encoder(vocabulary=['background', 'icecream', 'ice cream'])
    assert model.class_names == ['icecream', 'ice cream']


def test_same_tokens_give_identical_embeddings():
    """The property the token check relies on: equal token ids, equal
    class embeddings."""
    assert tokenize(['a photo of a t-shirt.'
                     ]).equal(tokenize(['a photo of a t - shirt.']))
    model = build_encoder(vocabulary=['cat'])
    with torch.no_grad():
        first, second = model.encode_text(
            ['a photo of a t-shirt.', 'a photo of a t - shirt.'])
    assert torch.equal(first, second)
