# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .progress_hook import ImageProgressHook

__all__ = ['ImageProgressHook']
