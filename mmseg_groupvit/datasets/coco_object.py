# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""COCO-Object: COCO's 80 thing classes plus background (81 classes).

The zero-shot segmentation benchmark of GroupViT (Xu et al., CVPR 2022,
`arXiv:2202.11094 <https://arxiv.org/abs/2202.11094>`_): COCO val2017 with
every thing class kept and everything else (stuff and unlabeled pixels)
counted as background 0. There is no ignore region. The label maps are made
by ``tools/dataset_converters/coco_object.py`` from COCO-Stuff-164k raw maps
or from COCO instance annotations; the layout follows GroupViT's
``segmentation/configs/_base_/datasets/coco.py`` (NVlabs/GroupViT, read for
reference only)::

    data_root/
    ├── images/val2017/000000039769.jpg
    └── annotations/val2017/000000039769_instanceTrainIds.png  # 0..80, uint8

mmseg 1.2.2 has no such dataset, only ``COCOStuffDataset`` (171 classes),
whose first 80 names are the thing classes used here.
"""
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..utils.class_names import COCO_OBJECT_CLASSES

__all__ = ['COCOObjectDataset']


def _voc_colormap(num_colors: int) -> List[List[int]]:
    """Distinct RGB colours by the PASCAL VOC devkit's bit-interleaving rule.

    Colour ``i`` spreads the bits of ``i`` over the high bits of R, G and B
    (``VOCdevkit/VOCcode/VOClabelcolormap.m``), so colours are unique for
    ``i < 512`` and colour 0 is black.

    Args:
        num_colors (int): How many colours to make.

    Returns:
        list[list[int]]: ``num_colors`` ``[R, G, B]`` triplets.
    """
    colors = []
    for index in range(num_colors):
        rgb = [0, 0, 0]
        value = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        colors.append(rgb)
    return colors


@DATASETS.register_module()
class COCOObjectDataset(BaseSegDataset):
    """COCO-Object dataset: background + 80 COCO thing classes.

    Label ``0`` is background (stuff and unlabeled pixels included) and
    labels ``1..80`` are the COCO thing classes in category-id order
    (person = 1, ..., toothbrush = 80), with mmseg's ``COCOStuffDataset``
    names. ``reduce_zero_label`` must stay ``False``: background is a class
    that is evaluated, as in GroupViT.

    Args:
        img_suffix (str): Suffix of the images. Defaults to ``'.jpg'``.
        seg_map_suffix (str): Suffix of the label maps. Defaults to
            ``'_instanceTrainIds.png'``.
        reduce_zero_label (bool): Must be ``False``. Defaults to ``False``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`, e.g.
            ``data_root``, ``data_prefix=dict(img_path='images/val2017',
            seg_map_path='annotations/val2017')``, ``ann_file``,
            ``pipeline``.
    """
    METAINFO = dict(
        classes=COCO_OBJECT_CLASSES,
        palette=_voc_colormap(len(COCO_OBJECT_CLASSES)))

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '_instanceTrainIds.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if reduce_zero_label:
            raise ValueError(
                'COCOObjectDataset needs reduce_zero_label=False: label 0 is '
                'the background class, which COCO-Object evaluates (81 '
                'classes). Remove reduce_zero_label from the dataset config.')
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
