# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Build a GroupViT segmentor for single images, on top of
``mmseg.apis.init_model``."""
import contextlib
import io
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.apis import init_model
from torch import nn

from ..datasets import use_checked_steps
from ..models.config_arguments import check_model_arguments
from ..utils.config_file import read_config
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
            a warning says so. Without it, a config without ``load_from``
            and no ``checkpoint`` is a ``CheckpointError``.

    Returns:
        nn.Module: The segmentor in eval mode, with ``model.cfg`` set.
    """
    if bg_thresh is not None:
        cfg_options = dict(cfg_options or {})
        cfg_options['model.test_cfg.bg_thresh'] = bg_thresh
    cfg = read_config(config, cfg_options, test=False)
    text = cfg.model.text_encoder
    if vocabulary is not None:
        text.vocabulary = vocabulary
    if vocabulary is not None or extra_classes is not None:
        text.extra_classes = extra_classes
    if templates is not None:
        text.templates = templates
    check_model_arguments(cfg.model)
    if checkpoint or not random_weights:
        # The config's load_from without a checkpoint (CheckpointError
        # without either), fetched once if remote, its architecture applied
        # to the config.
        checkpoint = resolve_load_from(cfg, str(checkpoint or '') or None)
    else:
        warnings.warn('No checkpoint given: the model has RANDOM weights and '
                      'its predictions are meaningless. Give the published '
                      'weights (see docs/weights.md).')
        # model.cfg says what was loaded: nothing.
        cfg.load_from = None
        torch.manual_seed(seed)
    # Weights loaded here, not by init_model: without dataset_meta in the
    # checkpoint, init_model guesses class names from another dataset (with
    # two warnings, after resetting the warning filters), which the model
    # refuses since it names its classes after its vocabulary.
    model = init_model(cfg, None, device)
    if checkpoint:
        # mmengine prints 'Loads checkpoint by local backend from path:'.
        with contextlib.redirect_stdout(io.StringIO()):
            load_checkpoint(model, checkpoint, map_location='cpu')
    # inference_model reads cfg.test_pipeline: image headers checked before
    # decoding, images that cannot be resized named (same pixels).
    use_checked_steps(model.cfg.get('test_pipeline'))
    return model
