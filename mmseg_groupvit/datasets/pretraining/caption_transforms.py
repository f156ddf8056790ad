# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Captions to token ids, and a training sample to the model's inputs."""
from typing import List

import numpy as np
import regex
from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS
from mmseg.utils import tokenize

from groupvit_common.checks import check_choice, is_int
from groupvit_common.errors import ConfigValueError
from ...utils import get_templates
from .nouns import TAGGERS, NltkNouns, rule_nouns

#: Pieces kept per token of context (each piece CLIP's tokenizer splits a
#: text into, :data:`_PIECE`, gives at least one token).
PIECES_PER_TOKEN_KEPT = 4
_PIECE = regex.compile(r'\p{L}+|\p{N}|[^\s\p{L}\p{N}]+')
#: The longest run of letters, or of other signs, tokenized (a longer one
#: is web junk, and CLIP's BPE takes time quadratic in its length).
MAX_RUN_CHARS = 100
_LONG_RUN = regex.compile(rf'(\p{{L}}{{{MAX_RUN_CHARS}}})\p{{L}}+'
                          rf'|([^\s\p{{L}}\p{{N}}]{{{MAX_RUN_CHARS}}})'
                          rf'[^\s\p{{L}}\p{{N}}]+')


@TRANSFORMS.register_module()
class CaptionTokenize(BaseTransform):
    """The caption and ``multi_label`` noun prompts as token ids, as the
    original's ``WordAugTokenizeWrapper(..., word_type='noun')``: nouns
    drawn without replacement, each in a random template (missing prompts
    are the caption itself). Adds ``text_tokens`` (LongTensor
    ``[1 + multi_label, context_length]``) and ``prompts`` (list[str]).

    Args:
        multi_label (int): Prompts per caption ``K``. Defaults to 3.
        templates (str | list[str]): Template set or list. Defaults to
            'full' (the 80 ImageNet templates, the original's).
        tagger (str): ``'nltk'`` (the original's; needs nltk's data) or
            ``'rules'`` (no download). Defaults to 'nltk'.
        context_length (int): Defaults to 77.
        max_tagged_words (int): Words of a caption searched for nouns.
            Defaults to 1024.
    """

    def __init__(self,
                 multi_label: int = 3,
                 templates='full',
                 tagger: str = 'nltk',
                 context_length: int = 77,
                 max_tagged_words: int = 1024):
        if not is_int(multi_label) or multi_label < 0:
            raise ConfigValueError(
                f'CaptionTokenize(multi_label={multi_label!r}) must be the '
                f'number of noun prompts per caption (0 for none).')
        self.multi_label = multi_label
        self.templates = list(get_templates(templates))
        self.tagger = tagger
        self.find_nouns = None
        if multi_label:
            check_choice(tagger, 'CaptionTokenize.tagger', TAGGERS)
            self.find_nouns = NltkNouns() if tagger == 'nltk' else rule_nouns
        self.context_length = context_length
        self.max_tagged_words = max_tagged_words

    def prompts(self, caption: str) -> List[str]:
        """The ``multi_label`` prompt texts of ``caption``."""
        words = caption.split()
        if len(words) > self.max_tagged_words:
            caption = ' '.join(words[:self.max_tagged_words])
        nouns = self.find_nouns(caption) if caption.strip() else []
        prompts = []
        if nouns:
            chosen = np.random.choice(
                nouns, min(self.multi_label, len(nouns)), replace=False)
            prompts = [
                np.random.choice(self.templates).format(noun)
                for noun in chosen
            ]
        return prompts + [caption] * (self.multi_label - len(prompts))

    def _bounded(self, text: str) -> str:
        """``text`` as the original tokenizes it, but for runs of letters
        (or of other signs) past :data:`MAX_RUN_CHARS`, cut (CLIP's BPE
        takes time quadratic in a run's length), and for pieces past those
        a context can hold."""
        text = _LONG_RUN.sub(lambda m: m.group(1) or m.group(2), text)
        kept = self.context_length * PIECES_PER_TOKEN_KEPT
        for count, piece in enumerate(_PIECE.finditer(text)):
            if count == kept:
                return text[:piece.start()]
        return text

    def transform(self, results: dict) -> dict:
        caption = results['caption']
        prompts = self.prompts(caption) if self.multi_label else []
        texts = [self._bounded(text) for text in [caption] + prompts]
        results['text_tokens'] = tokenize(texts, self.context_length)
        results['prompts'] = prompts
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(multi_label={self.multi_label}, '
                f'templates={len(self.templates)}, tagger={self.tagger!r})')


@TRANSFORMS.register_module()
class PackCaptionInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` adding ``text_tokens`` to the data sample."""

    def __init__(self,
                 meta_keys=('img_path', 'ori_shape', 'img_shape', 'caption',
                            'flip')):
        super().__init__(meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        packed['data_samples'].text_tokens = results['text_tokens']
        return packed
