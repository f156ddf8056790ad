# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Validation of a pretraining run: zero-shot segmentation, plus zero-shot
classification when its data is present."""
import copy
import os.path as osp
from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import ValLoop, autocast
from mmseg.registry import LOOPS, MODELS

from groupvit_common.checks import check_class_count
from groupvit_common.errors import ConfigValueError
from ..utils.config_file import read_config

#: The text encoder keys that name the classes, not the architecture.
_VOCABULARY_KEYS = ('vocabulary', 'dataset_name', 'extra_classes', 'templates',
                    'frozen')


@LOOPS.register_module()
class ZeroShotValLoop(ValLoop):
    """mmengine's ``ValLoop`` plus, when ``classification.data_root``
    exists, zero-shot classification of the weights being trained by a
    classification config, metrics prefixed (``imagenet/accuracy/top1``).

    Args:
        classification (dict, optional): ``config``, ``data_root``,
            ``prefix`` (default ``'imagenet'``) and optionally
            ``dataloader`` (merged into the config's ``test_dataloader``).
        Others: as ``ValLoop``'s (``dataloader``: the segmentation data).
    """

    def __init__(self,
                 runner,
                 dataloader,
                 evaluator,
                 classification: Optional[dict] = None,
                 fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.classifier = None
        if classification is None:
            return
        missing = {'config', 'data_root'} - set(classification)
        if missing:
            raise ConfigValueError(
                f'val_cfg.classification needs {" and ".join(sorted(missing))}'
                f' (the classification config and its data folder).')
        root = classification['data_root']
        self.prefix = classification.get('prefix', 'imagenet')
        if not osp.isdir(root):
            print_log(
                f'Validation skips {self.prefix} zero-shot classification: '
                f'{root} not found (val_cfg.classification.data_root).',
                logger='current')
            return
        loader = copy.deepcopy(classification.get('dataloader', {}))
        loader.setdefault('dataset', {})['data_root'] = root
        cfg = read_config(classification['config'],
                          dict(test_dataloader=loader))
        self.cls_dataloader = runner.build_dataloader(
            cfg.test_dataloader, seed=runner.seed)
        self.cls_evaluator = runner.build_evaluator(cfg.test_evaluator)
        metainfo = self.cls_dataloader.dataset.metainfo
        self.cls_evaluator.dataset_meta = metainfo
        # The classification model with the trained encoders' shapes.
        trained = runner.cfg.model
        text = {
            k: v
            for k, v in trained['text_encoder'].items()
            if k not in _VOCABULARY_KEYS
        }
        text.update(cfg.model['text_encoder'])
        self.classifier = MODELS.build(
            dict(
                copy.deepcopy(cfg.model),
                image_encoder=copy.deepcopy(trained['image_encoder']),
                text_encoder=text))
        check_class_count(
            len(self.classifier.classes), len(metainfo['classes']),
            f'The {self.prefix} vocabulary has '
            f'{len(self.classifier.classes)} classes and its dataset '
            f'{len(metainfo["classes"])}. ')

    def run(self) -> dict:
        """``ValLoop.run`` with the classification's metrics joined."""
        if self.classifier is None:
            return super().run()
        evaluate = self.evaluator.evaluate
        self.evaluator.evaluate = lambda size: {
            **evaluate(size),
            **self.classify()
        }
        try:
            return super().run()
        finally:
            del self.evaluator.evaluate

    @torch.no_grad()
    def classify(self) -> dict:
        """Top-k of the trained weights on the classification data."""
        model = self.runner.model
        model = model.module if is_model_wrapper(model) else model
        device = next(model.parameters()).device
        classifier = self.classifier.to(device)
        classifier.load_state_dict(model.state_dict())
        classifier.eval()
        for data_batch in self.cls_dataloader:
            with autocast(enabled=self.fp16):
                outputs = classifier.val_step(data_batch)
            self.cls_evaluator.process(
                data_samples=outputs, data_batch=data_batch)
        metrics = self.cls_evaluator.evaluate(len(self.cls_dataloader.dataset))
        return {f'{self.prefix}/{k}': v for k, v in metrics.items()}
