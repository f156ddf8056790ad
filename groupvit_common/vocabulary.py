# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Open vocabularies: classes with synonyms from a file or a list, names
NFKC-normalised, each appearing once (without case, look-alikes as Latin).
"""
import os
import os.path as osp
import string
import unicodedata
from collections import defaultdict
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import ConfigValueError
from .files import read_text

#: Longest word of a class name (the longest English words have 45 letters).
MAX_WORD_CHARS = 100
#: Most words of a class name or template (a prompt holds 75 tokens).
MAX_WORDS = 1000

_LOOK_ALIKES = str.maketrans(
    'аеорсухіјѕһԁԛԝӏАВЕКМНОРСТХУІЈЅ'
    'αοριυνκΑΒΕΖΗΙΚΜΝΟΡΤΥΧ', 'aeopcyxijshdqwlABEKMHOPCTXYIJS'
    'aopiuvkABEZHIKMNOPTYX')

VocabularyInput = Union[str, os.PathLike, Sequence[Union[str, Sequence[str]]]]

_FORMAT_HINT = ('Expected one class per line, synonyms separated by commas '
                "(e.g. 'person, man, woman'), '#' for comments.")
#: The synonym separator of ``--vocab``, where commas separate classes.
_BAR = '|'


def _clean(name: str) -> str:
    return ' '.join(unicodedata.normalize('NFKC', name).split())


def _code_points(chars) -> str:
    return ', '.join(f'U+{ord(c):04X} {unicodedata.name(c, "")}'.strip()
                     for c in dict.fromkeys(chars))


def check_words(texts: Sequence[str],
                where: str,
                bar_fix: Optional[str] = None) -> None:
    """Raise ``ValueError`` (naming ``where``) for a text with too long a
    word, too many words, or an invisible or control character; with
    ``bar_fix``, for a ``|`` (it separates synonyms on the command line
    only, and would otherwise be prompted as part of one name)."""
    bar = next((text for text in texts if _BAR in text), None)
    if bar_fix is not None and bar is not None:
        raise ValueError(
            f'{where}: {bar[:80]!r} holds "|", which separates synonyms '
            f'only on the command line (--vocab "cat,dog|puppy", where '
            f'commas separate classes); it would be prompted as part of one '
            f'class name. {bar_fix}')
    for text in texts:
        hidden = [
            c for c in text
            if not c.isspace() and unicodedata.category(c) in ('Cc', 'Cf')
        ]
        if hidden:
            raise ValueError(
                f'{where}: {text[:40]!r} holds invisible or control '
                f'characters ({_code_points(hidden)}). Remove them.')
        words = text.split()
        word = max(words or [''], key=len)
        if len(word) > MAX_WORD_CHARS:
            raise ValueError(
                f'{where}: {text[:40]!r}... has a word of {len(word):,} '
                f'characters, more than the {MAX_WORD_CHARS} accepted (no '
                f'class name needs one; a 75-token prompt would hardly hold '
                f'it). Shorten it or put spaces in it.')
        if len(words) > MAX_WORDS:
            raise ValueError(
                f'{where}: {text[:40]!r}... has {len(words):,} words, more '
                f'than the {MAX_WORDS:,} accepted (a prompt holds 75 tokens; '
                f'the rest would be cut). Shorten it.')


def _split_line(line: str, where: str) -> List[str]:
    """The cleaned synonyms of one line (empty for a blank line)."""
    if not line.strip():
        return []
    names = [_clean(name) for name in line.split(',')]
    if not all(names):
        raise ValueError(f'{where}: empty name in {line.strip()[:80]!r} (two '
                         f'commas in a row, or a leading/trailing comma). '
                         f'{_FORMAT_HINT}')
    synonyms = ', '.join(
        filter(None,
               (_clean(part) for name in names for part in name.split(_BAR))))
    check_words(names, where,
                f'Here commas separate synonyms: write {synonyms[:80]!r}.')
    return names


def _read_file(path: str) -> Iterator[Tuple[List[str], str]]:
    """``(synonyms, location)`` of each class of a file."""
    if not osp.exists(path):
        raise FileNotFoundError(
            f'Vocabulary file {path!r} does not exist. Pass the path of a '
            f'text file or a list of class names. {_FORMAT_HINT}')
    if not osp.isfile(path):
        raise ValueError(f'Vocabulary path {path!r} is not a file. Pass a '
                         f'text file with one class per line.')
    lines = read_text(path, what='vocabulary file').splitlines()
    for lineno, line in enumerate(lines, start=1):
        where = f'{path}, line {lineno}'
        names = _split_line(line.split('#', 1)[0], where)
        if names:
            yield names, where


def _read_list(items: Sequence) -> Iterator[Tuple[List[str], str]]:
    """``(synonyms, location)`` of each entry of an in-memory vocabulary."""
    for index, item in enumerate(items):
        where = f'vocabulary entry {index}'
        if isinstance(item, str):  # read like a file line
            names = _split_line(item, where)
            if not names:
                raise ValueError(f'{where} is blank. Remove it or give a '
                                 f'class name.')
        elif isinstance(item, Sequence) and item and all(
                isinstance(name, str) for name in item):
            names = [_clean(name) for name in item]
            if not all(names):
                raise ValueError(f'{where} {list(item)!r} has a blank '
                                 f'synonym; remove it.')
            check_words(names, where,
                        'Give each synonym as an item of the list.')
        else:
            raise TypeError(
                f'{where} must be a str (synonyms separated by commas) or a '
                f'non-empty list of str, got {type(item).__name__}: '
                f'{item!r}.')
        yield names, where


def _shown(name: str) -> str:
    odd = [c for c in name if not c.isascii()]
    return f'{name!r} ({_code_points(odd)})' if odd else repr(name)


def refuse_repeats(entries: Sequence[Tuple[List[str], str]]) -> None:
    """Raise ``ValueError`` for a name given twice among the synonyms of
    ``entries`` (``(names, where)``), caseless, look-alikes as one."""
    seen = defaultdict(list)
    for names, where in entries:
        for name in names:
            seen[name.translate(_LOOK_ALIKES).casefold()].append((name, where))
    listed = '; '.join(', '.join(f'{_shown(name)} ({where})'
                                 for name, where in places)
                       for places in seen.values() if len(places) > 1)
    if listed:
        raise ValueError(
            f'Duplicate class names in the vocabulary (compared without '
            f'case, look-alike letters as the same): {listed}. Each name may '
            f'appear once; merge the lines into one class or drop the '
            f'repeats.')


def load_vocabulary(path_or_list: VocabularyInput) -> List[List[str]]:
    """Load an open vocabulary from a text file or a list.

    Args:
        path_or_list (str | os.PathLike | Sequence): A file (one class per
            line, commas between synonyms, ``#`` comments), or one entry per
            class: ``'person, man'`` or ``['person', 'man']``.

    Returns:
        list[list[str]]: K classes, each its synonyms, in order.
    """
    if isinstance(path_or_list, (str, os.PathLike)):
        source = f'file {os.fspath(path_or_list)!r}'
        entries = list(_read_file(os.fspath(path_or_list)))
    elif isinstance(path_or_list, Sequence):
        source = 'list'
        entries = list(_read_list(path_or_list))
    else:
        raise TypeError(
            f'A vocabulary must be a file path or a list of class names, got '
            f'{type(path_or_list).__name__}: {path_or_list!r}.')
    if not entries:
        raise ValueError(f'The vocabulary {source} has no class names (only '
                         f'blank lines or comments). {_FORMAT_HINT}')
    refuse_repeats(entries)
    return [names for names, _ in entries]


def parse_class_list(text: str, option: str = '--vocab') -> List[List[str]]:
    """A command-line vocabulary: ``'cat,dog|puppy'`` (classes separated by
    commas, synonyms by ``|``) -> ``[['cat'], ['dog', 'puppy']]``."""
    classes = [[n.strip() for n in item.split('|')]
               for item in text.split(',')]
    if any(not all(names) for names in classes):
        raise ValueError(f'{option} {text!r} has an empty class name (two '
                         f'commas or "|" in a row, or one at an end).')
    return load_vocabulary(classes)


def read_vocab_options(vocab: Optional[str],
                       vocab_file: Optional[str]) -> Optional[List[List[str]]]:
    """The vocabulary of ``--vocab`` (:func:`parse_class_list`), else of
    ``--vocab-file``; None when neither is given."""
    if vocab is not None:
        return parse_class_list(vocab, '--vocab')
    return None if vocab_file is None else load_vocabulary(vocab_file)


def split_background(classes: List[List[str]],
                     with_bg: bool = True) -> Tuple[List[List[str]], bool]:
    """The classes to prompt and whether ``background`` led: the one rule of
    a leading ``background`` (label 0, the head's background channel)."""
    first = bool(classes) and [n.casefold()
                               for n in classes[0]] == ['background']
    if first and not with_bg:
        raise ConfigValueError(
            'The vocabulary starts with "background", which names label 0 '
            'of a head with a background channel, but this head has none '
            '(model.decode_head.with_bg=False): its first prompted class '
            'would take label 0 and every label would shift by one. Remove '
            '"background" from the vocabulary, or use a head with '
            'with_bg=True.')
    if first and len(classes) == 1:
        raise ConfigValueError(
            'The vocabulary has only "background", which is not prompted; '
            'add the classes to segment.')
    return (classes[1:] if first else classes), first


def read_vocabulary(value: VocabularyInput, key: str) -> List[List[str]]:
    """:func:`load_vocabulary` of ``model.text_encoder.KEY``, naming a bare
    word given for a file."""
    if isinstance(value, (str, os.PathLike)) and not osp.exists(value) and \
            os.sep not in os.fspath(value) and \
            not osp.splitext(os.fspath(value))[1]:
        raise ConfigValueError(
            f'model.text_encoder.{key} {os.fspath(value)!r} is neither a '
            f'vocabulary file nor a list of class names. Give a list, e.g. '
            f'--cfg-options "model.text_encoder.{key}=[{value}]", or the '
            f'path of a text file with one class per line.')
    return load_vocabulary(value)


def distinct_classes(
        classes: List[List[str]]) -> Tuple[List[List[str]], List[int]]:
    """Distinct classes (caseless) and each class's index among them."""
    keys = [tuple(n.casefold() for n in names) for names in classes]
    first = {}
    for key, names in zip(keys, classes):
        first.setdefault(key, names)
    position = {key: i for i, key in enumerate(first)}
    return list(first.values()), [position[key] for key in keys]


def resolve_classes(vocabulary: Optional[VocabularyInput],
                    dataset_name: Optional[str],
                    extra_classes: Optional[VocabularyInput],
                    builtin: Callable[[str], Sequence[str]],
                    with_bg: bool = True) -> Tuple[List[List[str]], bool]:
    """The one reading of a text encoder config's classes: ``vocabulary``,
    else the ``builtin`` names of ``dataset_name`` (one class each, with
    ImageNet's repeats), without a leading ``background``, then
    ``extra_classes``, which repeat no name; and whether ``background``
    led (refused for a head without a background channel, ``with_bg``); a
    :class:`ConfigValueError` for a bad one."""
    if vocabulary is None and dataset_name is None:
        raise ConfigValueError(
            'The text encoder needs model.text_encoder.vocabulary (class '
            'names, synonym lists or a vocabulary file) or '
            'model.text_encoder.dataset_name (e.g. "voc" or "imagenet").')
    try:
        if vocabulary is None:
            classes = [[name] for name in builtin(dataset_name)]
        else:
            classes = read_vocabulary(vocabulary, 'vocabulary')
        classes, background_first = split_background(classes, with_bg)
        if extra_classes is not None:
            extra = read_vocabulary(extra_classes, 'extra_classes')
            unique, index = distinct_classes(classes)  # a builtin's repeats
            # Numbered as given, a leading background included.
            refuse_repeats([(names, 'vocabulary entry '
                             f'{index.index(i) + background_first}')
                            for i, names in enumerate(unique)] +
                           [(names, f'extra class {i}')
                            for i, names in enumerate(extra)])
            classes = classes + extra
    except (FileNotFoundError, TypeError, ValueError) as error:
        raise ConfigValueError(str(error)) from None
    check_background(classes)
    return [list(c) for c in classes], background_first


def check_background(classes: List[List[str]]) -> None:
    """Refuse ``background`` as a name of a prompted class (after
    :func:`split_background`): it names label 0, never prompted."""
    for names in classes:
        if any(name.casefold() == 'background' for name in names):
            raise ConfigValueError(
                f'"background" is a name of the prompted class '
                f'"{", ".join(names)}", but it may only be the first class, '
                f'alone: it names label 0, the background channel, which is '
                f'never prompted. Remove it from the vocabulary or the extra '
                f'classes.')


def check_template(template: str) -> str:
    """Return ``template`` if it is a str with exactly one empty ``{}``."""
    if not isinstance(template, str):
        raise TypeError(f'A prompt template must be a str, got '
                        f'{type(template).__name__}: {template!r}.')
    hint = ("Write exactly one '{}' where the class name goes, e.g. "
            "'a photo of a {}.'; write literal braces as '{{' and '}}'.")
    try:
        fields = [(name, spec, conv)
                  for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as err:
        raise ValueError(
            f'Prompt template {template!r} has malformed braces ({err}). '
            f'{hint}') from None
    if len(fields) != 1 or fields[0] != ('', '', None):
        shown = ', '.join('{' + name + (f'!{conv}' if conv else '') +
                          (f':{spec}' if spec else '') + '}'
                          for name, spec, conv in fields)
        raise ValueError(
            f'Prompt template {template!r} has {len(fields)} replacement '
            f'field(s) ({shown or "none"}), expected exactly one empty '
            f'one. {hint}')
    check_words([template], 'Prompt template')
    return template
