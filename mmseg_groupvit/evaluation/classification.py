# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Recognise a zero-shot classification config and describe its
protocol, for ``tools/test.py`` and ``tools/eval_suite.py``."""
from typing import Any, Dict

from mmengine.config import Config
from mmseg.registry import MODELS

from .protocol import _plain

__all__ = ['is_classification_config', 'describe_classification_protocol']


def is_classification_config(cfg) -> bool:
    """Whether a config (object or file) builds a
    :class:`~mmseg_groupvit.models.GroupViTClassifier` (or a subclass)."""
    from ..models.classifiers import GroupViTClassifier
    if not isinstance(cfg, Config):
        cfg = Config.fromfile(cfg)
    model_type = cfg.get('model', {}).get('type', None)
    if isinstance(model_type, str):
        model_type = MODELS.get(model_type)
    return isinstance(model_type, type) and issubclass(model_type,
                                                       GroupViTClassifier)


def describe_classification_protocol(cfg: Config) -> Dict[str, Any]:
    """The protocol of a (merged) classification config, JSON-friendly.

    Returns:
        dict: ``task`` ('classification'), ``dataset``, ``data_root``,
        ``pipeline`` (the test transforms), ``resize`` (``ResizeEdge``'s
        settings or None), ``crop`` (``CenterCrop`` size or None),
        ``templates``, ``vocabulary`` and ``topk``.
    """
    dataset = cfg.test_dataloader.dataset
    pipeline = list(dataset.get('pipeline', None) or [])
    resize = next((s for s in pipeline if s.get('type') == 'ResizeEdge'), None)
    crop = next((s for s in pipeline if s.get('type') == 'CenterCrop'), None)
    text = cfg.model.get('text_encoder', {})
    if text.get('vocabulary', None) is not None:
        vocabulary = dict(vocabulary=_plain(text.vocabulary))
    else:
        vocabulary = dict(dataset_name=text.get('dataset_name', None))
    evaluator = cfg.get('test_evaluator', {})
    return dict(
        task='classification',
        dataset=dataset.get('type'),
        data_root=dataset.get('data_root', None),
        pipeline=[s.get('type') for s in pipeline],
        resize=None if resize is None else dict(
            scale=resize.get('scale'), edge=resize.get('edge', 'short')),
        crop=None if crop is None else _plain(crop.get('crop_size')),
        templates=_plain(text.get('templates', 'simple')),
        vocabulary=vocabulary,
        topk=_plain(evaluator.get('topk', (1, ))))
