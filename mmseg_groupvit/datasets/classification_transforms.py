# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmpretrain's ``ResizeEdge`` and ``PackInputs``, which mmcv lacks."""
from typing import Sequence

import mmcv
import torch
from mmcv.transforms import BaseTransform
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

from groupvit_common.checks import check_choice, check_positive_int


@TRANSFORMS.register_module()
class ResizeEdge(BaseTransform):
    """Resize so that the short (or long) edge is ``scale``, the other
    ``int(scale * other / edge)`` as torchvision's ``Resize(int)``.

    Args:
        scale (int): Target edge length.
        edge (str): ``'short'`` or ``'long'``. Defaults to 'short'.
        backend (str): ``'cv2'`` or ``'pillow'`` (torchvision's resize of
            PIL images). Defaults to 'cv2'.
        interpolation (str): Defaults to 'bilinear'.
    """

    def __init__(self,
                 scale: int,
                 edge: str = 'short',
                 backend: str = 'cv2',
                 interpolation: str = 'bilinear'):
        self.scale = check_positive_int(scale, 'ResizeEdge.scale',
                                        'the edge\'s length in pixels')
        self.edge = check_choice(edge, 'ResizeEdge.edge', ('short', 'long'))
        self.backend = backend
        self.interpolation = interpolation

    def target_size(self, h: int, w: int):
        """``(w, h)`` after the resize."""
        short_is_h = (h <= w) == (self.edge == 'short')
        if short_is_h:
            return int(self.scale * w / h), self.scale
        return self.scale, int(self.scale * h / w)

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        size = self.target_size(h, w)
        results['img'] = mmcv.imresize(
            results['img'],
            size,
            interpolation=self.interpolation,
            backend=self.backend)
        results['img_shape'] = results['img'].shape[:2]
        results['scale_factor'] = (size[0] / w, size[1] / h)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'edge={self.edge!r}, backend={self.backend!r}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class PackInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` (``inputs`` ``[3, H, W]`` uint8) with the
    sample's ``gt_label`` ``[1]`` when it has one."""

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'ori_shape',
                                             'img_shape', 'scale_factor')):
        super().__init__(tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        if 'gt_label' in results:
            packed['data_samples'].gt_label = torch.tensor(
                [int(results['gt_label'])])
        return packed
