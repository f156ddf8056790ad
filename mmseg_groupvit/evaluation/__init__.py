# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluation: metrics, the protocol of a config, checks of test configs
and data, and resumable progress."""
from .accuracy import Accuracy
from .iou_metric import CheckedIoUMetric, PerClassIoUMetric, check_label_map
from .progress import (ProgressWriter, SkipDoneSampler, describe_run,
                       prepare_progress, read_progress)
from .protocol import (class_table_lines, describe_protocol, format_protocol,
                       is_classification_config, is_tta_model, run_lines)
from .test_run import (check_dataset_paths, prepare_test_run,
                       use_checked_loading)

__all__ = [
    'Accuracy', 'CheckedIoUMetric', 'PerClassIoUMetric', 'check_label_map',
    'check_dataset_paths', 'ProgressWriter', 'SkipDoneSampler', 'describe_run',
    'prepare_progress', 'read_progress', 'class_table_lines',
    'describe_protocol', 'format_protocol', 'is_classification_config',
    'is_tta_model', 'run_lines', 'prepare_test_run', 'use_checked_loading'
]
