# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmseg's image operations (OpenCV, PyTorch) in numpy and Pillow, bit for
bit."""
import os
import stat
from typing import Tuple

import numpy as np
from PIL import Image, ImageOps

from groupvit_common.errors import ImageLoadError
from groupvit_common.files import check_image, file_kind, image_mode

#: OpenCV's fixed-point weights: 11 bits.
_COEF_SCALE = 1 << 11


class UnreadableImage(ValueError):
    """An input file that does not decode as an image."""


def read_rgb(path: str) -> np.ndarray:
    """An image file as ``[H, W, 3]`` RGB ``uint8`` (``cv2.IMREAD_COLOR``)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # a FIFO would wait, a device never end
            raise UnreadableImage(
                f'{path} is {file_kind(mode)}, not an image file.')
        check_image(path, path)
    except OSError as e:
        raise UnreadableImage(f'Cannot read {path} ({e}).') from None
    except ImageLoadError as e:
        raise UnreadableImage(str(e)) from None
    try:
        with Image.open(path) as picture:
            mode = image_mode(picture)
            picture = ImageOps.exif_transpose(picture)
            if mode.startswith('I;16'):
                # OpenCV's IMREAD_COLOR keeps the high byte of each level.
                grey = np.asarray(picture).astype(np.uint32) >> 8
                rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
            elif mode in ('I', 'F'):
                raise UnreadableImage(
                    f'{path}: its pixels are 32-bit integers or floats (mode '
                    f'{mode}); convert it to 8-bit RGB first.')
            elif picture.mode == 'CMYK':
                # OpenCV's formula (Pillow's is one level off).
                raw = 255 - np.asarray(picture).astype(np.int32)
                k = raw[..., 3:]
                rgb = (k - (((255 - raw[..., :3]) * k) >> 8)).astype(np.uint8)
            else:
                rgb = np.asarray(picture.convert('RGB'), dtype=np.uint8)
    except UnreadableImage:
        raise
    except Exception:  # any read or decode failure gets one message
        raise UnreadableImage(f'Cannot read {path} as an image.') from None
    return np.ascontiguousarray(rgb)


def rescale_size(width: int, height: int,
                 scale: Tuple[int, int]) -> Tuple[int, int]:
    """mmcv's keep-ratio ``rescale_size``: ``(new_width, new_height)``."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width),
                 short_edge / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


def _linear_table(src: int, dst: int, clamp_weight: bool):
    """OpenCV's source indices and fixed-point weights along one axis."""
    scale = 1.0 / (float(dst) / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(
        np.float32)
    index = np.floor(pos).astype(np.int64)
    frac = (pos - index.astype(np.float32)).astype(np.float32)
    if clamp_weight:
        low, high = index < 0, index >= src - 1
        frac[low | high] = 0
        index[low] = 0
        index[high] = src - 1
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE))
    w1 = np.rint(frac * np.float32(_COEF_SCALE))
    first = np.clip(index, 0, src - 1)
    second = np.clip(index + 1, 0, src - 1)
    return first, second, w0.astype(np.int64), w1.astype(np.int64)


def resize_uint8_bilinear(image: np.ndarray, size: Tuple[int,
                                                         int]) -> np.ndarray:
    """``cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)`` of an
    ``[H, W, C]`` uint8 image; ``size``: ``(width, height)``."""
    height, width = image.shape[:2]
    new_w, new_h = size
    if (new_w, new_h) == (width, height):
        return image.copy()
    if width == 2 * new_w and height == 2 * new_h:
        # OpenCV resizes an exact 2x reduction with INTER_AREA.
        s = image.astype(np.int64)
        total = (s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2])
        return ((total + 2) >> 2).astype(np.uint8)
    x0, x1, a0, a1 = _linear_table(width, new_w, clamp_weight=True)
    y0, y1, b0, b1 = _linear_table(height, new_h, clamp_weight=False)
    src = image.astype(np.int64)
    rows = src[:, x0] * a0[None, :, None] + src[:, x1] * a1[None, :, None]
    # OpenCV's rounding of the 22-bit products.
    top = (b0[:, None, None] * (rows[y0] >> 4)) >> 16
    bottom = (b1[:, None, None] * (rows[y1] >> 4)) >> 16
    out = (top + bottom + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)


def _torch_linear_table(src: int, dst: int):
    """PyTorch's bilinear indices and float32 weights along one axis."""
    scale = np.float32(src) / np.float32(dst)
    pos = (np.float64(scale) * (np.arange(dst) + 0.5) - 0.5).astype(np.float32)
    pos = np.maximum(pos, np.float32(0))
    first = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    second = first + (first < src - 1)
    w1 = np.clip(pos - first.astype(np.float32), 0, 1).astype(np.float32)
    w0 = (np.float32(1) - w1).astype(np.float32)
    return first, second, w0, w1


def _lerp(t0, w0, t1, w1):
    """``t0 * w0 + t1 * w1`` rounded as PyTorch's fused multiply-add."""
    return (t0.astype(np.float64) * w0 + (t1 * w1)).astype(np.float32)


def resize_float_bilinear(maps: np.ndarray, size: Tuple[int,
                                                        int]) -> np.ndarray:
    """``F.interpolate(maps, size, mode='bilinear')`` of float32
    ``[C, h, w]`` maps, as PyTorch's CPU kernel."""
    height, width = maps.shape[-2:]
    out_h, out_w = size
    if (out_h, out_w) == (height, width):
        return maps.copy()
    x0, x1, a0, a1 = _torch_linear_table(width, out_w)
    y0, y1, b0, b1 = _torch_linear_table(height, out_h)
    rows0, rows1 = maps[:, y0], maps[:, y1]
    top = _lerp(rows0[:, :, x0], a0, rows0[:, :, x1], a1)
    bottom = _lerp(rows1[:, :, x0], a0, rows1[:, :, x1], a1)
    return _lerp(top, b0[:, None], bottom, b1[:, None])


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """mmseg's normalisation: ``[H, W, 3]`` uint8 to ``[1, 3, H, W]``."""
    pixels = rgb.astype(np.float32).transpose(2, 0, 1)
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    return ((pixels - mean) / std)[None]
