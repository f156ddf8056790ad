# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What ``tools/test.py`` prints: what is run, the per-class table, the
metrics and the files written (for classification configs too)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from .classification import (describe_classification_protocol,
                             is_classification_config)
from .protocol import describe_protocol, format_protocol

__all__ = [
    'run_lines', 'classification_run_lines', 'swap_lines', 'class_table_lines',
    'result_lines'
]


def _split_file(dataset: dict) -> Optional[str]:
    ann_file = dataset.get('ann_file', None)
    if not ann_file:
        return None
    root = dataset.get('data_root', None) or ''
    return ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)


def run_lines(cfg, config: str, checkpoint: Optional[str]) -> List[str]:
    """What a test run evaluates, one ``name  value`` line each: config,
    checkpoint, data, vocabulary, protocol.

    Args:
        cfg (Config): The merged test config.
        config (str): The config file given.
        checkpoint (str, optional): The checkpoint given.

    Returns:
        list[str]: The lines (:func:`classification_run_lines` for a
        classification config).
    """
    if is_classification_config(cfg):
        return classification_run_lines(cfg, config, checkpoint)
    protocol = describe_protocol(cfg)
    texts = format_protocol(protocol)
    dataset = cfg.test_dataloader.dataset
    data = f'{protocol["dataset"]} in {protocol["data_root"]}'
    split = _split_file(dataset)
    if split:
        data += f', split {split}'
    classes = (f'{protocol["num_classes"]} classes'
               f'{" incl. background" if protocol["background"] else ""}')
    steps = f'resize {texts["resize"]}; {texts["window"]}'
    if protocol['bg_thresh'] is not None:
        steps += f'; bg_thresh {texts["bg_thresh"]}'
    lines = [
        ('config', config),
        ('checkpoint', checkpoint if checkpoint else 'none'),
        ('data', data),
        # A fine-tuned head has no prompts: its classes only.
        ('vocabulary', f'{texts["vocabulary"]}; {classes}; templates '
         f'{texts["templates"]}') if protocol['vocabulary'] is not None else
        ('classes', classes),
        ('protocol', steps),
    ]
    return [f'{name:<11} {value}' for name, value in lines]


def classification_run_lines(cfg, config: str, checkpoint: str) -> List[str]:
    """What a classification test evaluates, as :func:`run_lines` says it
    for segmentation: config, checkpoint, data, vocabulary, protocol.

    Args:
        cfg (Config): The merged classification config.
        config (str): The config file given.
        checkpoint (str): The checkpoint, or ``'random (seed N)'``.

    Returns:
        list[str]: The lines.
    """
    protocol = describe_classification_protocol(cfg)
    data = f'{protocol["dataset"]} in {protocol["data_root"]}'
    split = _split_file(cfg.test_dataloader.dataset)
    if split:
        data += f', split {split}'
    vocabulary = protocol['vocabulary']
    names = vocabulary.get('vocabulary')
    vocabulary = (f'{len(names)} classes from the config' if names is not None
                  else f'the classes of {vocabulary["dataset_name"]}')
    resize, crop = protocol['resize'], protocol['crop']
    steps = [
        f'resize {resize["edge"]} side {resize["scale"]}' if resize else
        'no resize', f'center crop {crop}' if crop is not None else 'no crop',
        'top-' + ', top-'.join(str(k) for k in protocol['topk'])
    ]
    lines = [
        ('config', config),
        ('checkpoint', checkpoint),
        ('data', data),
        ('vocabulary', f'{vocabulary}; templates {protocol["templates"]}'),
        ('protocol', '; '.join(steps)),
    ]
    return [f'{name:<11} {value}' for name, value in lines]


def swap_lines(swaps: Sequence[str]) -> List[str]:
    """One ``swapped     KEY: OLD -> NEW`` line per config value the tool
    changed (:func:`~.test_run.prepare_test_run`'s ``swaps``)."""
    return [f'{"swapped":<11} {swap}' for swap in swaps]


def _cell(value) -> str:
    return '-' if value is None else f'{value:.2f}'


def class_table_lines(class_results: Optional[dict]) -> List[str]:
    """The per-class table: one row per class, one column per metric
    (``-`` for a class absent from both labels and predictions).

    Args:
        class_results (dict, optional): ``classes`` and, per metric, one
            value per class (``PerClassIoUMetric.class_results``).

    Returns:
        list[str]: The lines (none without results).
    """
    if not class_results:
        return []
    classes = class_results['classes']
    metrics = [k for k in class_results if k != 'classes']
    width = max(len('class'), *(len(str(c)) for c in classes))
    lines = [f'{"class":<{width}}' + ''.join(f'{m:>8}' for m in metrics)]
    for i, name in enumerate(classes):
        lines.append(f'{str(name):<{width}}' +
                     ''.join(f'{_cell(class_results[m][i]):>8}'
                             for m in metrics))
    return lines


def result_lines(metrics: Dict[str, float],
                 images: int,
                 seconds: float,
                 paths: Sequence[tuple],
                 evaluated: Optional[int] = None) -> List[str]:
    """The summary metrics, the time and the files written.

    Args:
        metrics (dict): mmseg's summary (``aAcc``, ``mIoU``, ...).
        images (int): Images in the test set.
        seconds (float): Time of the test loop.
        paths (Sequence[tuple]): ``(what, path)`` of every file or folder
            written; None paths are left out.
        evaluated (int, optional): Images this run evaluated, when a resumed
            run took the others from its records; None for all.

    Returns:
        list[str]: The lines.
    """
    summary = '  '.join(f'{k} {float(v):.2f}' for k, v in metrics.items())
    run = images if evaluated is None else evaluated
    recorded = (f', {images - run} more from the records'
                if run != images else '')
    lines = [
        f'metrics     {summary}',
        f'time        {seconds:.1f} s for {run} images '
        f'({seconds / max(run, 1):.2f} s per image{recorded})'
    ]
    written = [(what, path) for what, path in paths if path]
    width = max([len(w) for w, _ in written] + [0])
    lines += ['written'
              ] + [f'  {what:<{width}}  {path}' for what, path in written]
    return lines
