# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Colour tables for class and group maps."""
from typing import List

import numpy as np

# Successive hues a golden angle apart look different even for nearby ids.
_GOLDEN = 0.618033988749895


def _hsv_to_rgb(hue: np.ndarray, sat: np.ndarray,
                val: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all in [0, 1]; returns ``[N, 3]`` floats."""
    sector = np.floor(hue * 6).astype(int) % 6
    frac = hue * 6 - np.floor(hue * 6)
    p = val * (1 - sat)
    q = val * (1 - frac * sat)
    t = val * (1 - (1 - frac) * sat)
    return np.stack([
        np.choose(sector, [val, q, p, p, t, val]),
        np.choose(sector, [t, val, val, q, p, p]),
        np.choose(sector, [p, p, t, val, val, q]),
    ],
                    axis=1)


def distinct_colors(num: int, seed: int = 0) -> np.ndarray:
    """``num`` pairwise different, saturated colours.

    Hues advance by the golden angle, saturation and value alternate, so
    consecutive ids (neighbouring groups, classes next to each other in a
    vocabulary) get clearly different colours. No colour is black, white or
    grey, which stay free for background, legends and text.

    Args:
        num (int): Number of colours.
        seed (int): Shifts the hue sequence. Defaults to 0.

    Returns:
        ndarray: ``[num, 3]`` uint8 RGB, all rows different.
    """
    if num < 0:
        raise ValueError(f'num must be >= 0, got {num}.')
    ids = np.arange(num)
    hue = (ids * _GOLDEN + seed * 0.1) % 1.0
    sat = np.where(ids % 2 == 0, 0.85, 0.6)
    val = np.where(ids % 3 == 0, 0.95, 0.8)
    colours = (_hsv_to_rgb(hue, sat, val) * 255).round().astype(np.int64)
    # Rounding can, for long tables, map two hues to one colour: nudge the
    # later one until every row is unique.
    seen = set()
    for row in colours:
        while tuple(row) in seen:
            row[np.argmax(row)] -= 1
        seen.add(tuple(row))
    return colours.astype(np.uint8)


def class_palette(num_classes: int, with_bg: bool = True) -> List[List[int]]:
    """Palette of a label map in mmseg's ``dataset_meta`` form.

    Args:
        num_classes (int): Number of labels, background included.
        with_bg (bool): Label 0 is background and gets black.

    Returns:
        list[list[int]]: ``num_classes`` RGB triples, all different.
    """
    if not with_bg:
        return distinct_colors(num_classes).tolist()
    return [[0, 0, 0]] + distinct_colors(max(num_classes - 1, 0)).tolist()
