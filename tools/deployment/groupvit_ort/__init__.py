# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The runtime of the exports of ``tools/deployment/pytorch2onnx.py``, with
onnxruntime, numpy and Pillow only (no PyTorch, mmcv, mmengine or mmseg)."""
from .image_ops import UnreadableImage
from .segmenter import ExportError, OnnxSegmenter

__all__ = ['ExportError', 'OnnxSegmenter', 'UnreadableImage']
