# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The torch-free layer shared by :mod:`mmseg_groupvit` and the onnxruntime
runner: rules (:mod:`.checks`), errors, vocabularies, slide windows, image
files, colours. It imports only the standard library, numpy and Pillow."""
