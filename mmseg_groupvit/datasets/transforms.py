# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmcv's ``LoadImageFromFile`` and ``Resize`` and mmseg's ``LoadAnnotations``
naming the files and sizes they cannot handle (same pixels where they work),
and :func:`use_checked_steps`, the table of swaps."""
import io
import os
import stat
import warnings
from typing import List, Optional

import cv2
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile, Resize
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from PIL import Image, UnidentifiedImageError

from groupvit_common.errors import ImageLoadError, ImageSizeError
from groupvit_common.files import (MAX_IMAGE_BYTES, check_image,
                                   check_label_channels, file_kind, image_mode)

_warned_exif = False


def exif_orientation(content: bytes) -> int:
    """The EXIF orientation (1 upright .. 8) of an encoded image, from its
    header; 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # no EXIF is not an error
        return 1


def _missing_end_marker(content: bytes) -> bool:
    """Whether a JPEG or PNG lacks its end marker (trailing zeros ignored)."""
    tail = content.rstrip(b'\x00')
    if content.startswith(b'\xff\xd8'):
        return not tail.endswith(b'\xff\xd9')
    if content.startswith(b'\x89PNG\r\n\x1a\n'):
        return b'IEND' not in tail[-12:]
    return False


def _pillow_mode(content: bytes) -> str:
    """Pillow's mode of an encoded image, the one rule of which modes load:
    ``I`` (32-bit) and ``F`` (float) are clipped by both decoders; mmcv's
    Pillow decoding breaks the rules (``value >> 8``, alpha dropped) of
    16-bit gray (``I;16``, clipped at 255) and of gray with alpha (``LA``,
    laid on a coloured canvas). ``''`` for no image (the decoders name
    it)."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            return image_mode(img)
    except Exception:  # not an image
        return ''


def _pillow_reason(content: bytes) -> Optional[str]:
    """Why Pillow cannot decode ``content``; None if it can."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.load()
    except UnidentifiedImageError:
        return 'not a known image format'
    except Exception as e:  # any decoder failure
        return f'{type(e).__name__}: {e}'
    return None


@TRANSFORMS.register_module()
class RobustLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` naming bad files (and
    ``results['listed_in']``); also adds ``exif_orientation``. 16-bit gray
    and gray-with-alpha files are decoded by cv2 also where Pillow is asked
    for (Pillow's pixels break the rules of 16 bits and alpha)."""

    def _fail(self, results: dict, reason: str, fix: str):
        if self.ignore_empty:
            return None
        listed = results.get('listed_in')
        if listed:
            fix = fix.replace('the split file', listed) if \
                'the split file' in fix else f'{fix} It is listed in {listed}.'
        raise ImageLoadError(
            f'Cannot load image {results["img_path"]}: {reason}. {fix}')

    def transform(self, results: dict) -> Optional[dict]:
        global _warned_exif
        filename = results['img_path']
        not_an_image = 'Name an image file, or remove the name from the ' \
            'split file.'
        try:
            if '\0' in filename:  # no file has such a name (not an OSError)
                raise FileNotFoundError(filename)
            if self.file_client_args is None and '://' not in filename:
                # Opening a FIFO would wait, /dev/zero would never end.
                info = os.stat(filename)
                if not stat.S_ISREG(info.st_mode):
                    return self._fail(
                        results, f'it is {file_kind(info.st_mode)}, not an '
                        f'image file', not_an_image)
                if info.st_size > MAX_IMAGE_BYTES:
                    return self._fail(
                        results, f'it is {info.st_size:,} bytes, more than '
                        f'the {MAX_IMAGE_BYTES:,} an image file may take',
                        'It is not an image, or it was damaged: remove the '
                        'name from the split file.')
            if self.file_client_args is not None:
                content = fileio.FileClient.infer_client(
                    self.file_client_args, filename).get(filename)
            else:
                content = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            return self._fail(
                results, 'the file does not exist',
                'Check data_root / data_prefix in the config, or remove the '
                'name from the split file.')
        except IsADirectoryError:
            return self._fail(results, 'it is a folder, not an image file',
                              not_an_image)
        except OSError as e:
            return self._fail(results, f'it cannot be read ({e})',
                              'Check its permissions.')
        if not content:
            return self._fail(results, 'the file is empty (0 bytes)',
                              'Copy or download it again.')
        try:
            check_image(content, filename)
        except ImageLoadError:
            if self.ignore_empty:
                return None
            raise
        mode = _pillow_mode(content)
        if mode in ('I', 'F'):
            return self._fail(
                results, f'its pixels are 32-bit integers or floats (mode '
                f'{mode}), which both decoders clip',
                'Convert it to 8-bit RGB first, or remove it '
                'from the split file.')
        backend = self.imdecode_backend
        if backend == 'pillow' and (mode.startswith('I;16') or mode == 'LA'):
            backend = 'cv2'
        try:
            img = mmcv.imfrombytes(
                content, flag=self.color_type, backend=backend)
        except Exception:  # diagnosed below
            img = None
        if img is None or _missing_end_marker(content):
            reason = _pillow_reason(content)
            if reason is not None:
                return self._fail(
                    results, f'the file is truncated or corrupt '
                    f'({reason})', 'Copy or download it again, or remove it '
                    'from the split file.')
            if img is None:
                return self._fail(
                    results, f'the "{self.imdecode_backend}" decoder cannot '
                    f'read this format (Pillow can)',
                    'Set imdecode_backend="pillow" in the loading transform, '
                    'or convert the file to PNG or JPEG.')
        orientation = exif_orientation(content)
        # Only these flags of mmcv.imfrombytes apply the orientation.
        if orientation != 1 and self.color_type in ('color', 'grayscale') \
                and not _warned_exif:
            _warned_exif = True
            warnings.warn(
                f'{filename} has EXIF orientation {orientation}: it was '
                f'turned upright, as photo viewers and mmcv do (further such '
                f'images are not reported). If your label maps were drawn on '
                f'the stored pixels, load images with '
                f'color_type="color_ignore_orientation".')
        if self.to_float32:
            img = img.astype(np.float32)
        results.update(
            img=img,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2],
            exif_orientation=orientation)
        return results


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
    ``ValueError`` for bools, 16-bit values and floats in [0, 1]."""
    if img.ndim < 2 or min(img.shape[:2]) < 1:
        raise ImageSizeError(
            f'{name} is empty (shape {tuple(img.shape)}): it has no pixels. '
            f'Give an image of at least one pixel on each side.')
    if img.dtype == np.uint8:
        return img
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
    if np.issubdtype(img.dtype, np.integer):
        img = img.astype(np.uint8)
    return img


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


def without_annotations(pipeline) -> list:
    """The steps of ``pipeline`` but its ``LoadAnnotations`` of any scope
    or checked version, for an image without a label map."""
    return [
        step for step in pipeline
        if step_kind(step) not in ('LoadAnnotations', 'CheckedLoadAnnotations')
    ]


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
    checked = [('mmcv.LoadImageFromFile', 'RobustLoadImageFromFile'),
               ('mmcv.Resize', 'CheckedResize')]
    if annotations:  # mmseg's, not mmcv's (other arguments)
        checked.append(('mmseg.LoadAnnotations', 'CheckedLoadAnnotations'))
    swaps = {}
    for scoped, new in checked:
        swaps[scoped] = swaps[scoped.split('.')[1]] = new
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
