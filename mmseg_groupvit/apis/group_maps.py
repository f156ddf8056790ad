# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The groups GroupViT forms on an image, stage by stage."""
from typing import List, NamedTuple, Union

import numpy as np
import torch
from mmengine.dataset import Compose, pseudo_collate
from torch import nn

from ..datasets.transforms import without_annotations
from ..models.decode_heads import group_maps


class StageGroups(NamedTuple):
    """``groups`` ``[H, W]`` int64 group id of every pixel of one stage,
    and its ``num_groups``."""
    groups: np.ndarray
    num_groups: int


@torch.no_grad()
def image_group_maps(model: nn.Module,
                     image: Union[str, np.ndarray]) -> List[StageGroups]:
    """Per grouping stage, the group every pixel of the whole image belongs
    to (the chained soft assignments arg-maxed).

    Args:
        model (nn.Module): A GroupViT segmentor with ``model.cfg`` (from
            :func:`init_groupvit` or ``mmseg.apis.init_model``).
        image (str | ndarray): Image path or BGR array.

    Returns:
        list[StageGroups]: One entry per grouping stage, first to last.
    """
    pipeline = without_annotations(model.cfg.test_pipeline)
    if isinstance(image, str):
        data = dict(img_path=image)
    else:
        pipeline[0] = dict(type='LoadImageFromNDArray')
        data = dict(img=image)
    data = Compose(pipeline)(data)
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    feats = model.image_encoder(batch['inputs'])
    ori_shape = batch['data_samples'][0].ori_shape
    stages = []
    for stage in range(1, len(feats['soft_assigns']) + 1):
        soft = group_maps(feats['soft_assigns'][:stage], feats['grid'],
                          ori_shape)
        stages.append(
            StageGroups(soft.argmax(dim=1)[0].cpu().numpy(), soft.shape[1]))
    return stages
