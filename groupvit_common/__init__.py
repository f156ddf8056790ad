# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The torch-free layer (standard library, numpy, Pillow) shared by
:mod:`mmseg_groupvit` and the onnxruntime runner."""
