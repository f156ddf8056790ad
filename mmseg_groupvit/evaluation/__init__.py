# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluation: metrics, the protocol of a config, checks of test configs
and data, and resumable progress."""
from .checked_iou_metric import CheckedIoUMetric, check_label_map
from .classification import (describe_classification_protocol,
                             is_classification_config)
from .iou_metric import PerClassIoUMetric
from .metrics import Accuracy
from .preflight import (check_dataset_paths, check_out_dir,
                        check_test_dataloader)
from .progress import (ProgressWriter, describe_run, enable_progress,
                       prepare_progress, read_progress)
from .protocol import describe_protocol, format_protocol
from .report import (class_table_lines, classification_run_lines, result_lines,
                     run_lines, swap_lines)
from .skip_done_sampler import SkipDoneSampler
from .test_run import TestRun, prepare_test_run, use_checked_loading

__all__ = [
    'PerClassIoUMetric', 'describe_protocol', 'format_protocol',
    'CheckedIoUMetric', 'check_label_map', 'check_dataset_paths',
    'check_out_dir', 'check_test_dataloader', 'ProgressWriter', 'describe_run',
    'enable_progress', 'prepare_progress', 'read_progress', 'SkipDoneSampler',
    'prepare_test_run', 'use_checked_loading', 'Accuracy',
    'is_classification_config', 'describe_classification_protocol',
    'class_table_lines', 'result_lines', 'run_lines',
    'classification_run_lines', 'swap_lines', 'TestRun'
]
