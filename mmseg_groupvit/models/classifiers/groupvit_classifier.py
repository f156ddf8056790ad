# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot image classification with GroupViT (the paper's ImageNet
protocol), on the segmentor's encoders and checkpoints."""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from mmseg.registry import MODELS
from torch import Tensor, nn

from groupvit_common.vocabulary import distinct_classes, resolve_classes
from ...utils import get_prompt_classes
from ...weights.check import check_on_load, check_state_dict


@MODELS.register_module()
class GroupViTClassifier(BaseModel):
    """GroupViT zero-shot image classifier: logits are the cosine ``[B, K]``
    of image and class embeddings; predictions carry ``pred_score =
    softmax(s * cosine)`` and ``pred_label``.

    Args:
        image_encoder (dict): :class:`GroupViT` config (with projector).
        text_encoder (dict): :class:`GroupViTTextEncoder` config; its
            ``vocabulary`` / ``dataset_name`` / ``extra_classes`` name the
            classes.
        logit_scale_max (float, optional): Clamp of ``s = exp(logit_scale)``
            (None: none).
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 logit_scale_max: Optional[float] = 100.,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        text_cfg = dict(text_encoder)
        self.classes, _ = resolve_classes(
            text_cfg.pop('vocabulary', None),
            text_cfg.pop('dataset_name', None),
            text_cfg.pop('extra_classes', None), get_prompt_classes)
        unique, index = distinct_classes(self.classes)
        text_cfg['vocabulary'] = unique
        self.image_encoder = MODELS.build(image_encoder)
        self.text_encoder = MODELS.build(text_cfg)
        self.register_buffer(
            'class_index', torch.tensor(index), persistent=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.logit_scale_max = logit_scale_max
        self.register_load_state_dict_pre_hook(check_on_load)

    def check_checkpoint(self, state_dict: dict) -> None:
        """Take the segmentor's temperature as the classifier's; refuse
        keys, shapes or values that differ."""
        scale = state_dict.pop('decode_head.logit_scale', None)
        if scale is not None:
            state_dict['logit_scale'] = scale
        check_state_dict(self, state_dict)

    def set_vocabulary(self,
                       vocabulary=None,
                       templates=None,
                       dataset_name: Optional[str] = None,
                       extra_classes=None) -> None:
        """Change the classes (and templates, unless None); a refused change
        leaves the classifier as it was."""
        classes, _ = resolve_classes(vocabulary, dataset_name, extra_classes,
                                     get_prompt_classes)
        unique, index = distinct_classes(classes)
        self.text_encoder.set_vocabulary(unique, templates)
        self.classes = classes
        self.class_index = torch.tensor(index, device=self.class_index.device)

    @property
    def class_names(self) -> List[str]:
        return [names[0] for names in self.classes]

    @property
    def dataset_meta(self) -> dict:
        return dict(classes=self.class_names)

    @dataset_meta.setter
    def dataset_meta(self, meta) -> None:
        """The classes come from the vocabulary, not a dataset."""

    def class_embeddings(self) -> Tensor:
        """``[K, D]`` normalised class embeddings in label order."""
        return self.text_encoder()[self.class_index]

    def image_embeddings(self, inputs: Tensor) -> Tensor:
        """``[B, D]`` normalised embeddings of images ``[B, 3, H, W]``."""
        return F.normalize(self.image_encoder(inputs)['image_embeds'], dim=-1)

    def logits(self, inputs: Tensor) -> Tensor:
        """Cosine of every image with every class ``[B, K]``."""
        return self.image_embeddings(inputs) @ self.class_embeddings().t()

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[Sequence[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """``'tensor'``: the logits ``[B, K]``; ``'predict'``: samples with
        ``pred_score`` ``[K]`` and ``pred_label`` ``[1]``."""
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(
            f'GroupViTClassifier supports mode "tensor" and "predict", not '
            f'{mode!r}: it is a zero-shot classifier and is not trained. '
            f'Train GroupViT with the segmentation configs.')

    def predict(
        self,
        inputs: Tensor,
        data_samples: Optional[Sequence[BaseDataElement]] = None
    ) -> List[BaseDataElement]:
        logits = self.logits(inputs)
        scale = self.logit_scale.exp()
        if self.logit_scale_max is not None:
            scale = scale.clamp(max=self.logit_scale_max)
        scores = F.softmax(logits * scale, dim=-1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(inputs))]
        for sample, score, cos in zip(data_samples, scores, logits):
            sample.set_data(
                dict(
                    pred_score=score,
                    pred_logits=cos,
                    pred_label=score.argmax(dim=-1, keepdim=True)))
        return list(data_samples)
