# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The text options of the command-line tools, read as the tools document
them (``--vocab "cat,dog|puppy"``, one set name or templates)."""
import pytest

from mmseg_groupvit.utils.text_options import read_text_options


def test_nothing_given_keeps_the_config():
    assert tuple(read_text_options()) == (None, None, None)


def test_vocab_and_extra_classes_are_split_on_commas_and_bars():
    text = read_text_options(vocab='cat, dog|puppy', extra_classes='grass')
    assert text.vocabulary == [['cat'], ['dog', 'puppy']]
    assert text.extra_classes == [['grass']]
    assert text.templates is None


def test_vocab_file_is_read_when_no_vocab(tmp_path):
    path = tmp_path / 'vocab.txt'
    path.write_text('cat\ndog, puppy\n')
    assert read_text_options(vocab_file=str(path)).vocabulary == [['cat'],
                                                                  [
                                                                      'dog',
                                                                      'puppy'
                                                                  ]]
    # --vocab wins (argparse makes the two exclusive anyway).
    assert read_text_options(
        vocab='bird', vocab_file=str(path)).vocabulary == [['bird']]


def test_one_word_is_a_set_name_else_templates():

    def read_templates(templates):
        return read_text_options(templates=templates).templates

    assert read_templates(['identity']) == ['{}']
    assert read_templates(['a photo of a {}.']) == ['a photo of a {}.']
    assert read_templates(['a {}.',
                           'art of the {}.']) == ['a {}.', 'art of the {}.']
    assert read_templates(None) is None


@pytest.mark.parametrize('kwargs, match', [
    (dict(vocab='cat,,dog'), "--vocab 'cat,,dog' has an empty class name"),
    (dict(extra_classes='|sky'), '--extra-classes'),
    (dict(templates=['nonesuch']), 'nonesuch'),
    (dict(templates=['a photo', 'b {}']), 'a photo'),
])
def test_bad_options_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        read_text_options(**kwargs)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text_options(vocab_file=str(tmp_path / 'none.txt'))
