# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""CLIP's BPE tokenizer (``mmseg.utils.tokenize``) in the standard library:
``ftfy``'s fixes but mojibake repair (such text refused), no ``regex``."""
import html
import html.entities
import re
import sys
import unicodedata
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from groupvit_common import files
from groupvit_common.errors import DataFileError

__all__ = ['ClipTokenizer']

#: Most bytes of the BPE merges once decompressed (mmseg's: 1.4 MB).
MAX_BPE_TEXT = 16 << 20

# ftfy's tables (ftfy/chardata.py, MIT licence).
_CONTROL = dict.fromkeys(
    list(range(0x00, 0x09)) + [0x0B] + list(range(0x0E, 0x20)) + [0x7F] +
    list(range(0x206A, 0x2070)) + [0xFEFF] + list(range(0xFFF9, 0xFFFD)))
_LIGATURES = dict(
    zip(
        map(ord, 'ĲĳŉǱǲǳǄǅǆǇǈǉǊǋǌﬀﬁﬂﬃﬄﬅﬆ'),
        'IJ ij ʼn DZ Dz dz DŽ Dž dž LJ Lj lj '
        'NJ Nj nj ff fi fl ffi ffl ſt st'.split()))
_SINGLE_QUOTE = re.compile('[\u02bc\u2018-\u201b]')
_DOUBLE_QUOTE = re.compile('[\u201c-\u201f]')
_ENTITY = re.compile(r'&#?[0-9A-Za-z]{1,24};')
#: C1 controls read as cp1252 ("sloppy": its undefined bytes kept).
_C1 = {
    c: bytes([c]).decode('cp1252', 'ignore') or chr(c)
    for c in range(128, 160)
}
_TERMINAL_ESCAPE = re.compile(r'\033\[((?:\d|;)*)([a-zA-Z])')
_LINE_BREAK = re.compile('\r\n|\r|\u2028|\u2029|\u0085')
#: Single-byte encodings whose mis-decoding of UTF-8 ftfy repairs.
_MOJIBAKE_ENCODINGS = ('latin-1', 'cp1252', 'cp1251', 'cp1250', 'mac_roman',
                       'cp437', 'iso-8859-2')


@lru_cache()
def _html_entities() -> Dict[str, str]:
    """ftfy's HTML5 entities (with a semicolon; upper-case forms too)."""
    entities = {}
    for name, char in html.entities.html5.items():
        if name.endswith(';'):
            entities['&' + name] = char
            if name == name.lower():
                upper = '&' + name.upper()
                if html.unescape(upper) == upper:
                    entities[upper] = char.upper()
    return entities


@lru_cache()
def _width_map() -> Dict[int, str]:
    """ftfy's full-width to half-width table."""
    fold = {
        i: unicodedata.normalize('NFKC', chr(i))
        for i in range(0xFF01, 0xFFF0)
    }
    return {0x3000: ' ', **{i: c for i, c in fold.items() if c != chr(i)}}


def _unescape_entity(match) -> str:
    text = match.group(0)
    if text.startswith('&#') and ';' not in html.unescape(text):
        return html.unescape(text)  # a numeric reference
    return _html_entities().get(text, text)


def fix_text(text: str) -> str:
    """``ftfy.fix_text`` (defaults) but mojibake repair: text ftfy would
    re-decode (UTF-8 read as one-byte text) is refused."""
    unescape = '<' not in text
    while True:
        original = text
        if unescape:
            text = _ENTITY.sub(_unescape_entity, text)
        for encoding in _MOJIBAKE_ENCODINGS:
            try:
                decoded = text.encode(encoding).decode('utf-8')
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            if decoded != text:
                raise ValueError(
                    f'The class name or prompt {text!r} looks like UTF-8 '
                    f'text decoded as {encoding} (it reads {decoded!r} when '
                    f're-decoded); fix the text\'s encoding (save the '
                    f'vocabulary as UTF-8).')
        text = text.translate(_C1).translate(_LIGATURES).translate(
            _width_map())
        text = _SINGLE_QUOTE.sub("'", text)
        text = _DOUBLE_QUOTE.sub('"', text)
        text = _LINE_BREAK.sub('\n', text)
        # Surrogate pairs joined, lone surrogates replaced (U+FFFD).
        text = text.encode('utf-16-le',
                           'surrogatepass').decode('utf-16-le', 'replace')
        text = _TERMINAL_ESCAPE.sub('', text)
        text = text.translate(_CONTROL)
        text = unicodedata.normalize('NFC', text)
        if text == original:
            return text


@lru_cache()
def _letter_number_classes() -> Tuple[str, str]:
    """``\\p{L}`` and ``\\p{N}`` as character ranges for :mod:`re`."""
    spans = dict(L=[], N=[])
    for code in range(sys.maxunicode + 1):
        target = spans.get(unicodedata.category(chr(code))[0])
        if target and target[-1][1] == code - 1:
            target[-1][1] = code
        elif target is not None:
            target.append([code, code])
    return tuple(''.join(
        re.escape(chr(a)) + (f'-{re.escape(chr(b))}' if b > a else '')
        for a, b in spans[kind]) for kind in 'LN')


class ClipTokenizer:
    """mmseg's ``SimpleTokenizer`` of ``bpe_simple_vocab_16e6.txt.gz``
    (``data``: the file's bytes, if already read)."""

    def __init__(self, bpe_path: str, data: Optional[bytes] = None):
        data = files.read_gzip(bpe_path, MAX_BPE_TEXT, 'BPE file', data)
        try:
            merges = data.decode('utf-8').split('\n')
        except UnicodeDecodeError:
            raise DataFileError(f'the BPE file {bpe_path} is not UTF-8 '
                                f'text inside its gzip; use the file of '
                                f'the export.') from None
        merges = [tuple(m.split()) for m in merges[1:49152 - 256 - 2 + 1]]
        special = ['<start_of_text>', '<end_of_text>']
        # CLIP's reversible map from bytes to printable characters.
        printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
        others = [b for b in range(256) if b not in printable]
        codes = printable + [256 + n for n in range(len(others))]
        self.byte_encoder = dict(zip(printable + others, map(chr, codes)))
        vocab = list(self.byte_encoder.values())
        vocab += [v + '</w>' for v in vocab]
        vocab += [''.join(m) for m in merges] + special
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {merge: i for i, merge in enumerate(merges)}
        self.cache = {t: t for t in special}
        self.sot_id, self.eot_id = (self.encoder[t] for t in special)
        letters, numbers = _letter_number_classes()
        self.pattern = re.compile(
            '|'.join(special) + r"|'s|'t|'re|'ve|'m|'ll|'d" +
            f'|[{letters}]+|[{numbers}]|[^\\s{letters}{numbers}]+',
            re.IGNORECASE)

    def bpe(self, token: str) -> List[str]:
        """Merge the characters of one pre-token by rank."""
        if token not in self.cache:
            word = list(token[:-1]) + [token[-1] + '</w>']
            while len(word) > 1:
                bigram = min(
                    zip(word[:-1], word[1:]),
                    key=lambda p: self.bpe_ranks.get(p, float('inf')))
                if bigram not in self.bpe_ranks:
                    break
                merged, i = [], 0
                while i < len(word):
                    if tuple(word[i:i + 2]) == bigram:
                        merged.append(word[i] + word[i + 1])
                        i += 2
                    else:
                        merged.append(word[i])
                        i += 1
                word = merged
            self.cache[token] = ' '.join(word)
        return self.cache[token].split(' ')

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text`` without the start and end tokens."""
        text = html.unescape(html.unescape(fix_text(text))).strip()
        text = re.sub(r'\s+', ' ', text).strip().lower()
        ids = []
        for token in self.pattern.findall(text):
            token = ''.join(self.byte_encoder[b]
                            for b in token.encode('utf-8'))
            ids.extend(self.encoder[t] for t in self.bpe(token))
        return ids

    def tokenize(self, texts: List[str], context_length: int = 77):
        """``mmseg.utils.tokenize``'s ids ``[N, L]`` (lists) up to the
        longest text's end, ``L <= context_length`` (the rest is padding),
        and the indices of the texts cut."""
        rows, cut = [], []
        for index, text in enumerate(texts):
            ids = [self.sot_id] + self.encode(text) + [self.eot_id]
            if len(ids) > context_length:
                ids = ids[:context_length]
                ids[-1] = self.eot_id
                cut.append(index)
            rows.append(ids)
        length = max(map(len, rows), default=0)
        return [ids + [0] * (length - len(ids)) for ids in rows], cut
