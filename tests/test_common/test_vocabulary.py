# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Parsing of custom vocabularies (files and lists)."""
import pathlib

import pytest

from mmseg_groupvit.utils import get_prompt_classes, load_vocabulary


def write(tmp_path, text, name='vocab.txt', encoding='utf-8'):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return str(path)


def test_file_with_comments_blanks_and_synonyms(tmp_path):
    path = write(tmp_path, '# my classes\n'
                 '\n'
                 'background   # not prompted\n'
                 '  person,man ,  woman  \n'
                 '\t\n'
                 'potted    plant, houseplant\n'
                 '   # indented comment\n'
                 'dog')  # no trailing newline
    assert load_vocabulary(path) == [['background'],
                                     ['person', 'man', 'woman'],
                                     ['potted plant', 'houseplant'], ['dog']]


def test_path_object_and_non_ascii(tmp_path):
    path = write(tmp_path, 'café, Straße\n猫\nżółw\n')
    assert load_vocabulary(pathlib.Path(path)) == [['café', 'Straße'], ['猫'],
                                                   ['żółw']]


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, 'cat\ndog\n', encoding='utf-8-sig')
    assert load_vocabulary(path) == [['cat'], ['dog']]


def test_list_input():
    vocabulary = ['background', 'person, man', ['dog', ' puppy '], ('cat', )]
    assert load_vocabulary(vocabulary) == [['background'], ['person', 'man'],
                                           ['dog', 'puppy'], ['cat']]


def test_real_prompt_lists_load_as_single_synonym_classes():
    for name in ['voc', 'context', 'coco_object']:
        names = get_prompt_classes(name)
        assert load_vocabulary(names) == [[n] for n in names]


def test_missing_file(tmp_path):
    missing = str(tmp_path / 'nope.txt')
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        load_vocabulary(missing)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(ValueError, match='is not a file'):
        load_vocabulary(str(tmp_path))


@pytest.mark.parametrize('text', ['', '\n\n', '# only a comment\n  # two\n'])
def test_empty_file(tmp_path, text):
    with pytest.raises(ValueError, match='no class names'):
        load_vocabulary(write(tmp_path, text))


def test_empty_list():
    with pytest.raises(ValueError, match='no class names'):
        load_vocabulary([])


def test_duplicates_are_named_with_their_lines(tmp_path):
    path = write(tmp_path, 'person, man\ndog\ncat\nman\n')
    with pytest.raises(ValueError, match='Duplicate') as info:
        load_vocabulary(path)
    message = str(info.value)
    assert "'man'" in message
    assert 'line 1' in message and 'line 4' in message
    assert "'dog'" not in message and "'cat'" not in message


def test_duplicates_ignore_case_and_spacing():
    with pytest.raises(ValueError, match="'Dog'.*'dog'"):
        load_vocabulary(['Dog', 'cat', 'dog'])
    with pytest.raises(ValueError, match='Duplicate'):
        load_vocabulary(['potted plant', 'potted  plant'])


def test_duplicate_synonym_within_a_class():
    with pytest.raises(ValueError, match="'cat'"):
        load_vocabulary(['cat, kitty, cat'])


@pytest.mark.parametrize('line', ['cat,,dog', 'cat,', ', cat'])
def test_empty_synonym(tmp_path, line):
    path = write(tmp_path, f'person\n{line}\n')
    with pytest.raises(ValueError, match='line 2: empty name'):
        load_vocabulary(path)


def test_not_utf8(tmp_path):
    path = tmp_path / 'latin1.txt'
    path.write_bytes('café\n'.encode('latin-1'))
    with pytest.raises(ValueError, match='not UTF-8'):
        load_vocabulary(str(path))


@pytest.mark.parametrize('bad', [5, None, [1], [[]], [['cat', 3]]])
def test_wrong_types(bad):
    with pytest.raises(TypeError):
        load_vocabulary(bad)


@pytest.mark.parametrize('bad', [[' '], [['cat', ' ']]])
def test_blank_entries(bad):
    with pytest.raises(ValueError, match='blank'):
        load_vocabulary(bad)
