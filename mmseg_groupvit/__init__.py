# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT zero-shot semantic segmentation as an MMSegmentation 1.x plugin;
importing it registers its components into mmseg's registries."""
import _mmseg_groupvit_mmcv_shim

# Must run before anything imports ``mmseg.models`` (see the shim's docstring).
_mmseg_groupvit_mmcv_shim.install()

from groupvit_common.errors import *  # noqa: E402,F401,F403
from .apis import *  # noqa: E402,F401,F403
from .datasets import *  # noqa: E402,F401,F403
from .evaluation import *  # noqa: E402,F401,F403
from .models import *  # noqa: E402,F401,F403
from .utils import *  # noqa: E402,F401,F403
# Registers the safe loader of local checkpoints with mmengine.
from .weights import checkpoint_loader  # noqa: E402,F401

__version__ = '0.1.0'
