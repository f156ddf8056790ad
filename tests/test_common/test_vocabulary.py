# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Parsing of custom vocabularies (files and lists)."""
import os
import pathlib

import pytest

from groupvit_common.errors import ConfigValueError, DataFileError
from groupvit_common.vocabulary import parse_class_list, resolve_classes
from mmseg_groupvit.utils import get_prompt_classes, load_vocabulary
from mmseg_groupvit.utils.templates import check_template


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


def test_a_file_larger_than_any_vocabulary_is_refused_unread(tmp_path):
    path = tmp_path / 'huge.txt'
    path.write_text('cat\n')
    os.truncate(path, 64 * 2**20 + 1)  # sparse: nothing is written
    with pytest.raises(DataFileError, match='larger than 67,108,864 bytes'):
        load_vocabulary(str(path))


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


def test_a_bar_in_a_file_line_is_refused_with_the_file_syntax(tmp_path):
    """``|`` separates synonyms on the command line only (there commas
    separate classes): in a file it would be prompted as part of one name
    ("a photo of a dog|puppy."), so the line is named with its fix."""
    path = write(tmp_path, 'cat\ndog|puppy, hound  # a comment\n')
    with pytest.raises(ValueError) as info:
        load_vocabulary(path)
    assert str(info.value).startswith(
        f"{path}, line 2: 'dog|puppy' holds \"|\", which separates "
        f'synonyms only on the command line')
    assert str(info.value).endswith(
        "Here commas separate synonyms: write 'dog, puppy, hound'.")
    # A full-width bar reads as "|" (NFKC), in the fix too.
    path = write(tmp_path, 'cat\ndog\uff5cpuppy\n')
    with pytest.raises(ValueError, match="write 'dog, puppy'.$"):
        load_vocabulary(path)


@pytest.mark.parametrize('entry, fix', [
    ('dog | puppy', "write 'dog, puppy'."),
    (['dog', 'puppy|pup'], 'Give each synonym as an item of the list.'),
])
def test_a_bar_in_a_list_entry_is_refused(entry, fix):
    with pytest.raises(ValueError) as info:
        load_vocabulary(['cat', entry])
    message = str(info.value)
    assert message.startswith('vocabulary entry 1: ') and '"|"' in message
    assert message.endswith(fix)


def test_the_command_line_splits_synonyms_on_bars():
    assert parse_class_list('cat,dog|puppy') == [['cat'], ['dog', 'puppy']]


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


def test_look_alike_names_are_duplicates_shown_with_their_code_points():
    # 'саt' starts with CYRILLIC SMALL LETTER ES and A: it prints as 'cat'.
    with pytest.raises(ValueError) as info:
        load_vocabulary(['cat', 'dog', '\u0441\u0430t'])
    message = str(info.value)
    assert "'cat' (vocabulary entry 0)" in message
    assert ("'саt' (U+0441 CYRILLIC SMALL LETTER ES, U+0430 CYRILLIC SMALL "
            "LETTER A) (vocabulary entry 2)") in message
    assert "'dog'" not in message
    # Greek capitals, and case: 'ΗΟRSE' (ETA, OMICRON) looks like 'horse'.
    with pytest.raises(ValueError, match=r'U\+0397 GREEK CAPITAL LETTER ETA'):
        load_vocabulary(['horse', '\u0397\u039fRSE'])
    # Names in other scripts that do not look like another name are kept.
    assert load_vocabulary(['кошка', 'cat', 'γάτα',
                            '寿司']) == [['кошка'], ['cat'], ['γάτα'], ['寿司']]


def test_names_are_nfkc_normalised(tmp_path):
    # Full-width letters and the 'ﬁ' ligature are the letters they show.
    assert load_vocabulary(['\uff43\uff41\uff54', '\ufb01sh']) == [['cat'],
                                                                   ['fish']]
    path = write(tmp_path, 'cat\n\uff43\uff41\uff54\n')
    with pytest.raises(ValueError, match='line 1.*line 2'):
        load_vocabulary(path)


def test_a_word_longer_than_the_bound_is_refused(tmp_path):
    # The documented bound: 100 characters.
    longest = 'a' * 100
    assert load_vocabulary([f'{longest} b'])[0] == [f'{longest} b']
    path = write(tmp_path, 'cat\ndog, ' + 'a' * 50000 + '\n')
    with pytest.raises(ValueError) as info:
        load_vocabulary(path)
    assert str(info.value).startswith(
        f'{path}, line 2: {"a" * 40!r}... has a word of 50,000 characters, '
        f'more than the 100 accepted')
    with pytest.raises(ValueError, match='vocabulary entry 0: .* 101 char'):
        load_vocabulary([['cat', longest + 'a']])
    with pytest.raises(ValueError, match='Prompt template: .* 101 char'):
        check_template('a photo of ' + longest + 'a {}.')


@pytest.mark.parametrize('text, words', [
    ('cat,c\u200bat,dog', 'U+200B ZERO WIDTH SPACE'),
    ('c\u00adat,dog', 'U+00AD SOFT HYPHEN'),
    ('cat\x1b[2J\x1b[31mPWNED,dog', 'U+001B'),
    ('dog\u202ekrap', 'U+202E RIGHT-TO-LEFT OVERRIDE'),
])
def test_invisible_and_control_characters_are_refused(text, words):
    """Names that would print alike (a zero-width space, a soft hyphen),
    reorder what is shown or reach the terminal as escapes."""
    with pytest.raises(ValueError, match='invisible or control') as error:
        parse_class_list(text)
    assert words in str(error.value)


def test_a_name_of_thousands_of_words_is_refused():
    """A prompt holds 75 tokens and longer ones are cut as CLIP does; a
    name of thousands of words (a 2 MB vocabulary file of one class took
    20 s to tokenize) is refused."""
    parse_class_list(' '.join(['word'] * 1000))
    with pytest.raises(ValueError, match='1,001 words, more than the 1,000'):
        parse_class_list(' '.join(['word'] * 1001))


def test_a_repeated_extra_class_is_numbered_as_given():
    """Each side of the repeat is numbered in its own list as the user gave
    it: the builtin list with its leading background (the label of a head
    with a background channel), the extra classes from 0."""
    label = list(get_prompt_classes('voc')).index('cat')
    with pytest.raises(ConfigValueError) as error:
        resolve_classes(None, 'voc', ['grass', 'Cat'], get_prompt_classes)
    assert f"'cat' (vocabulary entry {label}), 'Cat' (extra class 1)" in str(
        error.value)
