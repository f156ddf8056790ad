# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmcv's ``LoadImageFromFile`` (same decoder, same pixels) that names bad
files and the fix, checks the header's size before decoding and records
the EXIF orientation."""
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


def _pillow_changes_pixels(content: bytes) -> bool:
    """Whether mmcv's Pillow decoding of ``content`` gives other pixels than
    the rules (``value >> 8``, alpha dropped): 16-bit gray (mode ``I;16``)
    is clipped at 255, gray with alpha (``LA``) laid on a coloured canvas."""
    try:
        with Image.open(io.BytesIO(content)) as img:
            return img.mode.startswith('I;16') or img.mode == 'LA'
    except Exception:  # not an image: the decoders name it
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
            if self.file_client_args is None and '://' not in filename:
                # Opening a FIFO would wait, /dev/zero would never end.
                mode = os.stat(filename).st_mode
                if not stat.S_ISREG(mode):
                    return self._fail(
                        results, f'it is {file_kind(mode)}, not an image '
                        f'file', not_an_image)
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
        backend = self.imdecode_backend
        if backend == 'pillow' and _pillow_changes_pixels(content):
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
