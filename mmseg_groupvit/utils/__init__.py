# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Text-side helpers: class names, prompt templates, custom vocabularies.

The named lists themselves (``VOC_PROMPT_CLASSES``, ``FULL_TEMPLATES``, ...)
live in :mod:`.class_names` and :mod:`.templates`.
"""
from .class_names import (BACKGROUND, COCO_OBJECT_CLASSES, PROMPT_RENAMES,
                          get_dataset_classes, get_prompt_classes)
from .templates import TEMPLATE_SETS, check_template, get_templates
from .vocabulary import load_vocabulary

__all__ = [
    'BACKGROUND', 'COCO_OBJECT_CLASSES', 'PROMPT_RENAMES',
    'get_dataset_classes', 'get_prompt_classes', 'TEMPLATE_SETS',
    'check_template', 'get_templates', 'load_vocabulary'
]
