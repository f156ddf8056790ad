# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Captioned photos streamed from webdataset tar shards."""
import itertools
import logging
import os.path as osp
import tarfile
from typing import List, Optional, Sequence, Union

import mmcv
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmseg.registry import DATASETS
from torch.utils.data import IterableDataset, get_worker_info

from groupvit_common.errors import TrainingDataError

IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp')
CAPTION_EXTENSIONS = ('txt', 'text')


@DATASETS.register_module()
class CaptionShards(IterableDataset):
    """Image-caption pairs streamed from webdataset shards as img2dataset
    writes them (``KEY.jpg`` + ``KEY.txt`` in each ``.tar``), the form of
    the original's GCC3M, GCC12M, YFCC14M and RedCaps12M data.

    Several datasets are mixed as the original does: their shard lists are
    concatenated, and each data-loader worker of each process streams
    shards drawn at random from the whole list (webdataset's resampled
    mode, seeded per process and worker), through a shuffle buffer of
    ``shuffle_buffer`` samples. Nothing is indexed in memory. An epoch is
    the total ``length`` of the datasets divided among the processes, as
    the original's ``with_epoch``.

    A bad sample (an image that does not decode, a missing or empty
    caption, a damaged tar member) is skipped, never included, and each
    skip is logged with its shard and key and the count so far.

    Args:
        datasets (list[dict]): Each with ``path`` (folder), ``prefix``
            (shard names, brace patterns as ``gcc-train-{000000..00436}.tar``)
            and ``length`` (its number of samples; counted from the shards
            when left out, which reads every tar header). Shards of a pattern
            that do not exist are left out, as the original does.
        pipeline (list[dict]): Transforms after decoding (crop, augment,
            ``CaptionTokenize``, ``PackCaptionInputs``).
        shuffle_buffer (int): Samples in the shuffle buffer. Defaults to
            10000 (the original's).
        seed (int, optional): Seed of the shard draws. Defaults to 0.
    """

    def __init__(self,
                 datasets: Sequence[dict],
                 pipeline: Sequence[dict] = (),
                 shuffle_buffer: int = 10000,
                 seed: Optional[int] = 0,
                 **kwargs):
        self.shards, self.length = [], 0
        for spec in datasets:
            shards = self._expand(spec)
            self.shards += shards
            length = spec.get('length')
            self.length += count_samples(shards) if length is None \
                else int(length)
        if self.length < 1:
            raise TrainingDataError(
                f'the shards {self.shards[:3]} hold no sample: check '
                f'train_dataloader.dataset.datasets (length).')
        self.pipeline = Compose(pipeline)
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.skipped = 0

    @staticmethod
    def _expand(spec: dict) -> List[str]:
        from braceexpand import braceexpand
        pattern = osp.join(spec.get('path', ''), spec['prefix'])
        shards = [p for p in braceexpand(pattern) if osp.isfile(p)]
        if not shards:
            raise TrainingDataError(
                f'no shard found for {pattern}: set the dataset\'s path and '
                f'prefix (a brace pattern such as '
                f'"shards/{{00000..00099}}.tar") in '
                f'train_dataloader.dataset.datasets.')
        for shard in shards:
            if not tarfile.is_tarfile(shard):
                raise TrainingDataError(
                    f'shard {shard} is not a tar file: write shards with '
                    f'img2dataset (output_format="webdataset") or '
                    f'webdataset\'s ShardWriter, or remove it from the '
                    f'pattern {pattern}.')
        return shards

    def __len__(self) -> int:
        """Samples per process and epoch."""
        return self.length // get_dist_info()[1]

    def _skip(self, where: str, reason: str) -> None:
        self.skipped += 1
        print_log(
            f'skipped training sample {where}: {reason} ({self.skipped} '
            f'skipped by this data worker so far)',
            logger='current',
            level=logging.WARNING)

    def _decode(self, sample: dict) -> Optional[dict]:
        where = f'{sample.get("__url__")}:{sample.get("__key__")}'
        image = next((sample[k] for k in IMAGE_EXTENSIONS if k in sample),
                     None)
        caption = next((sample[k] for k in CAPTION_EXTENSIONS if k in sample),
                       None)
        if image is None:
            return self._skip(where, 'no image (.jpg, .png, .webp)')
        try:
            caption = caption.decode('utf-8').strip() if caption else ''
        except UnicodeDecodeError:
            return self._skip(where, 'the caption is not UTF-8 text')
        if not caption:
            return self._skip(where, 'no caption (.txt)')
        try:
            img = mmcv.imfrombytes(image, flag='color')
        except Exception:  # any decoder failure skips the sample
            img = None
        if img is None:
            return self._skip(where, 'the image does not decode')
        return dict(
            img=img,
            img_path=where,
            ori_shape=img.shape[:2],
            img_shape=img.shape[:2],
            caption=caption)

    def _handler(self, error: BaseException) -> bool:
        self._skip('in a shard', f'{type(error).__name__}: {error}')
        return True

    def __iter__(self):
        import webdataset as wds
        worker = get_worker_info()
        workers, worker_id = (1, 0) if worker is None else (worker.num_workers,
                                                            worker.id)
        count = len(self) // workers
        stream = wds.WebDataset(
            self.shards,
            resampled=True,
            shardshuffle=False,
            nodesplitter=None,
            workersplitter=None,
            handler=self._handler,
            empty_check=False,
            seed=self.seed).shuffle(self.shuffle_buffer)
        decoded = (self._decode(sample) for sample in stream)
        samples = (self.pipeline(s) for s in decoded if s is not None)
        yield from itertools.islice(samples, count)


def count_samples(shards: Union[str, Sequence[str]]) -> int:
    """Samples (distinct keys) in tar shards, read from their headers."""
    total = 0
    for shard in [shards] if isinstance(shards, str) else shards:
        with tarfile.open(shard) as tar:
            keys = {
                member.name.split('.', 1)[0]
                for member in tar if member.isfile()
            }
        total += len(keys)
    return total
