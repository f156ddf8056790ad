# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The text options of the command-line tools, read into what
:func:`mmseg_groupvit.apis.init_groupvit` takes."""
from typing import List, NamedTuple, Optional, Sequence

from groupvit_common.vocabulary import parse_class_list, read_vocab_options
from .templates import get_templates


class TextOptions(NamedTuple):
    """The text options of a command line; None for one not given."""
    vocabulary: Optional[List[List[str]]]
    extra_classes: Optional[List[List[str]]]
    templates: Optional[List[str]]


def read_text_options(
        vocab: Optional[str] = None,
        vocab_file: Optional[str] = None,
        extra_classes: Optional[str] = None,
        templates: Optional[Sequence[str]] = None) -> TextOptions:
    """The text options of a command line, read and checked
    (``--vocab-file`` only without ``--vocab``; ``--templates`` one set
    name, or templates with one ``{}`` each)."""
    vocabulary, extra = read_vocab_options(vocab, vocab_file), None
    if extra_classes is not None:
        extra = parse_class_list(extra_classes, '--extra-classes')
    if templates is not None:
        one_name = len(templates) == 1 and '{' not in templates[0]
        templates = get_templates(
            templates[0] if one_name else list(templates))
    return TextOptions(vocabulary, extra, templates)
