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

from groupvit_common.checks import check_zero_shot_segmentor
from ..datasets import use_checked_steps
from ..utils.config_file import load_config, read_config
from ..weights import resolve_load_from


def resolve_weights(cfg: Config, checkpoint: Optional[str],
                    random_weights: bool, seed: int) -> Optional[str]:
    """``checkpoint`` or the config's ``load_from`` (resolved); None, seeded
    and warned, with ``random_weights`` and no checkpoint."""
    if checkpoint or not random_weights:
        return resolve_load_from(cfg, str(checkpoint or '') or None)
    warnings.warn('No checkpoint given: the model has RANDOM weights and '
                  'its predictions are meaningless. Give the published '
                  'weights (see docs/weights.md).')
    cfg.load_from = None
    torch.manual_seed(seed)
    return None


def read_with_text(config: Union[str, Path, Config],
                   cfg_options: Optional[dict] = None,
                   vocabulary=None,
                   templates=None,
                   extra_classes=None) -> Config:
    """:func:`read_config` (``test=False``) with the text options put into
    ``model.text_encoder`` first (None keeps the config's): the config is
    checked with the vocabulary that is built, not one it replaces."""
    text = {}
    if vocabulary is not None:
        text['vocabulary'] = vocabulary
    if vocabulary is not None or extra_classes is not None:
        text['extra_classes'] = extra_classes
    if templates is not None:
        text['templates'] = templates
    options = dict(cfg_options or {})
    if text:
        config = config if isinstance(config, Config) else load_config(
            str(config))
        model = config.get('model')
        if isinstance(model, dict) and isinstance(
                model.get('text_encoder'), dict):
            options.update(
                (f'model.text_encoder.{k}', v) for k, v in text.items())
    cfg = read_config(config, options, test=False)
    return cfg


def load_weights(model: nn.Module, checkpoint: Optional[str]) -> None:
    """Load ``checkpoint`` (if any) without mmengine's progress line."""
    if checkpoint:
        with contextlib.redirect_stdout(io.StringIO()):
            load_checkpoint(model, checkpoint, map_location='cpu')


def init_groupvit(config: Union[str, Path, Config],
                  checkpoint: Optional[str] = None,
                  device: str = 'cpu',
                  vocabulary=None,
                  templates: Optional[Union[str, Sequence[str]]] = None,
                  bg_thresh: Optional[float] = None,
                  extra_classes=None,
                  cfg_options: Optional[dict] = None,
                  seed: int = 0,
                  random_weights: bool = False) -> nn.Module:
    """``mmseg.apis.init_model`` plus GroupViT's text options: the
    segmentor in eval mode, with ``model.cfg`` set.

    Args:
        checkpoint (str, optional): A checkpoint file or folder, a URL or
            ``hf://OWNER/NAME``; the config's ``load_from`` when None.
        vocabulary: Class names, synonym lists or a vocabulary file; the
            config's when None (so are ``templates`` and ``bg_thresh``).
        templates (str | list[str], optional): Template-set name or
            templates.
        extra_classes: Classes appended to the vocabulary.
        random_weights (bool): Random weights seeded with ``seed`` without
            a checkpoint (else that is a ``CheckpointError``).

    Raises:
        ConfigCheckError: The config is no zero-shot segmentor.
    """
    if bg_thresh is not None:
        cfg_options = dict(cfg_options or {})
        cfg_options['model.test_cfg.bg_thresh'] = bg_thresh
    cfg = read_with_text(config, cfg_options, vocabulary, templates,
                         extra_classes)
    check_zero_shot_segmentor(cfg.model, cfg.filename or 'the config')
    checkpoint = resolve_weights(cfg, checkpoint, random_weights, seed)
    # Not by init_model, which guesses class names without dataset_meta.
    model = init_model(cfg, None, device)
    load_weights(model, checkpoint)
    use_checked_steps(model.cfg.get('test_pipeline'))
    return model
