# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pretraining data: captioned photos and caption tokenization. The
augmentation registers when ``.augmentation`` is imported (the configs'
``custom_imports``)."""
from .annotation_dataset import CaptionAnnotationDataset
from .caption_transforms import CaptionTokenize, PackCaptionInputs
from .nouns import NOUN_TAGS, rule_nouns
from .shard_dataset import CaptionShards, count_samples

__all__ = [
    'CaptionAnnotationDataset', 'CaptionShards', 'CaptionTokenize',
    'PackCaptionInputs', 'NOUN_TAGS', 'rule_nouns', 'count_samples'
]
