# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluation: metrics, the protocol of a config, checks of test configs
and data, and resumable progress."""
from .accuracy import Accuracy
from .iou_metric import CheckedIoUMetric, PerClassIoUMetric, check_label_map
from .preflight import (check_dataset_paths, check_out_dir,
                        check_test_dataloader)
from .progress import (ProgressWriter, SkipDoneSampler, describe_run,
                       enable_progress, prepare_progress, read_progress)
from .protocol import (class_table_lines, describe_classification_protocol,
                       describe_protocol, describe_run_protocol,
                       format_protocol, is_classification_config, result_lines,
                       run_lines, swap_lines)
from .test_run import TestRun, prepare_test_run, use_checked_loading

__all__ = [
    'Accuracy', 'CheckedIoUMetric', 'PerClassIoUMetric', 'check_label_map',
    'check_dataset_paths', 'check_out_dir', 'check_test_dataloader',
    'ProgressWriter', 'SkipDoneSampler', 'describe_run', 'enable_progress',
    'prepare_progress', 'read_progress', 'class_table_lines',
    'describe_classification_protocol', 'describe_protocol',
    'describe_run_protocol', 'format_protocol', 'is_classification_config',
    'result_lines', 'run_lines', 'swap_lines', 'TestRun', 'prepare_test_run',
    'use_checked_loading'
]
