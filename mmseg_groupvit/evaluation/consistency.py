# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Check that the model's classes match the dataset's, so a wrong
vocabulary fails with one clear message instead of a wrong mIoU."""
from typing import Sequence

from mmengine.config import Config
from mmseg.registry import DATASETS
from torch import nn

from groupvit_common.errors import ConfigCheckError

__all__ = ['dataset_classes', 'check_class_count', 'check_model_classes']


def dataset_classes(cfg: Config) -> Sequence[str]:
    """Class names of the config's test dataset, without loading any data.

    The config's ``metainfo.classes`` when it sets one (e.g. VOC20), else
    the registered dataset type's ``METAINFO``.

    Args:
        cfg (Config): An evaluation config.

    Returns:
        Sequence[str]: The dataset's classes, in label order.
    """
    dataset = cfg.test_dataloader.dataset
    classes = (dataset.get('metainfo', None) or {}).get('classes', None)
    if classes is None:
        dataset_type = DATASETS.get(dataset.type)
        if dataset_type is None:
            raise ValueError(
                f'Unknown dataset type {dataset.type!r} in '
                f'test_dataloader.dataset. Check the name, or add the module '
                f'that registers it to custom_imports.')
        classes = dataset_type.METAINFO['classes']
    return tuple(classes)


def check_class_count(model_classes: int,
                      dataset_classes: int,
                      source: str = '') -> None:
    """Raise unless the model scores as many classes as the dataset has.

    The one check of the model's classes against the dataset's: made on
    the built model before a test run (:func:`check_model_classes`) and on
    every result the metric counts
    (:class:`~mmseg_groupvit.evaluation.CheckedIoUMetric`). A model with
    fewer classes than the dataset never predicts the missing ones, and
    mmseg's ``IoUMetric`` then reports a plausible but wrong mIoU. A single
    channel is accepted for two classes (mmseg's binary protocol).

    Args:
        model_classes (int): Classes the model scores (its output
            channels).
        dataset_classes (int): Classes of the dataset.
        source (str): What the model's classes are made of, put first in
            the message (e.g. the vocabulary). Defaults to ''.

    Raises:
        ConfigCheckError: The counts differ, with the fix.
    """
    if model_classes == dataset_classes or (model_classes == 1
                                            and dataset_classes == 2):
        return
    raise ConfigCheckError(
        f'{source}The model scores {model_classes} classes but the dataset '
        f'has {dataset_classes}: the metrics would compare different class '
        f'lists. The vocabulary (model.text_encoder.vocabulary or '
        f'dataset_name) needs one entry per dataset class, in label order, '
        f'without background when the head adds it (with_bg=True).')


def check_model_classes(model: nn.Module, cfg: Config) -> None:
    """Raise if the model and the test dataset disagree on the number of
    classes (see :func:`check_class_count`).

    Args:
        model (nn.Module): The built segmentor (``num_classes``; with a
            ``text_encoder``, its ``classes`` are named in the message).
        cfg (Config): Its config (for the test dataset).

    Raises:
        ConfigCheckError: Naming the counts and how to make them agree.
    """
    with_bg = bool(getattr(model.decode_head, 'with_bg', False))
    # Supervised segmentors (mmseg's EncoderDecoder) have no text encoder.
    vocab = getattr(getattr(model, 'text_encoder', None), 'classes', None)
    source = ''
    if vocab:
        source = (f'The text encoder has {len(vocab)} classes (first: '
                  f'{vocab[0][0]!r}){" plus background" * with_bg}. ')
    classes = dataset_classes(cfg)
    check_class_count(
        model.num_classes, len(classes),
        source + f'The test dataset ({cfg.test_dataloader.dataset.type}) '
        f'has {len(classes)} classes. ')
