# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The text options of the command-line tools (``--vocab``,
``--vocab-file``, ``--extra-classes``, ``--templates``), read into what
:func:`mmseg_groupvit.apis.init_groupvit` takes."""
from typing import List, NamedTuple, Optional, Sequence

from groupvit_common.vocabulary import load_vocabulary, parse_class_list
from .templates import get_templates

__all__ = ['TextOptions', 'read_text_options', 'read_templates']


class TextOptions(NamedTuple):
    """Vocabulary, extra classes and templates of a command line; None for
    an option not given (the config's then).

    Attributes:
        vocabulary (list[list[str]] | None): Classes, synonyms per class.
        extra_classes (list[list[str]] | None): Classes appended to the
            vocabulary.
        templates (list[str] | None): Templates, each with one ``{}``.
    """
    vocabulary: Optional[List[List[str]]]
    extra_classes: Optional[List[List[str]]]
    templates: Optional[List[str]]


def read_templates(templates: Optional[Sequence[str]]) -> Optional[List[str]]:
    """``--templates``: one set name (``simple``, ``subset``, ``full``,
    ``identity``) or templates with one ``{}`` each.

    Args:
        templates (Sequence[str], optional): The option's values.

    Returns:
        list[str] | None: The templates; None without the option.

    Raises:
        ValueError: Unknown set name, or a template without its ``{}``.
    """
    if templates is None:
        return None
    if len(templates) == 1 and '{' not in templates[0]:
        return get_templates(templates[0])
    return get_templates(list(templates))


def read_text_options(
        vocab: Optional[str] = None,
        vocab_file: Optional[str] = None,
        extra_classes: Optional[str] = None,
        templates: Optional[Sequence[str]] = None) -> TextOptions:
    """Read the text options of a command line.

    Args:
        vocab (str, optional): ``--vocab``: classes separated by commas,
            synonyms by ``|`` (see :func:`parse_class_list`).
        vocab_file (str, optional): ``--vocab-file`` (used without
            ``vocab``).
        extra_classes (str, optional): ``--extra-classes``, same form as
            ``vocab``.
        templates (Sequence[str], optional): ``--templates`` (see
            :func:`read_templates`).

    Returns:
        TextOptions: What was given, read and checked.

    Raises:
        FileNotFoundError: The vocabulary file does not exist.
        ValueError: A malformed vocabulary or template, naming the option.
        TypeError: A value of the wrong type.
    """
    vocabulary = None
    if vocab is not None:
        vocabulary = parse_class_list(vocab, '--vocab')
    elif vocab_file is not None:
        vocabulary = load_vocabulary(vocab_file)
    extra = None
    if extra_classes is not None:
        extra = parse_class_list(extra_classes, '--extra-classes')
    return TextOptions(vocabulary, extra, read_templates(templates))
