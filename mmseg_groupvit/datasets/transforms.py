# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Image loading that names bad files instead of failing obscurely.

:class:`RobustLoadImageFromFile` is mmcv's ``LoadImageFromFile`` (same
decoder, same pixels) plus checks. What mmcv's OpenCV decoder already does
with ``color_type='color'``, and therefore this transform too:

===================  =====================================================
input                result (``uint8`` BGR ``[H, W, 3]``)
===================  =====================================================
grayscale            the gray value in all three channels
RGBA / LA            the alpha channel is dropped (not composited)
16-bit PNG           scaled to 8 bits (``value >> 8``)
CMYK JPEG            converted to RGB by libjpeg (Adobe inversion handled)
EXIF orientation     rotated/flipped upright, as photo viewers show it
===================  =====================================================

What mmcv does not do, and this transform adds:

* the size the file's header states is checked before any pixel is decoded
  (:func:`groupvit_common.files.check_image`: at most ``MAX_IMAGE_PIXELS``
  pixels, at most ``MAX_IMAGE_ASPECT``:1 elongated), so a decompression
  bomb (a 2.6 MB PNG of 30000x30000) or a long strip is refused with
  :class:`ImageLoadError` instead of claiming gigabytes; every image entry
  of the package (``tools/test.py``, the demo, classification,
  ``init_groupvit``'s ``inference_model``) loads through this transform;
* a local path that is not a regular file (a FIFO, ``/dev/zero``) is named
  as what it is, without being opened;
* a missing, empty, truncated or undecodable file raises
  :class:`ImageLoadError` naming the file, the reason and the fix (mmcv
  gives ``AssertionError: failed to load image`` or, for an empty file, an
  OpenCV assertion that names no file);
* a JPEG or PNG whose end marker is missing is verified with Pillow, because
  some OpenCV builds decode a truncated file into a partly grey image
  without any error;
* ``results['exif_orientation']`` records the file's EXIF orientation tag
  (1 = upright). When it is not 1 the image is rotated upright as mmcv does,
  and a single warning per process says so: label maps drawn on the stored
  pixels would then not line up (set ``color_type='color_ignore_orientation'``
  to keep the stored orientation).
"""
import io
import os
import stat
import warnings
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.registry import TRANSFORMS
from PIL import Image, UnidentifiedImageError

from groupvit_common.errors import ImageLoadError
from groupvit_common.files import check_image, file_kind

__all__ = ['ImageLoadError', 'RobustLoadImageFromFile', 'exif_orientation']

_JPEG_SOI, _JPEG_EOI = b'\xff\xd8', b'\xff\xd9'
_PNG_SIGNATURE, _PNG_IEND = b'\x89PNG\r\n\x1a\n', b'IEND'
_EXIF_ORIENTATION_TAG = 0x0112
# Flags of mmcv.imfrombytes that apply the EXIF orientation.
_ORIENTING_FLAGS = ('color', 'grayscale')
_warned_exif = False


def exif_orientation(content: bytes) -> int:
    """The EXIF orientation tag of an encoded image (1 when absent).

    Only the header is parsed, not the pixels.

    Args:
        content (bytes): The encoded file.

    Returns:
        int: 1 (upright) to 8; 1 when the file has no EXIF or cannot be
        parsed.
    """
    try:
        with Image.open(io.BytesIO(content)) as img:
            return int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
    except Exception:  # no EXIF is not an error
        return 1


def _missing_end_marker(content: bytes) -> bool:
    """Whether a JPEG or PNG lacks its end marker (a likely truncation).

    Trailing zero bytes (padding) are ignored; other trailing data after a
    valid end (e.g. appended metadata) make the check inconclusive, so the
    caller then verifies the file with Pillow rather than rejecting it.
    """
    tail = content.rstrip(b'\x00')
    if content.startswith(_JPEG_SOI):
        return not tail.endswith(_JPEG_EOI)
    if content.startswith(_PNG_SIGNATURE):
        return _PNG_IEND not in tail[-12:]
    return False


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
    """Load an image like ``LoadImageFromFile``, naming bad files.

    The decoded pixels are exactly those of mmcv's ``LoadImageFromFile``
    with the same arguments; see the module docstring for what happens to
    grayscale, RGBA, 16-bit, CMYK and EXIF-rotated images and what is added.

    Required keys: ``img_path``. Added keys: ``img``, ``img_shape``,
    ``ori_shape``, ``exif_orientation``.

    Args:
        **kwargs: Arguments of mmcv's ``LoadImageFromFile`` (``to_float32``,
            ``color_type``, ``imdecode_backend``, ``ignore_empty``,
            ``backend_args``).
    """

    def _fail(self, results: dict, reason: str, fix: str):
        """Raise the error; ``results['listed_in']`` (a dataset's words
        for where the image is listed) takes the place of the split file."""
        if self.ignore_empty:
            return None
        listed = results.get('listed_in')
        if listed:
            fix = fix.replace('the split file', listed) if \
                'the split file' in fix else f'{fix} It is listed in {listed}.'
        raise ImageLoadError(
            f'Cannot load image {results["img_path"]}: {reason}. {fix}')

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``.

        Args:
            results (dict): Must hold ``img_path``.

        Returns:
            dict | None: ``results`` with the image added; None only when
            ``ignore_empty`` is set and the file is bad.

        Raises:
            ImageLoadError: The file is missing, not a regular file, empty,
                states more pixels than accepted or too elongated a shape,
                is truncated or cannot be decoded.
        """
        filename = results['img_path']
        try:
            if self.file_client_args is None and '://' not in filename:
                # Opening a FIFO would wait, /dev/zero would never end.
                mode = os.stat(filename).st_mode
                if not stat.S_ISREG(mode):
                    return self._fail(
                        results, f'it is {file_kind(mode)}, not an image '
                        f'file', 'Name an image file, or remove the name '
                        'from the split file.')
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
            return self._fail(
                results, 'it is a folder, not an image file',
                'Name an image file, or remove the name from the split file.')
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
        try:
            img = mmcv.imfrombytes(
                content, flag=self.color_type, backend=self.imdecode_backend)
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
        if orientation != 1 and self.color_type in _ORIENTING_FLAGS:
            _warn_exif_once(filename, orientation)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['exif_orientation'] = orientation
        return results


def _warn_exif_once(filename: str, orientation: int) -> None:
    global _warned_exif
    if _warned_exif:
        return
    _warned_exif = True
    warnings.warn(
        f'{filename} has EXIF orientation {orientation}: it was turned '
        f'upright, as photo viewers and mmcv do (further such images are '
        f'not reported). If your label maps were drawn on the stored pixels, '
        f'load images with color_type="color_ignore_orientation".')
