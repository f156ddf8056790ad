# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Build a GroupViT segmentor for single images, on top of
``mmseg.apis.init_model``."""
import copy
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmseg.apis import init_model
from torch import nn

from ..datasets import use_checked_steps
from ..models.config_arguments import check_model_arguments
from ..weights import resolve_load_from

ConfigLike = Union[str, Path, Config]


def init_groupvit(config: ConfigLike,
                  checkpoint: Optional[str] = None,
                  device: str = 'cpu',
                  vocabulary=None,
                  templates: Optional[Union[str, Sequence[str]]] = None,
                  bg_thresh: Optional[float] = None,
                  extra_classes=None,
                  cfg_options: Optional[dict] = None,
                  seed: int = 0,
                  random_weights: bool = False) -> nn.Module:
    """``mmseg.apis.init_model`` plus GroupViT's text options.

    The text options and ``bg_thresh`` go into the model config, so each is
    checked by its owner when the model is built, before any weights are
    loaded: the vocabulary and templates by the text encoder, ``bg_thresh``
    by the segmentor's ``test_cfg`` checks. The head's class count follows
    the vocabulary.
    ``model.dataset_meta`` follows the vocabulary (``background`` first when
    the head has a background channel), so mmseg's ``inference_model``,
    ``show_result_pyplot`` and visualisers name the classes correctly.

    Args:
        config (str | Path | Config): Config file or object.
        checkpoint (str, optional): A checkpoint file (converted, NVlabs
            ``.pth`` or transformers weights), a transformers folder, a URL
            or ``hf://OWNER/NAME``; the config's ``load_from`` when None.
            Remote ones are downloaded once into their cache. The
            architecture the checkpoint records is applied to the model
            config before the model is built.
        device (str): Device. Defaults to 'cpu'.
        vocabulary: Class names, synonym lists or a vocabulary file (see
            :func:`mmseg_groupvit.utils.load_vocabulary`); the config's
            vocabulary when None.
        templates (str | list[str], optional): Template-set name
            (``simple``, ``subset``, ``full``, ``identity``) or a list of
            templates; the config's when None.
        bg_thresh (float, optional): Background threshold in [0, 1] (else
            a ``ConfigValueError``); the config's when None.
        extra_classes: Classes appended to the vocabulary (the config's
            when ``vocabulary`` is None), e.g. the dataset's names plus
            ``['grass', 'sky']``; they replace the config's
            ``extra_classes``, which are also dropped when ``vocabulary`` is
            given.
        cfg_options (dict, optional): Other config overrides.
        seed (int): Seed of the random weights when there is no
            checkpoint. Defaults to 0.
        random_weights (bool): Ignore the config's ``load_from``: random
            weights (seeded with ``seed``) unless ``checkpoint`` is given;
            a warning says so.

    Returns:
        nn.Module: The segmentor in eval mode, with ``model.cfg`` set.
    """
    if bg_thresh is not None:
        cfg_options = dict(cfg_options or {})
        cfg_options['model.test_cfg.bg_thresh'] = bg_thresh
    cfg = copy.deepcopy(config) if isinstance(
        config, Config) else Config.fromfile(config)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    text = cfg.model.text_encoder
    if vocabulary is not None:
        text.vocabulary = vocabulary
    if vocabulary is not None or extra_classes is not None:
        text.extra_classes = extra_classes
    if templates is not None:
        text.templates = templates
    check_model_arguments(cfg.model)
    if checkpoint is None and not random_weights:
        checkpoint = cfg.get('load_from')
    if checkpoint:
        checkpoint = resolve_load_from(cfg, str(checkpoint))
    else:
        warnings.warn('No checkpoint given: the model has RANDOM weights and '
                      'its predictions are meaningless. Give the published '
                      'weights (see docs/weights.md).')
        torch.manual_seed(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = init_model(cfg, checkpoint or None, device)
    for warning in caught:
        # init_model guesses class names from another dataset when the
        # checkpoint has none, and the model refuses them (it names its
        # classes after its vocabulary): both messages are moot here.
        if 'dataset_meta' not in str(warning.message):
            warnings.warn_explicit(warning.message, warning.category,
                                   warning.filename, warning.lineno)
    # inference_model reads cfg.test_pipeline: image headers checked before
    # decoding, images that cannot be resized named (same pixels).
    use_checked_steps(model.cfg.get('test_pipeline'))
    return model
