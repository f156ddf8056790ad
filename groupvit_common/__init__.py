# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The torch-free layer of mmseg-groupvit: the rules and plain-data pieces
that both the PyTorch package (:mod:`mmseg_groupvit`) and the onnxruntime
runner (``tools/deployment/onnx_segment.py``) use.

It imports only the standard library, numpy and Pillow, never PyTorch,
mmcv, mmengine or mmseg, so that the runner can import it normally:

- :mod:`.errors`: the errors users see and their one-line form;
- :mod:`.checks`: the checks of config values (thresholds, windows, ...);
- :mod:`.vocabulary`: vocabulary files and class lists;
- :mod:`.window_grid`: mmseg's slide windows;
- :mod:`.image_files`: the image files a command is given;
- :mod:`.palette`, :mod:`.drawing`: colours and pictures.
"""
