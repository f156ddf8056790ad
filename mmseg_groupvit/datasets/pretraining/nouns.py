# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Words of a caption that become prompts: those nltk tags
:data:`NOUN_TAGS` (the original's), or, needing no data, every word but
closed-class words, ``-ly`` adverbs and a few adjective endings."""
import re
from typing import List

from groupvit_common.errors import ConfigValueError

#: The Penn Treebank tags the original takes (``word_type='noun'``).
NOUN_TAGS = ('NN', 'NNS', 'NNP', 'VBG', 'VB', 'VBD', 'VBN', 'VBP', 'VBZ')
TAGGERS = ('nltk', 'rules')
NLTK_DATA = ('tokenizers/punkt_tab/english/',
             'taggers/averaged_perceptron_tagger_eng/')
NLTK_INSTALL = ('python -m nltk.downloader punkt_tab '
                'averaged_perceptron_tagger_eng')


class NltkNouns:
    """The original's words: nltk's tokenizer and tagger (ConfigValueError
    naming the install command when they are missing)."""

    def __init__(self):
        try:
            import nltk
            for resource in NLTK_DATA:
                nltk.data.find(resource)
        except (ImportError, LookupError) as error:
            missing = 'nltk' if isinstance(error, ImportError) else \
                'nltk\'s tokenizer and tagger data'
            raise ConfigValueError(
                f'{missing} not installed, which CaptionTokenize(tagger='
                f'\'nltk\') needs to find the nouns of the captions: run '
                f'`pip install nltk && {NLTK_INSTALL}` (or point NLTK_DATA '
                f'at a folder holding them), or use the tagger that needs '
                f'no data, tagger=\'rules\' (see docs/pretrain.md).') from None
        self._nltk = nltk

    def __call__(self, caption: str) -> List[str]:
        tagged = self._nltk.pos_tag(self._nltk.word_tokenize(caption))
        return [word for word, tag in tagged if tag in NOUN_TAGS]


# yapf: disable
_CLOSED = set('''
a an the this that these those each every some any no all both either
neither another such what which whose whatever
i me my mine you your yours he him his she her hers it its we us our ours
they them their theirs myself yourself himself herself itself ourselves
themselves
of in on at by for with about against between into through during before
after above below to from up down out off over under near across along
around behind beside besides beneath inside outside onto toward towards upon
within without among amongst via like than per
and or but nor so yet as if while because although though when where
whether whereas unless until
can could may might must shall should will would
not very too also just here there then now only really still almost quite
together away again ever never always often well back even rather much
more most less least soon already perhaps maybe
who whom how why
one two three four five six seven eight nine ten eleven twelve twenty
hundred thousand million
big small large little huge tiny tall short long old young new good bad
great nice beautiful pretty cute happy sad empty full open closed wooden
white black red blue green yellow brown orange pink purple gray grey dark
light bright colorful different many few several other same own first last
next hot cold warm wet dry clean dirty busy quiet fresh
'''.split())
_NOT_ADVERBS = set('''
family fly belly jelly lily holly bully rally ally supply reply apply italy
july assembly butterfly dragonfly firefly anomaly monopoly
'''.split())
_NOT_ADJECTIVES = set('''
table tables cable cables vegetable vegetables stable stables fable fables
bible bibles
'''.split())
# yapf: enable
_ADJECTIVE_ENDINGS = ('ous', 'ful', 'less', 'able', 'ible', 'ical')
_WORDS = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*|\d[\d.,:]*|[^\sA-Za-z\d]")


def _candidate(word: str) -> bool:
    low = word.lower()
    if not low[0].isalpha() or low in _CLOSED:
        return False
    if low.endswith('ly') and len(low) > 4 and low not in _NOT_ADVERBS:
        return False
    return not (low.endswith(_ADJECTIVE_ENDINGS) and len(low) > 5
                and low not in _NOT_ADJECTIVES)


def rule_nouns(caption: str) -> List[str]:
    """Open-class words of ``caption`` in order."""
    return [word for word in _WORDS.findall(caption) if _candidate(word)]
