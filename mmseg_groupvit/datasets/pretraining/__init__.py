# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pretraining data: captioned photos from webdataset shards or an
annotation file, and caption tokenization. The original's augmentation
(mmpretrain's transforms) is registered by importing
``mmseg_groupvit.datasets.pretraining.augmentation``, as the pretraining
configs do (``custom_imports``), so that the rest of the package needs no
pretraining requirement."""
from .annotation_dataset import CaptionAnnotationDataset
from .caption_transforms import CaptionTokenize, PackCaptionInputs
from .nouns import NOUN_TAGS, rule_nouns
from .shard_dataset import CaptionShards, count_samples

__all__ = [
    'CaptionAnnotationDataset', 'CaptionShards', 'CaptionTokenize',
    'PackCaptionInputs', 'NOUN_TAGS', 'rule_nouns', 'count_samples'
]
