# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmcv's ``Resize`` and mmseg's ``LoadAnnotations`` with the image sizes
they cannot handle named or handled.

- :class:`CheckedResize`: an empty image, or one so elongated that a side
  would be under one pixel after the resize (a 10x100000 strip), raises
  :class:`ImageSizeError` naming the file and its size, where mmcv fails
  with an OpenCV assertion (``inv_scale_x > 0``) or a division by zero that
  names neither.
- :class:`CheckedLoadAnnotations`: a label map with a side of one pixel
  (a 1x1 or 1xW image) keeps its two dimensions; mmseg squeezes them away
  and ``PackSegInputs`` then fails with "The dim of value must be 2 or 3".
  A label map of several channels (an RGB picture of the labels) raises
  :class:`LabelMapError` naming the file.

The shipped dataset configs name ``CheckedResize``; ``tools/test.py``
loads label maps with ``CheckedLoadAnnotations`` (the configs keep mmseg's
name, which ``inference_model`` and ``MMSegInferencer`` look for), and
:func:`mmseg_groupvit.apis.init_groupvit` puts ``RobustLoadImageFromFile``
and ``CheckedResize`` in the ``cfg.test_pipeline`` of a model
(:func:`use_checked_steps`, the one table of these swaps).
"""
import io
from typing import Dict, List

import cv2
import numpy as np
from mmcv.transforms import Resize
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from PIL import Image

from groupvit_common.errors import ImageSizeError, LabelMapError

__all__ = [
    'CheckedResize', 'CheckedLoadAnnotations', 'use_checked_steps',
    'swap_steps'
]


def _name(results: dict) -> str:
    return results.get('img_path') or 'the image array'


@TRANSFORMS.register_module()
class CheckedResize(Resize):
    """mmcv's ``Resize`` (same arguments, same pixels) that names the image
    when it is empty or cannot be resized.

    Raises:
        ImageSizeError: The image has no pixels, or a side would be under
            one pixel after the resize.
    """

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if img is not None and (img.ndim < 2 or min(img.shape[:2]) < 1):
            raise ImageSizeError(
                f'{_name(results)} is empty (shape {tuple(img.shape)}): there '
                f'is nothing to segment. Give an image of at least one pixel '
                f'on each side.')
        try:
            return super().transform(results)
        except (cv2.error, ZeroDivisionError):
            height, width = img.shape[:2]
            raise ImageSizeError(
                f'{_name(results)} ({height}x{width}) cannot be resized by '
                f'the test pipeline (Resize scale={self.scale}, '
                f'keep_ratio={self.keep_ratio}): one side would be under one '
                f'pixel. Crop the image into less elongated pieces, or '
                f'remove it from the split file.') from None


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that keeps both dimensions of a label
    map with a side of one pixel and refuses one of several channels.

    Raises:
        LabelMapError: The label map has several channels (RGB, RGBA).
    """

    def _load_seg_map(self, results: dict) -> None:
        super()._load_seg_map(results)
        label = results['gt_seg_map']
        if label.ndim > 2:
            raise LabelMapError(
                f'Label map {results["seg_map_path"]} has {label.shape[2]} '
                f'channels (a colour picture of the labels?): label maps must '
                f'be single-channel index maps, each pixel the index of its '
                f'class (grayscale or palette PNG). Convert the colours to '
                f'class indices first.')
        if label.ndim == 2:
            return
        # mmseg squeezes [1, W], [H, 1] and [1, 1] maps; the file header
        # gives the size back.
        content = fileio.get(
            results['seg_map_path'], backend_args=self.backend_args)

        with Image.open(io.BytesIO(content)) as picture:
            width, height = picture.size
        results['gt_seg_map'] = np.ascontiguousarray(
            label.reshape(height, width))


def use_checked_steps(pipeline,
                      annotations: bool = False,
                      where: str = 'pipeline') -> List[str]:
    """Swap mmcv's ``LoadImageFromFile`` for :class:`RobustLoadImageFromFile`
    and ``Resize`` for :class:`CheckedResize` in a pipeline config (in
    place), and with ``annotations`` ``LoadAnnotations`` for
    :class:`CheckedLoadAnnotations` (not in ``cfg.test_pipeline``, from
    which ``inference_model`` removes ``LoadAnnotations`` by name).

    The checked steps give the same pixels and labels and name bad files;
    steps already checked are left as they are.

    Args:
        pipeline (list[dict], optional): The pipeline config.
        annotations (bool): Swap ``LoadAnnotations`` too.
        where (str): The pipeline's config key, for the returned lines.

    Returns:
        list[str]: One ``KEY.INDEX: OLD -> NEW`` line per step swapped.
    """
    swaps = {
        'LoadImageFromFile': 'RobustLoadImageFromFile',
        'mmcv.LoadImageFromFile': 'RobustLoadImageFromFile',
        'Resize': 'CheckedResize',
        'mmcv.Resize': 'CheckedResize'
    }
    if annotations:
        swaps.update({
            'LoadAnnotations': 'CheckedLoadAnnotations',
            'mmseg.LoadAnnotations': 'CheckedLoadAnnotations'
        })
    return swap_steps(pipeline, swaps, where)


def swap_steps(pipeline, swaps: Dict[str, str], where: str) -> List[str]:
    """Give the steps of a pipeline config another type (in place).

    Args:
        pipeline (list[dict], optional): The pipeline config.
        swaps (dict[str, str]): New type by old type (as written in the
            config, scope included).
        where (str): The pipeline's config key, for the returned lines.

    Returns:
        list[str]: One ``KEY.INDEX: OLD -> NEW`` line per step swapped.
    """
    lines = []
    for index, step in enumerate(pipeline or []):
        kind = step.get('type')
        new = swaps.get(kind) if isinstance(kind, str) else None
        if new is not None:
            step['type'] = new
            lines.append(f'{where}.{index}: {kind} -> {new}')
    return lines
