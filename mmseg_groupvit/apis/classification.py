# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot classification of single images with
:class:`~mmseg_groupvit.models.GroupViTClassifier`."""
import copy
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from torch import nn

from groupvit_common.errors import ConfigCheckError
from ..datasets.transforms import pixel_array
from ..evaluation.protocol import is_classification_config
from ..evaluation.test_run import use_checked_loading
from .inference import load_weights, read_with_text, resolve_weights


def init_classifier(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    device: str = 'cpu',
                    vocabulary=None,
                    templates: Optional[Union[str, Sequence[str]]] = None,
                    extra_classes=None,
                    cfg_options: Optional[dict] = None,
                    seed: int = 0,
                    random_weights: bool = False) -> nn.Module:
    """A classifier in eval mode, ``model.cfg`` set, from a classification
    config; the arguments as in :func:`~mmseg_groupvit.apis.init_groupvit`."""
    cfg = read_with_text(config, cfg_options, vocabulary, templates,
                         extra_classes)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if not is_classification_config(cfg):
        raise ConfigCheckError(
            f'{config if isinstance(config, str) else "the config"} does not '
            f'build a GroupViTClassifier (its model is '
            f'{cfg.model.get("type")!r}): classification needs a '
            f'classification config, e.g. configs/classification/'
            f'groupvit_imagenet.py.')
    checkpoint = resolve_weights(cfg, checkpoint, random_weights, seed)
    model = MODELS.build(cfg.model)
    load_weights(model, checkpoint)
    model.cfg = cfg
    return model.to(device).eval()


@torch.no_grad()
def classify_image(model: nn.Module, image: Union[str,
                                                  np.ndarray]) -> List[dict]:
    """Rank the model's classes for one image file or BGR array (as
    ``inference_model``): one dict per class, best first, of ``name``,
    ``synonyms``, ``label``, ``probability`` and ``cosine``."""
    cfg = copy.deepcopy(model.cfg)
    use_checked_loading(cfg)
    steps = cfg.test_dataloader.dataset.pipeline
    data = dict(img_path=image)
    if isinstance(image, np.ndarray):
        image = pixel_array(image, 'the image array')
        if image.dtype != np.uint8 or image.shape[2:] != (3, ):
            raise ValueError(
                f'classify_image takes an image array as cv2.imread gives '
                f'it, HxWx3 uint8 BGR (its resize is Pillow\'s, of uint8), '
                f'got {image.dtype} of shape {image.shape}. Convert it first: '
                f'pixel values 0..255 with array.round().astype(np.uint8), '
                f'a gray image with cv2.cvtColor(array, cv2.COLOR_GRAY2BGR), '
                f'BGRA with array[..., :3].')
        steps[0], data = dict(type='LoadImageFromNDArray'), dict(img=image)
    data = model.data_preprocessor(
        pseudo_collate([Compose(steps)(data)]), False)
    sample = model.predict(data['inputs'], data['data_samples'])[0]
    order = sample.pred_score.argsort(descending=True).tolist()
    return [
        dict(
            name=model.classes[k][0],
            synonyms=model.classes[k][1:],
            label=k,
            probability=float(sample.pred_score[k]),
            cosine=float(sample.pred_logits[k])) for k in order
    ]
