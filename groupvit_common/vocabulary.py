# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Custom open vocabularies: class names with synonyms.

A vocabulary file is UTF-8 text with one class per line; the line's
comma-separated names are synonyms of that class::

    # my_vocabulary.txt
    background          # a leading 'background' is not prompted
    person, man, woman
    dog
    potted plant, houseplant

* ``#`` starts a comment that runs to the end of the line, so a name cannot
  contain ``#``. Blank lines and comment-only lines are ignored.
* Names are normalised to Unicode NFKC (a full-width ``ｃａｔ`` is ``cat``),
  stripped, and runs of whitespace become one space. Any Unicode text is
  allowed (note that the CLIP tokenizer lower-cases and that its BPE
  vocabulary is mostly English).
* A word (a run of characters without spaces) has at most
  :data:`MAX_WORD_CHARS` characters: the tokenizer's merging takes time
  quadratic in a word's length (a 50,000-letter name took 48 s), and a
  prompt holds 75 tokens, which such a word alone would nearly fill.
* A name may appear only once in the whole vocabulary, compared without
  case (the tokenizer lower-cases, so ``Dog`` and ``dog`` are the same
  prompt) and with look-alike letters taken as the same (a Cyrillic ``саt``
  prints as ``cat``): a repeated name would make its class ambiguous. The
  message shows the code points of look-alike names.

:func:`load_vocabulary` returns ``list[list[str]]``: entry ``k`` holds the
synonyms of class ``k`` (label ``k``), first name first.

**How synonyms are combined** (done by the text encoder, not here): for
class ``k`` with synonyms ``S_k`` and templates ``T``, every prompt
``t.format(s)`` for ``s`` in ``S_k`` and ``t`` in ``T`` is encoded and
projected; the **un-normalised projected** embeddings of those
``|S_k| x |T|`` prompts are averaged, and the mean is L2-normalised into
the class embedding ``[C]``. With one synonym this is exactly GroupViT's
template averaging (``build_text_embedding`` in ``NVlabs/GroupViT``,
spec §4); synonyms simply enlarge the set being averaged, with every prompt
weighted equally (a class with more synonyms does not weigh more, its
embedding is still one unit vector).
"""
import os
import os.path as osp
import string
import unicodedata
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple, Union

from .errors import ConfigValueError

__all__ = [
    'load_vocabulary', 'parse_class_list', 'check_words', 'check_template',
    'split_background', 'MAX_WORD_CHARS', 'MAX_WORDS'
]

#: Longest word (run of characters without spaces) of a class name; the
#: longest English dictionary words have 45 letters.
MAX_WORD_CHARS = 100

#: Most words of a class name or template. A prompt holds 75 tokens between
#: its start and end tokens and longer ones are cut (with a warning), as CLIP
#: does; this bound only keeps the tokenizer's time bounded.
MAX_WORDS = 1000

# Cyrillic and Greek letters that print like Latin ones (Unicode's
# confusables, the letters of the alphabets themselves).
_LOOK_ALIKES = str.maketrans(
    'аеорсухіјѕһԁԛԝӏАВЕКМНОРСТХУІЈЅ'
    'αοριυνκΑΒΕΖΗΙΚΜΝΟΡΤΥΧ', 'aeopcyxijshdqwlABEKMHOPCTXYIJS'
    'aopiuvkABEZHIKMNOPTYX')

VocabularyInput = Union[str, os.PathLike, Sequence[Union[str, Sequence[str]]]]

_FORMAT_HINT = ('Expected one class per line, synonyms separated by commas '
                "(e.g. 'person, man, woman'), '#' for comments.")


def _clean(name: str) -> str:
    """Normalise a name to NFKC, strip it and collapse its inner whitespace
    to single spaces."""
    return ' '.join(unicodedata.normalize('NFKC', name).split())


def _skeleton(name: str) -> str:
    """What a name looks like: look-alike letters as Latin, without case."""
    return name.translate(_LOOK_ALIKES).casefold()


def _shown(name: str) -> str:
    """A name, with the code points of its non-ASCII characters."""
    points = ', '.join(f'U+{ord(c):04X} {unicodedata.name(c, "?")}'
                       for c in dict.fromkeys(name) if not c.isascii())
    return f'{name!r} ({points})' if points else repr(name)


def check_words(texts: Sequence[str], where: str) -> None:
    """Refuse a text (class name, prompt template) that cannot be a prompt:
    a word of more than :data:`MAX_WORD_CHARS` characters, more than
    :data:`MAX_WORDS` words (a prompt holds 75 tokens), or an
    invisible or control character (a zero-width space makes ``cat`` and
    ``c\u200bat`` two classes that print alike; an escape sequence would
    reach the terminal).

    Raises:
        ValueError: Naming ``where``, the text's start and what is wrong.
    """
    for text in texts:
        hidden = [
            c for c in text
            if not c.isspace() and unicodedata.category(c) in ('Cc', 'Cf')
        ]
        if hidden:
            points = ', '.join(
                f'U+{ord(c):04X} {unicodedata.name(c, "")}'.strip()
                for c in dict.fromkeys(hidden))
            raise ValueError(
                f'{where}: {text[:40]!r} holds invisible or control '
                f'characters ({points}). Remove them.')
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
    """Split one vocabulary line into its synonyms.

    Args:
        line (str): The line, comment already removed.
        where (str): Where the line came from, for error messages.

    Returns:
        list[str]: Cleaned synonyms; empty if the line is blank.
    """
    if not line.strip():
        return []
    names = [_clean(name) for name in line.split(',')]
    if not all(names):
        raise ValueError(f'{where}: empty name in {line.strip()[:80]!r} (two '
                         f'commas in a row, or a leading/trailing comma). '
                         f'{_FORMAT_HINT}')
    check_words(names, where)
    return names


def _read_file(path: str) -> List[Tuple[List[str], str]]:
    """Read a vocabulary file into ``(synonyms, location)`` pairs."""
    if not osp.exists(path):
        raise FileNotFoundError(
            f'Vocabulary file {path!r} does not exist. Pass the path of a '
            f'text file or a list of class names. {_FORMAT_HINT}')
    if not osp.isfile(path):
        raise ValueError(f'Vocabulary path {path!r} is not a file. Pass a '
                         f'text file with one class per line.')
    try:
        with open(path, encoding='utf-8-sig') as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f'Vocabulary file {path!r} is not UTF-8 text '
                         f'({err}). Save it as UTF-8.') from None
    entries = []
    for lineno, line in enumerate(lines, start=1):
        where = f'{path}, line {lineno}'
        names = _split_line(line.split('#', 1)[0], where)
        if names:
            entries.append((names, where))
    return entries


def _read_list(items: Sequence) -> List[Tuple[List[str], str]]:
    """Read an in-memory vocabulary into ``(synonyms, location)`` pairs."""
    entries = []
    for index, item in enumerate(items):
        where = f'vocabulary entry {index}'
        if isinstance(item, str):
            # A string entry is read like a file line: commas split it.
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
            check_words(names, where)
        else:
            raise TypeError(
                f'{where} must be a str (synonyms separated by commas) or a '
                f'non-empty list of str, got {type(item).__name__}: '
                f'{item!r}.')
        entries.append((names, where))
    return entries


def _check_duplicates(entries: List[Tuple[List[str], str]]) -> None:
    """Raise if any name occurs more than once, compared without case and
    with look-alike letters as the same."""
    seen: Dict[str, List[str]] = defaultdict(list)
    for names, where in entries:
        for name in names:
            seen[_skeleton(name)].append((name, where))
    duplicates = [places for places in seen.values() if len(places) > 1]
    if duplicates:
        listed = '; '.join(', '.join(f'{_shown(name)} ({where})'
                                     for name, where in places)
                           for places in duplicates)
        raise ValueError(
            f'Duplicate class names in the vocabulary (compared without '
            f'case, look-alike letters as the same): {listed}. Each name may '
            f'appear once; merge the lines into one class or drop the '
            f'repeats.')


def load_vocabulary(path_or_list: VocabularyInput) -> List[List[str]]:
    """Load an open vocabulary from a text file or a list.

    Args:
        path_or_list (str | os.PathLike | Sequence): The path of a
            vocabulary file (format in the module docstring), or a sequence
            with one entry per class: either a str, split on commas like a
            file line (``'person, man'``), or a list of synonyms
            (``['person', 'man']``).

    Returns:
        list[list[str]]: K classes, each a non-empty list of its synonyms,
        in file order.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the vocabulary is empty, a name is empty, names are
            repeated (the message names them and where), or the file is not
            UTF-8.
        TypeError: If the input or an entry has the wrong type.

    Example:
        >>> load_vocabulary(['background', 'person, man', ['dog', 'puppy']])
        [['background'], ['person', 'man'], ['dog', 'puppy']]
    """
    if isinstance(path_or_list, (str, os.PathLike)):
        source = f'file {os.fspath(path_or_list)!r}'
        entries = _read_file(os.fspath(path_or_list))
    elif isinstance(path_or_list, Sequence):
        source = 'list'
        entries = _read_list(path_or_list)
    else:
        raise TypeError(
            f'A vocabulary must be a file path or a list of class names, got '
            f'{type(path_or_list).__name__}: {path_or_list!r}.')
    if not entries:
        raise ValueError(f'The vocabulary {source} has no class names (only '
                         f'blank lines or comments). {_FORMAT_HINT}')
    _check_duplicates(entries)
    return [names for names, _ in entries]


def parse_class_list(text: str, option: str = '--vocab') -> List[List[str]]:
    """A command-line vocabulary: classes separated by commas, synonyms of
    one class by ``|``.

    Args:
        text (str): E.g. ``'cat,dog|puppy'``.
        option (str): The option's name, for error messages.

    Returns:
        list[list[str]]: ``[['cat'], ['dog', 'puppy']]``, checked by
        :func:`load_vocabulary`.
    """
    classes = [[n.strip() for n in item.split('|')]
               for item in text.split(',')]
    if any(not all(names) for names in classes):
        raise ValueError(f'{option} {text!r} has an empty class name (two '
                         f'commas or "|" in a row, or one at an end).')
    return load_vocabulary(classes)


def split_background(classes: List[List[str]],
                     with_bg: bool = True) -> Tuple[List[List[str]], bool]:
    """The one rule of a leading ``background``: it names label 0, the
    head's background channel, and is not prompted.

    Args:
        classes (list[list[str]]): A vocabulary (:func:`load_vocabulary`).
        with_bg (bool): Whether the head has a background channel.

    Returns:
        tuple: The classes to prompt (without a leading ``background``) and
        whether it led.

    Raises:
        ConfigValueError: ``background`` leads but the head has no
            background channel (every label would shift by one), or it is
            the only class.
    """
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


def _render_field(name: str, spec: str, conversion: str) -> str:
    """Write a parsed format field back, e.g. ``'{0!r:>5}'``."""
    conversion = f'!{conversion}' if conversion else ''
    spec = f':{spec}' if spec else ''
    return '{' + name + conversion + spec + '}'


def check_template(template: str) -> str:
    """Check that a template has exactly one empty ``{}`` field.

    Literal braces may be written doubled (``'{{'``, ``'}}'``), as in
    :meth:`str.format`.

    Args:
        template (str): A prompt template such as ``'a photo of a {}.'``.

    Returns:
        str: ``template`` unchanged.

    Raises:
        TypeError: If ``template`` is not a str.
        ValueError: If it does not have exactly one ``{}`` field, if its
            braces are malformed, or if it has a word longer than
            :data:`MAX_WORD_CHARS`.
    """
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
        shown = ', '.join(_render_field(*field) for field in fields)
        raise ValueError(
            f'Prompt template {template!r} has {len(fields)} replacement '
            f'field(s) ({shown or "none"}), expected exactly one empty '
            f'one. {hint}')
    check_words([template], 'Prompt template')
    return template
