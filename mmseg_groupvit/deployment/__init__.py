# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""ONNX export, checked against PyTorch (the runner,
``tools/deployment/onnx_segment.py``, needs neither)."""
from .onnx_export import export_onnx

__all__ = ['export_onnx']
