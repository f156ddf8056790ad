# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Building a GroupViT segmentor for single images, on top of
``mmseg.apis``."""
import warnings
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from mmseg.apis import init_model
from ..models.decode_heads import group_maps
from ..visualization import group_palette


def init_groupvit(config: Union[str, Config],
                  checkpoint: Optional[str] = None,
                  device: str = 'cpu',
                  vocabulary=None,
                  templates: Optional[Union[str, Sequence[str]]] = None,
                  bg_thresh: Optional[float] = None,
                  cfg_options: Optional[dict] = None):
    """``mmseg.apis.init_model`` plus GroupViT's text options.

    ``model.dataset_meta`` is set from the vocabulary (``background`` first
    when the head has a background channel), so mmseg's visualiser and
    ``inference_model`` name the classes correctly.

    Args:
        config (str | Config): Config file or object.
        checkpoint (str, optional): Converted checkpoint; random weights
            when None (a warning says so).
        device (str): Device. Defaults to 'cpu'.
        vocabulary: Class names, synonym lists or a vocabulary file; the
            config's vocabulary when None.
        templates (str | list[str], optional): Template set or list.
        bg_thresh (float, optional): Overrides the config's threshold.
        cfg_options (dict, optional): Other config overrides.

    Returns:
        nn.Module: The segmentor in eval mode.
    """
    if checkpoint is None:
        warnings.warn('No checkpoint given: the model has RANDOM weights and '
                      'its predictions are meaningless. Convert the '
                      'published weights with tools/convert_weights.py.')
    with warnings.catch_warnings():
        # init_model warns about class names it cannot find in our meta;
        # they are set below from the vocabulary.
        warnings.simplefilter('ignore')
        model = init_model(config, checkpoint, device, cfg_options)
    if vocabulary is not None or templates is not None:
        model.set_vocabulary(
            vocabulary if vocabulary is not None else
            model.text_encoder.classes, templates)
    if bg_thresh is not None:
        model.test_cfg['bg_thresh'] = bg_thresh
    classes = list(model.text_encoder.class_names)
    if getattr(model.decode_head, 'with_bg', False):
        classes = ['background'] + classes
    palette = group_palette(len(classes)).tolist()
    if classes[0] == 'background':
        palette[0] = [0, 0, 0]
    model.dataset_meta = dict(classes=classes, palette=palette)
    return model


@torch.no_grad()
def image_group_maps(model, image: Union[str, np.ndarray]) -> List[np.ndarray]:
    """Per grouping stage, the group each pixel belongs to.

    The whole (resized) image goes through the image encoder once, as the
    original demo does; stage ``i``'s soft assignments are chained up to it,
    resized to the original image size and arg-maxed.

    Args:
        model: A GroupViT segmentor from :func:`init_groupvit`.
        image (str | ndarray): Path or BGR array.

    Returns:
        list[ndarray]: ``[H, W]`` int64 group ids, one map per stage.
    """
    cfg = model.cfg
    pipeline = [
        t for t in cfg.test_pipeline if t['type'] != 'LoadAnnotations'
    ]
    if not isinstance(image, str):
        pipeline[0] = dict(type='LoadImageFromNDArray')
        data = dict(img=image)
    else:
        data = dict(img_path=image)
    data = Compose(pipeline)(data)
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    feats = model.image_encoder(batch['inputs'])
    ori_shape = batch['data_samples'][0].ori_shape
    maps = []
    for stage in range(1, len(feats['soft_assigns']) + 1):
        soft = group_maps(feats['soft_assigns'][:stage], feats['grid'],
                          ori_shape)
        maps.append(soft.argmax(dim=1)[0].cpu().numpy())
    return maps
