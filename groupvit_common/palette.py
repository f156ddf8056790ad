# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Colour tables for class and group maps."""
import colorsys
from typing import List

import numpy as np

# Successive hues a golden angle apart look different even for nearby ids.
_GOLDEN = 0.618033988749895


def distinct_colors(num: int, seed: int = 0) -> np.ndarray:
    """``[num, 3]`` uint8 RGB colours, pairwise different and saturated,
    consecutive ids clearly apart; ``seed`` shifts the hues."""
    if num < 0:
        raise ValueError(f'num must be >= 0, got {num}.')
    ids = np.arange(num)
    hue = (ids * _GOLDEN + seed * 0.1) % 1.0
    sat = np.where(ids % 2 == 0, 0.85, 0.6)
    val = np.where(ids % 3 == 0, 0.95, 0.8)
    rgb = np.array(list(map(colorsys.hsv_to_rgb, hue, sat, val)))
    colours = (rgb.reshape(num, 3) * 255).round().astype(np.int64)
    # Rounding can map two hues to one colour: nudge the later one.
    seen = set()
    for row in colours:
        while tuple(row) in seen:
            row[np.argmax(row)] -= 1
        seen.add(tuple(row))
    return colours.astype(np.uint8)


def class_palette(num_classes: int, with_bg: bool = True) -> List[List[int]]:
    """``num_classes`` different RGB triples (mmseg's ``dataset_meta``
    palette), black for label 0 when it is background (``with_bg``)."""
    if not with_bg:
        return distinct_colors(num_classes).tolist()
    return [[0, 0, 0]] + distinct_colors(max(num_classes - 1, 0)).tolist()
