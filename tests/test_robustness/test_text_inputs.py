# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Words users type: non-ASCII names, over-long prompts and vocabularies of
thousands of classes."""
import warnings

import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.utils.tokenizer import _tokenizer

from tests.conftest import SMALL_ARCH, build_small_segmentor

EOT = 49407


def build_encoder(**kwargs):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='GroupViTTextEncoder', **SMALL_ARCH['text_encoder'],
            **kwargs))
    for param in model.parameters():
        if param.dim() > 1:
            torch.nn.init.normal_(param, std=0.1)
    return model.eval()


NON_ASCII = ['café', 'crème brûlée', '寿司', 'Ελιά', 'pizza 🍕', 'Straße']


def test_non_ascii_names_are_encoded_losslessly():
    # The byte-level BPE keeps every character (the tokenizer lower-cases).
    for name in NON_ASCII:
        ids = _tokenizer.encode(name)
        assert ids and _tokenizer.decode(ids).strip() == name.lower()
    model = build_encoder(vocabulary=NON_ASCII + ['cafe'])
    with torch.no_grad():
        embeds = model()
    assert embeds.shape == (7, 32) and torch.isfinite(embeds).all()
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(7))
    # Distinct names give distinct embeddings ('café' is not 'cafe').
    distance = torch.cdist(embeds, embeds) + torch.eye(7)
    assert distance.min() > 1e-3


def test_non_ascii_vocabulary_segments():
    model = build_small_segmentor()
    model.set_vocabulary(NON_ASCII)
    with torch.no_grad():
        out = model._forward(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 7, 64, 64)


def test_long_prompts_warn_once_and_are_cut_like_clip():
    words = ' '.join(f'word{i}' for i in range(120))
    model = build_encoder(
        vocabulary=[words, words + ' more', 'cat'], templates=['{}'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with torch.no_grad():
            embeds = model()
    messages = [
        str(w.message) for w in caught if '77 tokens' in str(w.message)
    ]
    assert len(messages) == 1
    assert messages[0].startswith('2 prompt(s) are longer than 77 tokens')
    assert 'were cut' in messages[0]
    # Cut as CLIP does: the first 76 tokens (start included) and the end
    # token, built here by hand from the BPE ids.
    ids = [49406] + _tokenizer.encode(words)[:75] + [EOT]
    with torch.no_grad():
        expected = F.normalize(
            model.encode_tokens(torch.tensor([ids])), dim=-1)[0]
    torch.testing.assert_close(embeds[0], expected)


def test_thousands_of_classes_are_encoded_in_bounded_chunks():
    """5000 classes: the transformer never sees more than ``chunk_size``
    prompts, nor more positions than the longest prompt needs, and the
    result equals encoding the classes on their own."""
    names = [f'object number {i}' for i in range(5000)]
    model = build_encoder(vocabulary=names, chunk_size=256)
    shapes = []
    model.blocks[0].register_forward_hook(
        lambda module, args, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        embeds = model()
    assert embeds.shape == (5000, 32)
    assert len(shapes) == 20  # ceil(5000 / 256) passes
    assert max(s[0] for s in shapes) == 256
    longest = max(len(_tokenizer.encode(f'a photo of a {n}.')) for n in names)
    assert max(s[1] for s in shapes) == longest + 2
    alone = build_encoder(vocabulary=[names[i] for i in (0, 2600, 4999)])
    with torch.no_grad():
        torch.testing.assert_close(
            alone(), embeds[[0, 2600, 4999]], atol=1e-6, rtol=1e-6)
