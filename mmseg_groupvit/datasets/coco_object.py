# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""COCO-Object: COCO val2017 with background (label 0) and the 80 thing
classes, GroupViT's zero-shot benchmark (label maps made by
``tools/dataset_converters/coco_object.py``)."""
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..utils.class_names import COCO_OBJECT_CLASSES


def _voc_colormap(num_colors: int) -> List[List[int]]:
    """The PASCAL VOC devkit's colours (``VOClabelcolormap.m``)."""
    colors = []
    for index in range(num_colors):
        rgb = [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((index >> channel) & 1) << shift
            index >>= 3
        colors.append(rgb)
    return colors


@DATASETS.register_module()
class COCOObjectDataset(BaseSegDataset):
    """COCO-Object: background + the 80 COCO thing classes (mmseg's
    names); ``reduce_zero_label`` must stay False (background is
    evaluated)."""
    METAINFO = dict(
        classes=COCO_OBJECT_CLASSES,
        palette=_voc_colormap(len(COCO_OBJECT_CLASSES)))

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '_instanceTrainIds.png',
                 **kwargs) -> None:
        if kwargs.get('reduce_zero_label'):
            raise ValueError(
                'COCOObjectDataset needs reduce_zero_label=False: label 0 is '
                'the background class, which COCO-Object evaluates (81 '
                'classes). Remove reduce_zero_label from the dataset config.')
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
