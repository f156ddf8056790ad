# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Deployment: ONNX export of the image and text sides, checked against
PyTorch (the runtime, ``tools/deployment/onnx_segment.py``, needs neither
PyTorch nor this package)."""
from .onnx_export import describe_protocol_for_runtime, export_onnx
from .onnx_modules import ImageSide, TextSide

__all__ = [
    'ImageSide', 'TextSide', 'export_onnx', 'describe_protocol_for_runtime'
]
