# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT zero-shot segmentation with onnxruntime, numpy and Pillow only
(no PyTorch, mmcv, mmengine or mmseg): the runtime of the exports written
by ``tools/deployment/pytorch2onnx.py``."""
from .image_ops import UnreadableImage, read_rgb
from .segmenter import ExportError, OnnxSegmenter, window_boxes
from .tokenizer import ClipTokenizer

__all__ = [
    'ClipTokenizer', 'ExportError', 'OnnxSegmenter', 'UnreadableImage',
    'read_rgb', 'window_boxes'
]
