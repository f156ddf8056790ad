# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""ResizeEdge + CenterCrop + PackInputs against the original's
torchvision-style preprocessing written with PIL."""
import numpy as np
import torch
from mmcv.transforms import CenterCrop
from PIL import Image

from mmseg_groupvit.datasets import PackInputs, ResizeEdge
from tests.conftest import VOC_SAMPLE


def test_short_side_256_center_224_equals_pil():
    path = f'{VOC_SAMPLE}/JPEGImages/2007_000033.jpg'  # 500 x 366
    rgb = Image.open(path).convert('RGB')
    # torchvision's Resize(256) on a PIL image: the long side is
    # int(256 * 500 / 366) = 349; CenterCrop(224) rounds the offsets.
    expected = np.asarray(rgb.resize((349, 256), Image.BILINEAR))
    top, left = round((256 - 224) / 2), round((349 - 224) / 2)
    expected = expected[top:top + 224, left:left + 224]

    results = dict(img=np.ascontiguousarray(np.asarray(rgb)[..., ::-1]))
    results = ResizeEdge(256, backend='pillow').transform(results)
    assert results['img'].shape == (256, 349, 3)
    results = CenterCrop(crop_size=224).transform(results)
    results['gt_label'] = 4
    packed = PackInputs().transform(results)
    assert packed['inputs'].shape == (3, 224, 224)
    assert torch.equal(packed['inputs'].flip(0).permute(1, 2, 0),
                       torch.from_numpy(expected.copy()))
    assert packed['data_samples'].gt_label.tolist() == [4]


def test_long_edge_and_portrait():
    resize = ResizeEdge(100)
    assert resize.target_size(h=300, w=200) == (100, 150)
    assert ResizeEdge(100, edge='long').target_size(h=300, w=200) == (66, 100)
