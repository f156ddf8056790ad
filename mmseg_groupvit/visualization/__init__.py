# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .drawing import (draw_banner, draw_legend, mark_boundaries,
                      overlay_labels, png_text, tile_panes)
from .palette import class_palette, distinct_colors

__all__ = [
    'class_palette', 'distinct_colors', 'draw_banner', 'draw_legend',
    'mark_boundaries', 'overlay_labels', 'png_text', 'tile_panes'
]
