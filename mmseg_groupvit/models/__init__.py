# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .decode_heads import *  # noqa: F401,F403
from .pretrainers import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .text_encoders import *  # noqa: F401,F403
