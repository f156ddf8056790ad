# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Captioned photos listed in an annotation file (JSON Lines or CSV)."""
import csv
import json
import os
import os.path as osp
import unicodedata
from typing import Iterator, List, TextIO

from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

from groupvit_common.errors import TrainingDataError
from groupvit_common.files import file_kind

#: Longest line of an annotation file read (a caption takes a few hundred).
MAX_LINE_CHARS = 1 << 20


@DATASETS.register_module()
class CaptionAnnotationDataset(BaseDataset):
    """Image-caption pairs from a JSON Lines (``{"image": "dogs/1.jpg",
    "caption": "two dogs"}`` per line) or CSV ``ann_file``, image paths
    relative to ``data_prefix['img_path']``; ``image_key`` and
    ``caption_key`` name the fields."""

    def __init__(self,
                 ann_file: str,
                 image_key: str = 'image',
                 caption_key: str = 'caption',
                 **kwargs):
        self.image_key = image_key
        self.caption_key = caption_key
        kwargs.setdefault('data_prefix', dict(img_path=''))
        super().__init__(ann_file=ann_file, **kwargs)

    def _rows(self) -> List[tuple]:
        path = self.ann_file
        if not osp.isfile(path):
            raise TrainingDataError(
                f'annotation file {path} not found: set '
                f'train_dataloader.dataset.ann_file (relative to data_root '
                f'{self.data_root!r}) to a .jsonl or .csv file.')
        ext = osp.splitext(path)[1].lower()
        if ext not in ('.jsonl', '.csv'):
            raise TrainingDataError(
                f'annotation file {path}: unknown format {ext!r}; give JSON '
                f'Lines (.jsonl, one {{"{self.image_key}": ..., '
                f'"{self.caption_key}": ...}} per line) or CSV (.csv with a '
                f'header).')
        rows, line = [], 0
        try:
            with open(path, encoding='utf-8-sig', newline='') as f:
                lines = _lines(f, path)
                if ext == '.csv':
                    reader = csv.DictReader(lines)
                    self._unique(reader.fieldnames or [],
                                 f'the header of annotation file {path}')
                    return [(reader.line_num, row) for row in reader]

                names = []  # of the last object decoded: the outermost

                def fields(pairs):
                    names[:] = [k for k, _ in pairs]
                    return dict(pairs)

                for line, text in enumerate(lines, start=1):
                    if text.strip():
                        record = json.loads(text, object_pairs_hook=fields)
                        if isinstance(record, dict):
                            self._unique(
                                names, f'annotation file {path} line {line}')
                        rows.append((line, record))
        except UnicodeDecodeError:
            raise TrainingDataError(
                f'annotation file {path} is not UTF-8 text: save it as '
                f'UTF-8.') from None
        except csv.Error as e:
            raise TrainingDataError(
                f'annotation file {path} after line {reader.line_num} is not '
                f'CSV ({e}): shorten the caption, or quote it.') from None
        except TrainingDataError:
            raise
        except (ValueError, RecursionError) as e:
            # JSONDecodeError, a number of over 4300 digits, or nesting.
            reason = getattr(e, 'msg', None) or (str(e) if isinstance(
                e, ValueError) else 'nested too deeply')
            raise TrainingDataError(
                f'annotation file {path} line {line} is not JSON '
                f'({reason}): write one object per line.') from None
        return rows

    def _unique(self, names: List[str], where: str) -> None:
        """Refuse two fields that would both be read as the image or the
        caption (the reader keeps one without a word): equal names, or equal
        but for case, spaces and invisible format characters."""

        def plain(name):
            return ''.join(c for c in name.strip().casefold()
                           if unicodedata.category(c) != 'Cf')

        for key in (self.image_key, self.caption_key):
            same = [n for n in names if plain(n) == plain(key)]
            if len(same) > 1:
                same = ', '.join(map(repr, same))
                raise TrainingDataError(
                    f'{where} names "{key}" twice ({same}), so one of them '
                    f'would be ignored: keep one.')

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix.get('img_path', '') or self.data_root or ''
        data_list = []
        for line, record in self._rows():
            where = f'annotation file {self.ann_file} line {line}'
            if not isinstance(record, dict) or not isinstance(
                    record.get(self.image_key), str) or not isinstance(
                        record.get(self.caption_key), str):
                raise TrainingDataError(
                    f'{where}: needs the text fields "{self.image_key}" and '
                    f'"{self.caption_key}" (got {str(record)[:80]}).')
            img_path = osp.join(folder, record[self.image_key])
            if not osp.isfile(img_path):
                what = 'not found' if not osp.exists(img_path) else (
                    f'is {file_kind(os.stat(img_path).st_mode)}, not an '
                    f'image file')
                raise TrainingDataError(
                    f'{where}: image {img_path} {what}. Fix the path '
                    f'(relative to {folder or "the working directory"}) or '
                    f'remove the line.')
            caption = record[self.caption_key].strip()
            if not caption:
                raise TrainingDataError(
                    f'{where}: the caption of {img_path} is empty. Write one '
                    f'or remove the line.')
            data_list.append(
                dict(img_path=img_path, caption=caption, listed_in=where))
        if not data_list:
            raise TrainingDataError(
                f'annotation file {self.ann_file} lists no image: add '
                f'"{self.image_key}" / "{self.caption_key}" records.')
        return data_list


def _lines(f: TextIO, path: str) -> Iterator[str]:
    """The lines of the open annotation file ``path``, each read no further
    than :data:`MAX_LINE_CHARS`."""
    for number, text in enumerate(
            iter(lambda: f.readline(MAX_LINE_CHARS + 1), ''), start=1):
        if len(text) > MAX_LINE_CHARS:
            raise TrainingDataError(
                f'annotation file {path} line {number} is over '
                f'{MAX_LINE_CHARS:,} characters long, more than a caption '
                f'line can need: it is damaged, or not an annotation file.')
        yield text
