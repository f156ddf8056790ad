# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Captioned photos streamed from webdataset tar shards."""
import itertools
import logging
import os
import os.path as osp
import tarfile
from collections import Counter
from types import SimpleNamespace
from typing import Iterator, List, Optional, Sequence, Union

import cv2
import mmcv
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmseg.registry import DATASETS
from torch.utils.data import IterableDataset, get_worker_info

from groupvit_common.errors import (ConfigValueError, ImageLoadError,
                                    TrainingDataError, first_few, shown)
from groupvit_common.files import check_image

IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp')
CAPTION_EXTENSIONS = ('txt', 'text')
#: Most a shard may expand over its size on disk (more: a compression bomb).
MAX_EXPANSION = 100
#: Most bytes the tar headers of one member may take (a long name, PAX
#: records); tarfile reads them whole.
MAX_HEADER_BYTES = 1 << 20
#: Most shards a brace pattern may name (a million names take ~100 MB).
MAX_SHARDS = 1_000_000


class HeaderBombError(tarfile.TarError):
    """Tar headers of one member over :data:`MAX_HEADER_BYTES`."""


class _Budget:
    """A shard's (decompressed) stream that refuses a read past ``left``
    bytes, unread."""

    def __init__(self, fileobj):
        self.fileobj, self.left = fileobj, 0

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            raise HeaderBombError(
                f'the tar headers of a member (a long name, PAX records) '
                f'take over {MAX_HEADER_BYTES:,} bytes')
        self.left -= size
        return self.fileobj.read(size)

    def __getattr__(self, name):
        return getattr(self.fileobj, name)


class _ShardTar(tarfile.TarFile):
    """A tar (compressed or not) read within bounds: the headers of each
    member to :data:`MAX_HEADER_BYTES`, its data to its size."""

    @classmethod
    def taropen(cls, name, mode='r', fileobj=None, **kwargs):
        return super().taropen(name, mode, _Budget(fileobj), **kwargs)

    def next(self):
        self.fileobj.left = MAX_HEADER_BYTES
        return super().next()

    def extractfile(self, member):
        self.fileobj.left = member.size
        return super().extractfile(member)


def _open_shard(f) -> tarfile.TarFile:
    """The tar of the open shard ``f``, read within bounds."""
    return _ShardTar.open(fileobj=f, mode='r:*')


def _bomb(shard: str, error: HeaderBombError) -> TrainingDataError:
    return TrainingDataError(
        f'shard {shard}: {error}, a compression bomb or a damaged header: '
        f'remove the shard.')


@DATASETS.register_module()
class CaptionShards(IterableDataset):
    """Image-caption pairs (``KEY.jpg`` + ``KEY.txt``) streamed from
    webdataset shards drawn at random (resampled) through a shuffle buffer;
    an epoch is the total ``length`` divided among the processes, dealt to
    their DataLoader workers in whole batches (:attr:`batch_size`). Bad
    samples are skipped and logged in their shard's first reading; a pass
    without a good sample raises ``TrainingDataError``.

    Args:
        datasets (list[dict]): Each with ``path``, ``prefix`` (a brace
            pattern, ``gcc-train-{000000..00436}.tar``) and ``length``
            (counted from the tar headers when left out).
        pipeline (list[dict]): Transforms after decoding.
        shuffle_buffer (int): Defaults to 10000 (the original's).
        seed (int, optional): Seed of the shard draws. Defaults to 0.
        max_member_bytes (int): Largest tar member read. Defaults to 64 MiB.
    """

    #: Samples per batch of the DataLoader, set from it before training
    #: (``check_train_batches``) so that each worker streams whole batches.
    batch_size = 1

    def __init__(self,
                 datasets: Sequence[dict],
                 pipeline: Sequence[dict] = (),
                 shuffle_buffer: int = 10000,
                 seed: Optional[int] = 0,
                 max_member_bytes: int = 64 << 20,
                 **kwargs):
        if not isinstance(datasets, (list, tuple)):
            raise ConfigValueError(
                f'train_dataloader.dataset.datasets must be a list of '
                f'dict(path=..., prefix=..., length=...), got '
                f'{shown(datasets)}: put the entries in [ ].')
        self.shards, self.length = [], 0
        for index, spec in enumerate(datasets):
            shards = self._expand(
                spec, f'train_dataloader.dataset.datasets[{index}]')
            self.shards += shards
            length = spec.get('length')
            self.length += count_samples(shards) if length is None \
                else length
        if self.length < 1:
            raise TrainingDataError(
                f'the shards {self.shards[:3]} hold no sample: check '
                f'train_dataloader.dataset.datasets (length).')
        self.pipeline = Compose(pipeline)
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.max_member_bytes = int(max_member_bytes)
        self.skipped = 0

    @staticmethod
    def _expand(spec: dict, key: str) -> List[str]:
        """The shards of the dataset entry ``spec``, ``key`` in the config
        (its ``prefix`` and ``length`` checked)."""
        from braceexpand import braceexpand
        if not isinstance(spec, dict):
            raise ConfigValueError(
                f'{key} must be dict(path=..., prefix=..., length=...), got '
                f'{shown(spec)}.')
        prefix, length = spec.get('prefix'), spec.get('length')
        if not isinstance(prefix, str) or not prefix:
            raise ConfigValueError(
                f'{key}.prefix must name the shards, got {shown(prefix)}: '
                f'set it to a brace pattern such as '
                f'"part-{{00000..00099}}.tar" (in the folder {key}.path).')
        if length is not None and (type(length) is not int or length < 1):
            raise ConfigValueError(
                f'{key}.length must be a positive whole number of samples, '
                f'got {shown(length)}: set it to the number of samples in '
                f'the shards, or leave it out to count them from the tar '
                f'headers.')
        pattern = osp.join(spec.get('path', ''), prefix)
        count = name_count(pattern)
        if count > MAX_SHARDS:
            raise TrainingDataError(
                f'the pattern {pattern} names {count:,} shards, more than the '
                f'{MAX_SHARDS:,} accepted: name the shards with a shorter '
                f'brace range in {key}.prefix.')
        shards = list(braceexpand(pattern))
        missing = [p for p in shards if not osp.isfile(p)]
        if len(missing) == len(shards):
            raise TrainingDataError(
                f'no shard found for {pattern}: set the dataset\'s path and '
                f'prefix (a brace pattern such as '
                f'"shards/{{00000..00099}}.tar") in '
                f'train_dataloader.dataset.datasets.')
        if missing:
            raise TrainingDataError(
                f'{len(missing)} of the {len(shards)} shards of {pattern} are '
                f'missing ({first_few(missing)}): download them, or name only '
                f'the shards present in {key}.prefix (a brace list skips '
                f'gaps: "part-{{{{00000..00009}},00011}}.tar").')
        for shard in shards:
            try:
                with open(shard, 'rb') as f, _open_shard(f):
                    pass  # the first member read
            except HeaderBombError as e:
                raise _bomb(shard, e) from None
            except tarfile.TarError:
                raise TrainingDataError(
                    f'shard {shard} is not a tar file: write shards with '
                    f'img2dataset (output_format="webdataset") or '
                    f'webdataset\'s ShardWriter, or remove it from the '
                    f'pattern {pattern}.') from None
        return shards

    def __len__(self) -> int:
        """Samples per process and epoch."""
        return self.length // get_dist_info()[1]

    def worker_share(self, worker: int, workers: int) -> int:
        """Samples of DataLoader worker ``worker`` of ``workers``: an
        epoch's batches (the last may be short) dealt out in turn, so that
        the workers batch as many as the DataLoader's length counts (each
        worker's stream is batched on its own)."""
        full, rest = divmod(len(self), self.batch_size)
        count = self.batch_size * len(range(worker, full, workers))
        return count + rest * (full % workers == worker)

    def _skip(self, where: str, reason: str, tally: Counter,
              first: bool) -> None:
        self.skipped += 1
        tally[reason] += first
        if first:
            print_log(
                f'skipped training sample {where}: {reason} ({self.skipped} '
                f'skipped by this data worker so far)',
                logger='current',
                level=logging.WARNING)

    def _decode(self, sample: dict, tally: Counter) -> Optional[dict]:
        where = f'{sample["__url__"]}:{sample["__key__"]}'
        first = sample['__first__']
        image = next((sample[k] for k in IMAGE_EXTENSIONS if k in sample),
                     None)
        caption = next((sample[k] for k in CAPTION_EXTENSIONS if k in sample),
                       None)
        if image is None:
            return self._skip(where, 'no image (.jpg, .png, .webp)', tally,
                              first)
        try:
            caption = caption.decode('utf-8').strip() if caption else ''
        except UnicodeDecodeError:
            return self._skip(where, 'the caption is not UTF-8 text', tally,
                              first)
        if not caption:
            return self._skip(where, 'no caption (.txt)', tally, first)
        try:
            check_image(image, where)
        except ImageLoadError:
            return self._skip(
                where, 'the image states too many pixels or '
                'too elongated a shape', tally, first)
        level = cv2.utils.logging.getLogLevel()
        try:  # logged as a skip below, not as OpenCV's ERROR line too
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            img = mmcv.imfrombytes(image, flag='color')
        except Exception:  # any decoder failure skips the sample
            img = None
        finally:
            cv2.utils.logging.setLogLevel(level)
        if img is None:
            return self._skip(where, 'the image does not decode', tally, first)
        return dict(
            img=img,
            img_path=where,
            ori_shape=img.shape[:2],
            img_shape=img.shape[:2],
            caption=caption)

    def _members(self, url: str, tally: Counter,
                 first: bool) -> Iterator[tuple]:
        """``(key, extension, bytes)`` of the members of shard ``url``."""
        from webdataset.tariterators import base_plus_ext
        try:
            with open(url, 'rb') as f, _open_shard(f) as tar:
                bound = MAX_EXPANSION * os.fstat(f.fileno()).st_size
                for member in tar:
                    key, ext = base_plus_ext(member.name)
                    where = f'{url}:{member.name}'
                    if not member.isreg() or key is None:
                        continue
                    if member.offset_data + member.size > bound:
                        return self._skip(
                            where, f'a member expanding the shard over '
                            f'{MAX_EXPANSION} times (the rest of the shard is '
                            f'left)', tally, first)
                    if member.issparse() or \
                            member.size > self.max_member_bytes:
                        self._skip(
                            where, f'a sparse member or one over '
                            f'max_member_bytes={self.max_member_bytes}', tally,
                            first)
                        continue
                    yield key, ext.lower(), tar.extractfile(member).read(
                        self.max_member_bytes)
        except HeaderBombError as e:
            self._skip(url, f'{e} (the rest of the shard is left)', tally,
                       first)
        except (OSError, EOFError, tarfile.TarError) as e:
            self._skip(f'{url} ({type(e).__name__}: {e})', 'a damaged tar',
                       tally, first)

    def _read(self, urls: Iterator[dict], tally: Counter) -> Iterator[dict]:
        """The samples (``{extension: bytes}``) of the shards drawn."""
        seen = set()
        for url in (draw['url'] for draw in urls):
            first = url not in seen
            members = self._members(url, tally, first)
            for key, group in itertools.groupby(members, lambda m: m[0]):
                sample = {ext: data for _, ext, data in group}
                sample.update(__key__=key, __url__=url, __first__=first)
                tally['_read'] += first
                yield sample
            seen.add(url)
            tally['_complete'] = len(seen) == len(self.shards)
            self._check_pass(tally)

    def _check_pass(self, tally: Counter) -> None:
        """Stop once every shard was read and no sample was good (the
        stream would never end)."""
        if not tally['_complete'] or tally['_good'] or \
                tally['_decoded'] < tally['_read']:
            return
        reasons = ', '.join(f'{reason}: {n}'
                            for reason, n in sorted(tally.items())
                            if n and not reason.startswith('_'))
        raise TrainingDataError(
            f'0 good samples in {len(self.shards)} shard(s) '
            f'({first_few(self.shards)}): '
            f'{reasons or "they hold no sample"}. Each sample needs an image '
            f'(.jpg, .png, .webp) that decodes and a caption (.txt): fix the '
            f'shards or train_dataloader.dataset.datasets.')

    def _good(self, stream: Iterator[dict], tally: Counter) -> Iterator[dict]:
        """The samples of ``stream`` that decode."""
        for sample in stream:
            decoded = self._decode(sample, tally)
            tally['_good'] += decoded is not None
            tally['_decoded'] += sample['__first__']
            self._check_pass(tally)
            if decoded is not None:
                yield decoded

    def __iter__(self):
        import webdataset as wds
        worker = get_worker_info() or SimpleNamespace(id=0, num_workers=1)
        count = self.worker_share(worker.id, worker.num_workers)
        tally = Counter()
        shards = iter(wds.ResampledShards(self.shards, seed=self.seed))
        stream = wds.shuffle(self.shuffle_buffer)(self._read(shards, tally))
        samples = (self.pipeline(s) for s in self._good(stream, tally))
        yield from itertools.islice(samples, count)


def name_count(pattern: str, alternatives: bool = False) -> int:
    """How many names ``braceexpand(pattern)`` makes, counted without making
    them: the product of its brace groups' counts, a group of alternatives
    (``alternatives``: ``pattern`` is the inside of one) the sum of
    theirs."""
    from braceexpand import char_range_re, int_range_re, make_char_range
    groups, commas, depth, start, escaped = [], [], 0, 0, False
    for pos, char in enumerate(pattern):
        if escaped or char == '\\':
            escaped = not escaped
        elif char == '{':
            depth += 1
            start = pos + 1 if depth == 1 else start
        elif char == '}':
            depth -= 1
            if depth == 0:
                groups.append(pattern[start:pos])
        elif char == ',' and depth == 0:
            commas.append(pos)
    if alternatives and commas:
        ends = [-1, *commas, len(pattern)]
        return sum(
            name_count(pattern[a + 1:b]) for a, b in zip(ends, ends[1:]))
    count = 1
    for group in groups:
        numbers = int_range_re.match(group)
        letters = char_range_re.match(group)
        if numbers:
            first, last, step = numbers.groups()
            count *= abs(int(last) - int(first)) // (int(step or 1) or 1) + 1
        elif letters:
            count *= len(make_char_range(*letters.groups()))
        else:
            count *= name_count(group, alternatives=True)
    return count


def count_samples(shards: Union[str, Sequence[str]]) -> int:
    """Samples (distinct keys, as the reader groups members) in tar shards,
    read from their headers."""
    from webdataset.tariterators import base_plus_ext
    total = 0
    for shard in [shards] if isinstance(shards, str) else shards:
        bound = MAX_EXPANSION * osp.getsize(shard)
        keys = set()
        try:
            with open(shard, 'rb') as f, _open_shard(f) as tar:
                for member in tar:
                    if member.offset_data + member.size > bound:
                        raise TrainingDataError(
                            f'shard {shard}: {member.name} would expand it '
                            f'over {MAX_EXPANSION} times its size (a '
                            f'compression bomb or a damaged header): remove '
                            f'the shard, or set the dataset\'s length to '
                            f'read it as far as it goes.')
                    if member.isreg():
                        keys.add(base_plus_ext(member.name)[0])
        except HeaderBombError as e:
            raise _bomb(shard, e) from None
        total += len(keys - {None})
    return total
