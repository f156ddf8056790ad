# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .drawing import (draw_legend, group_palette, overlay_labels,
                      stamp_text)

__all__ = ['draw_legend', 'group_palette', 'overlay_labels', 'stamp_text']
