# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Caption tokenization: the original's ``WordAugTokenizeWrapper`` and
``Tokenize(truncate=True)`` behaviour, and the two noun finders."""
import numpy as np
import pytest
import torch
from mmseg.utils import tokenize
from mmseg.utils.tokenizer import _tokenizer

from groupvit_common.errors import ConfigValueError
from mmseg_groupvit.datasets.pretraining import CaptionTokenize, rule_nouns
from mmseg_groupvit.utils import get_templates

EOT = _tokenizer.encoder['<end_of_text>']


def test_prompts_are_templated_candidate_words():
    np.random.seed(0)
    transform = CaptionTokenize(multi_label=3, tagger='rules')
    caption = 'a man riding his bicycle down the road'
    results = transform(dict(caption=caption))
    templates = get_templates('full')
    assert len(templates) == 80
    words = set()
    for prompt in results['prompts']:
        matches = [t for t in templates if _fills(t, prompt)]
        assert matches, prompt
        words.add(_fills(matches[0], prompt))
    # Three distinct words, verbs included, as the original's nouns.
    assert len(words) == 3 and words <= {'man', 'riding', 'bicycle', 'road'}
    assert torch.equal(results['text_tokens'],
                       tokenize([caption] + results['prompts']))


def _fills(template, prompt):
    head, tail = template.split('{}')
    if prompt.startswith(head) and prompt.endswith(tail):
        return prompt[len(head):len(prompt) - len(tail)]
    return None


def test_fewer_nouns_than_prompts_are_filled_with_the_caption():
    np.random.seed(0)
    results = CaptionTokenize(
        multi_label=3, tagger='rules')(
            dict(caption='the sky'))
    assert results['prompts'][1:] == ['the sky', 'the sky']
    assert _fills(
        next(
            t for t in get_templates('full')
            if _fills(t, results['prompts'][0])),
        results['prompts'][0]) == 'sky'
    # No noun or verb at all: every prompt is the caption.
    results = CaptionTokenize(
        multi_label=2, tagger='rules')(
            dict(caption='so very nice'))
    assert results['prompts'] == ['so very nice'] * 2


def test_a_caption_of_100000_characters_is_truncated_as_the_original():
    caption = ('a dog runs on the long beach near the blue sea ' *
               2100)[:100000]
    results = CaptionTokenize(multi_label=0)(dict(caption=caption))
    tokens = results['text_tokens']
    assert tokens.shape == (1, 77)
    # The original: the first 76 ids of the whole text, then end-of-text.
    ids = [_tokenizer.encoder['<start_of_text>']] + _tokenizer.encode(
        caption[:2000])
    assert tokens[0, :76].tolist() == ids[:76]
    assert tokens[0, 76] == EOT


def test_a_run_of_60000_letters_is_cut_to_100():
    """CLIP's BPE takes time quadratic in a run of letters (60,000: about
    18 s a sample): a run is cut to its first 100 letters; the words around
    it are unchanged."""
    word = ''.join(np.random.default_rng(0).choice(list('abcdefgh'), 60000))
    results = CaptionTokenize(multi_label=0)(
        dict(caption=f'a photo of\n{word} on the beach'))
    expected = tokenize([f'a photo of {word[:100]} on the beach'])
    assert torch.equal(results['text_tokens'], expected)


@pytest.mark.parametrize('caption', [
    'sunset at the pier http://www.flickr.com/photos/someone/' + '1' * 30 +
    '/in/set-72157600000000000/lightbox/?utm_source=share&id=abcdef',
    'a ' + '-'.join(['state', 'of', 'the', 'art'] * 9) + ' camera',
    '/'.join(['abcdefgh'] * 900) + ' tail',
])
def test_long_words_of_short_runs_are_tokenized_as_the_original(caption):
    """A URL, a long hyphenated word, 8,100 characters of short pieces:
    nothing is cut that the original's first 77 tokens hold."""
    results = CaptionTokenize(multi_label=0)(dict(caption=caption))
    assert torch.equal(results['text_tokens'], tokenize([caption]))


def test_rule_nouns_keep_open_class_words():
    assert rule_nouns('a man riding his bicycle down the road') == [
        'man', 'riding', 'bicycle', 'road'
    ]
    assert rule_nouns('two brown cows lying quietly on a beautiful beach') \
        == ['cows', 'lying', 'beach']


def test_nltk_without_its_data_names_the_command(monkeypatch, tmp_path):
    nltk = pytest.importorskip('nltk')
    monkeypatch.setattr(nltk.data, 'path', [str(tmp_path)])
    with pytest.raises(ConfigValueError) as error:
        CaptionTokenize(tagger='nltk')
    message = str(error.value)
    assert 'python -m nltk.downloader punkt_tab ' \
        'averaged_perceptron_tagger_eng' in message
    assert "tagger='rules'" in message
