# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Colour tables: a hand-computed colour and the properties promised."""
import numpy as np
import pytest

from groupvit_common.palette import class_palette, distinct_colors


def test_first_colour_by_hand():
    # id 0: hue 0, saturation 0.85, value 0.95 -> RGB (v, v(1-s), v(1-s))
    # = (0.95, 0.1425, 0.1425) * 255 = (242.25, 36.34, 36.34), rounded.
    assert distinct_colors(1).tolist() == [[242, 36, 36]]


@pytest.mark.parametrize('num', [0, 1, 21, 171, 2000])
def test_colours_are_distinct_and_not_grey(num):
    colours = distinct_colors(num)
    assert colours.shape == (num, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == num
    assert not any(c.min() == c.max() for c in colours)


def test_seed_shifts_the_hues():
    assert not np.array_equal(distinct_colors(5), distinct_colors(5, seed=1))


def test_class_palette_background_is_black():
    palette = class_palette(21)
    assert len(palette) == 21 and palette[0] == [0, 0, 0]
    assert palette[1:] == distinct_colors(20).tolist()
    assert class_palette(3, with_bg=False) == distinct_colors(3).tolist()
    assert class_palette(0) == [[0, 0, 0]]


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match='num must be >= 0'):
        distinct_colors(-1)
