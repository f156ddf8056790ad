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
    """Per grouping stage, first to last, the group every pixel of an image
    (path or BGR array) belongs to (the chained soft assignments arg-maxed);
    ``model``: a GroupViT segmentor with ``model.cfg``."""
    pipeline = without_annotations(model.cfg.test_pipeline)
    data = dict(img_path=image)
    if not isinstance(image, str):
        pipeline[0], data = dict(type='LoadImageFromNDArray'), dict(img=image)
    batch = model.data_preprocessor(
        pseudo_collate([Compose(pipeline)(data)]), False)
    feats = model.image_encoder(batch['inputs'])
    ori_shape = batch['data_samples'][0].ori_shape
    stages = []
    for stage in range(1, len(feats['soft_assigns']) + 1):
        soft = group_maps(feats['soft_assigns'][:stage], feats['grid'],
                          ori_shape)
        stages.append(
            StageGroups(soft.argmax(dim=1)[0].cpu().numpy(), soft.shape[1]))
    return stages
