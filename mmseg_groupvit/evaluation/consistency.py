# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Check, before an evaluation starts, that the text options can be read
and that the model's classes match the dataset's, so a wrong vocabulary
fails with one clear message instead of a traceback in the middle of the
test loop."""
from typing import Sequence

from mmengine.config import Config
from mmseg.registry import DATASETS
from torch import nn

from ..utils import get_templates, load_vocabulary

__all__ = ['dataset_classes', 'check_model_classes', 'check_text_options']


def check_text_options(cfg: Config) -> None:
    """Read the text encoder's vocabulary and templates as the model will.

    A missing vocabulary file, a malformed one or a template without its
    ``{}`` then fails before anything is built, with the reader's message.

    Args:
        cfg (Config): An evaluation config, options merged.

    Raises:
        FileNotFoundError: The vocabulary file does not exist.
        ValueError: The vocabulary or the templates are malformed.
        TypeError: They have the wrong type.
    """
    text = cfg.model.get('text_encoder', None) or {}
    if text.get('vocabulary', None) is not None:
        load_vocabulary(text.vocabulary)
    if text.get('templates', None) is not None:
        get_templates(text.templates)


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


def check_model_classes(model: nn.Module, cfg: Config) -> None:
    """Raise if the vocabulary, the head and the dataset disagree on the
    number of classes.

    Args:
        model (nn.Module): The built segmentor (``text_encoder`` with
            ``classes``, ``decode_head`` with ``num_classes`` and
            ``with_bg``).
        cfg (Config): Its config (for the test dataset).

    Raises:
        ValueError: Naming the counts and how to make them agree.
    """
    head = model.decode_head
    num_out = head.num_classes
    with_bg = bool(getattr(head, 'with_bg', False))
    # Supervised segmentors (mmseg's EncoderDecoder) have no text encoder.
    vocab = getattr(getattr(model, 'text_encoder', None), 'classes', None)
    if vocab is not None and len(vocab) + int(with_bg) != num_out:
        bg = ' plus background' if with_bg else ''
        raise ValueError(
            f'The text encoder has {len(vocab)} classes (first: '
            f'{vocab[0][0]!r}){bg}, but model.decode_head.num_classes is '
            f'{num_out}. List {num_out - int(with_bg)} classes in the '
            f'vocabulary, one per dataset label in label order'
            f'{" and without background (the head adds it)" * with_bg}, or '
            f'set model.decode_head.num_classes.')
    classes = dataset_classes(cfg)
    if len(classes) != num_out:
        raise ValueError(
            f'The test dataset ({cfg.test_dataloader.dataset.type}) has '
            f'{len(classes)} classes but the model outputs {num_out}. The '
            f'vocabulary needs one entry per dataset class'
            f'{" except background" * with_bg}, in label order, and '
            f'model.decode_head.num_classes must be {len(classes)}.')
