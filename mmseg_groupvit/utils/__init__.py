# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Text-side helpers: class names, prompt templates, custom vocabularies."""
from groupvit_common.vocabulary import load_vocabulary
from .class_names import get_prompt_classes
from .templates import check_template, get_templates

__all__ = [
    'get_prompt_classes', 'check_template', 'get_templates', 'load_vocabulary'
]
