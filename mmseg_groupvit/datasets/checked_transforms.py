# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmcv's ``Resize`` and mmseg's ``LoadAnnotations`` naming the image sizes
they cannot handle, and :func:`use_checked_steps`, the table of swaps."""
from typing import List

import cv2
import numpy as np
from mmcv.transforms import Resize
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from groupvit_common.errors import ImageSizeError
from groupvit_common.files import check_image, check_label_channels


@TRANSFORMS.register_module()
class CheckedResize(Resize):
    """mmcv's ``Resize`` raising :class:`ImageSizeError` for an empty image
    or a side under one pixel after the resize, and ``ValueError`` for an
    array of other values than pixels 0..255 (:func:`pixel_array`)."""

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        name = results.get('img_path') or 'the image array'
        if img is not None:
            results['img'] = img = pixel_array(img, name)
        try:
            return super().transform(results)
        except (cv2.error, ZeroDivisionError):
            height, width = img.shape[:2]
            raise ImageSizeError(
                f'{name} ({height}x{width}) cannot be resized by '
                f'the test pipeline (Resize scale={self.scale}, '
                f'keep_ratio={self.keep_ratio}): one side would be under one '
                f'pixel. Crop the image into less elongated pieces, or '
                f'remove it from the split file.') from None


def pixel_array(img: np.ndarray, name: str) -> np.ndarray:
    """An image array as the test pipelines take it: integer pixel values
    as uint8 (cv2 resizes uint8); :class:`ImageSizeError` for an empty one,
    :func:`check_pixel_values` for one that is not uint8."""
    if img.ndim < 2 or min(img.shape[:2]) < 1:
        raise ImageSizeError(
            f'{name} is empty (shape {tuple(img.shape)}): it has no pixels. '
            f'Give an image of at least one pixel on each side.')
    if img.dtype != np.uint8:
        check_pixel_values(img, name)
        if np.issubdtype(img.dtype, np.integer):
            img = img.astype(np.uint8)
    return img


def check_pixel_values(img: np.ndarray, name: str) -> None:
    """Raise unless the values of an image array that is not uint8 are
    pixel values 0..255 (what the data preprocessor's mean and std take):
    not bools, not 16-bit values, not floats in [0, 1]."""
    low, high = img.min(), img.max()
    if img.dtype == bool or low < 0 or high > 255 or (np.issubdtype(
            img.dtype, np.floating) and 0 < high <= 1):
        raise ValueError(
            f'{name} ({img.dtype}, values {low} to {high}) does not hold '
            f'pixel values 0..255, which GroupViT\'s mean and std take '
            f'(uint8 BGR, as cv2.imread gives): its labels would be those '
            f'of another image. Convert it first: 16-bit values with '
            f'(array >> 8).astype(np.uint8), floats in [0, 1] with '
            f'(array * 255).round().astype(np.uint8).')


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that keeps both dimensions of a label
    map with a side of one pixel (mmseg squeezes them) and raises
    :class:`LabelMapError` for one of several channels."""

    def _load_seg_map(self, results: dict) -> None:
        super()._load_seg_map(results)
        label, path = results['gt_seg_map'], results['seg_map_path']
        check_label_channels(label, path)
        if label.ndim == 2:
            return
        content = fileio.get(path, backend_args=self.backend_args)
        width, height = check_image(content, path, max_aspect=None)
        results['gt_seg_map'] = np.ascontiguousarray(
            label.reshape(height, width))


def step_kind(step: dict) -> str:
    """A pipeline step's type without mmcv's or mmseg's registry scope
    (``'mmcv.Resize'`` is ``'Resize'``)."""
    kind = str(step.get('type'))
    return kind.split('.', 1)[1] if kind.startswith(
        ('mmcv.', 'mmseg.')) else kind


def use_checked_steps(pipeline,
                      annotations: bool = False,
                      where: str = 'pipeline') -> List[str]:
    """Swap in place ``LoadImageFromFile``, ``Resize`` and, with
    ``annotations`` (not for ``cfg.test_pipeline``, where
    ``inference_model`` looks for the name), ``LoadAnnotations`` for their
    checked versions, also in the stages of a ``TestTimeAug`` step.

    Returns:
        list[str]: One ``WHERE.INDEX: OLD -> NEW`` line per step swapped.
    """
    swaps = {
        'LoadImageFromFile': 'RobustLoadImageFromFile',
        'mmcv.LoadImageFromFile': 'RobustLoadImageFromFile',
        'Resize': 'CheckedResize',
        'mmcv.Resize': 'CheckedResize'
    }
    if annotations:  # mmseg's, not mmcv's (other arguments)
        swaps.update({
            'LoadAnnotations': 'CheckedLoadAnnotations',
            'mmseg.LoadAnnotations': 'CheckedLoadAnnotations'
        })
    lines = []
    for index, step in enumerate(pipeline or []):
        if step_kind(step) == 'TestTimeAug':  # each stage's choices
            for number, stage in enumerate(step.get('transforms') or []):
                lines += use_checked_steps(
                    stage, annotations, f'{where}.{index}.transforms.{number}')
            continue
        kind = step.get('type')
        new = swaps.get(kind) if isinstance(kind, str) else None
        if new is not None:
            step['type'] = new
            lines.append(f'{where}.{index}: {kind} -> {new}')
    return lines
