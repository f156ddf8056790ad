# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Small drawing helpers for predictions and group maps (numpy + PIL)."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def group_palette(num: int, seed: int = 0) -> np.ndarray:
    """``num`` distinct, saturated colours ``[num, 3]`` uint8.

    Colours are spread over the hue circle (golden-angle steps), so nearby
    group ids look different.
    """
    hues = (np.arange(num) * 0.618033988749895 + seed * 0.1) % 1.0
    sat = np.where(np.arange(num) % 2 == 0, 0.85, 0.6)
    val = np.where(np.arange(num) % 3 == 0, 0.95, 0.8)
    i = np.floor(hues * 6).astype(int)
    f = hues * 6 - i
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    table = np.stack([
        np.choose(i % 6, [val, q, p, p, t, val]),
        np.choose(i % 6, [t, val, val, q, p, p]),
        np.choose(i % 6, [p, p, t, val, val, q]),
    ], axis=1)
    return (table * 255).round().astype(np.uint8)


def overlay_labels(image: np.ndarray,
                   labels: np.ndarray,
                   palette: np.ndarray,
                   opacity: float = 0.5,
                   skip_label: Optional[int] = None) -> np.ndarray:
    """Blend a label map over an RGB image.

    Args:
        image (ndarray): ``[H, W, 3]`` uint8 RGB.
        labels (ndarray): ``[H, W]`` int labels.
        palette (ndarray): ``[N, 3]`` uint8 colours indexed by label.
        opacity (float): Colour weight. Defaults to 0.5.
        skip_label (int, optional): Label left uncoloured (background).

    Returns:
        ndarray: ``[H, W, 3]`` uint8.
    """
    colour = palette[labels]
    mask = np.ones(labels.shape, bool) if skip_label is None else (
        labels != skip_label)
    out = image.astype(np.float32)
    out[mask] = out[mask] * (1 - opacity) + colour[mask] * opacity
    return out.round().clip(0, 255).astype(np.uint8)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_legend(image: np.ndarray, entries: Sequence[Tuple[str, Sequence[int]]],
                title: Optional[str] = None) -> Image.Image:
    """Append a legend column listing ``(name, colour)`` entries.

    Returns:
        PIL.Image.Image: The image with the legend on its right.
    """
    font = _font(14)
    row = 20
    width = 12 + max([int(font.getlength(name)) for name, _ in entries] +
                     [int(font.getlength(title or ''))] + [60]) + 30
    height = max(image.shape[0], row * (len(entries) + 2))
    canvas = Image.new('RGB', (image.shape[1] + width, height),
                       (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0, y = image.shape[1] + 8, 6
    if title:
        draw.text((x0, y), title, fill=(0, 0, 0), font=font)
        y += row
    for name, colour in entries:
        draw.rectangle([x0, y + 2, x0 + 14, y + 16],
                       fill=tuple(int(c) for c in colour),
                       outline=(0, 0, 0))
        draw.text((x0 + 20, y), name, fill=(0, 0, 0), font=font)
        y += row
    return canvas


def stamp_text(image: Image.Image, lines: List[str]) -> Image.Image:
    """Add a red band with warning lines above ``image`` (nothing of the
    picture is covered)."""
    font = _font(15)
    band = 8 + 20 * len(lines)
    canvas = Image.new('RGB', (image.width, image.height + band),
                       (180, 0, 0))
    canvas.paste(image, (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, 4 + 20 * i), line, fill=(255, 255, 255), font=font)
    return canvas
