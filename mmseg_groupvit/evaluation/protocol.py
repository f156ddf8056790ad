# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Read the evaluation protocol out of a config: what is measured, on
which data, with which test-time settings."""
from typing import Any, Dict, List, Optional

from mmengine.config import Config, ConfigDict

from ..utils.config_file import dataset_classes

__all__ = [
    'describe_protocol', 'format_protocol', 'format_templates',
    'format_vocabulary'
]


def _plain(value: Any) -> Any:
    """Config values as JSON-friendly Python (tuples become lists)."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _test_pipeline(cfg: Config) -> List[dict]:
    dataset = cfg.test_dataloader.dataset
    pipeline = dataset.get('pipeline', None)
    if pipeline is None:
        pipeline = cfg.get('test_pipeline', [])
    return list(pipeline)


def _resize(pipeline: List[dict]) -> Optional[dict]:
    for step in pipeline:
        # tools/test.py loads with CheckedResize: the same resize.
        if step.get('type') in ('Resize', 'CheckedResize'):
            return dict(
                scale=_plain(step.get('scale')),
                keep_ratio=bool(step.get('keep_ratio', False)))
    return None


def describe_protocol(cfg: Config) -> Dict[str, Any]:
    """The test-time protocol a (merged) config evaluates.

    Args:
        cfg (Config): A GroupViT evaluation config, ``--cfg-options``
            already merged.

    Returns:
        dict: JSON-serialisable, with keys

        - ``dataset``: the test dataset's registered type;
        - ``data_root``: its ``data_root``;
        - ``num_classes``: classes evaluated (the head's output channels,
          which the test run checks equal the dataset's);
        - ``background``: whether class 0 is a thresholded background;
        - ``bg_thresh``: the background threshold (None without one);
        - ``resize``: ``{'scale': [w, h], 'keep_ratio': bool}`` of the test
          pipeline's ``Resize``, or None;
        - ``window``: the segmentor's ``mode`` and, for ``'slide'``,
          ``crop_size`` and ``stride``;
        - ``templates``: a template-set name or the list of templates;
        - ``vocabulary``: the prompt source: ``{'dataset_name': ...}`` or
          ``{'vocabulary': <file path or list>}``.

        A model without a text encoder (a fine-tuned head) has no
        background threshold, templates or vocabulary: None.
    """
    model = cfg.model
    head = model.get('decode_head', {})
    # Zero-shot: classes from a text encoder's prompts (not a fine-tuned
    # head, whose classes, background included, are trained ones).
    zero_shot = 'text_encoder' in model
    text = model.get('text_encoder', {})
    test_cfg = model.get('test_cfg', None) or {}
    dataset = cfg.test_dataloader.dataset
    # GroupViTHead's defaults: background on, threshold 0.95.
    with_bg = zero_shot and bool(head.get('with_bg', True))
    bg_thresh = test_cfg.get('bg_thresh', head.get('bg_thresh', 0.95))
    window = dict(mode=test_cfg.get('mode', 'whole'))
    if window['mode'] == 'slide':
        window.update(
            crop_size=_plain(test_cfg.get('crop_size')),
            stride=_plain(test_cfg.get('stride')))
    if text.get('vocabulary', None) is not None:
        vocabulary = dict(vocabulary=_plain(text.vocabulary))
    else:
        vocabulary = dict(dataset_name=text.get('dataset_name', None))
    return dict(
        dataset=dataset.get('type'),
        data_root=dataset.get('data_root', None),
        num_classes=head.get('num_classes', None)
        or len(dataset_classes(dataset) or ()),
        background=with_bg,
        bg_thresh=float(bg_thresh) if with_bg else None,
        resize=_resize(_test_pipeline(cfg)),
        window=window,
        templates=_plain(text.get('templates', 'simple'))
        if zero_shot else None,
        vocabulary=vocabulary if zero_shot else None)


def _format_resize(resize: Optional[dict]) -> str:
    if not resize:
        return 'none'
    scale = resize['scale']
    if resize['keep_ratio'] and isinstance(scale, list) and len(scale) == 2:
        return f'short {min(scale)}, long <= {max(scale)}'
    return f'{scale} (keep_ratio={resize["keep_ratio"]})'


def _format_window(window: dict) -> str:
    if window.get('mode') != 'slide':
        return window.get('mode', 'whole')
    crop, stride = window['crop_size'], window['stride']
    return f'slide {crop[0]}x{crop[1]} / {stride[0]}x{stride[1]}'


def format_templates(templates) -> str:
    if templates is None:
        return '-'
    if isinstance(templates, str):
        return templates
    if len(templates) == 1:
        return repr(templates[0])
    return f'{len(templates)} custom: ' + ' / '.join(templates)


def format_vocabulary(vocabulary: Optional[dict]) -> str:
    if vocabulary is None:
        return '-'
    if 'dataset_name' in vocabulary:
        return f'dataset_name={vocabulary["dataset_name"]}'
    value = vocabulary['vocabulary']
    if isinstance(value, str):
        return f'file {value}'
    return f'list of {len(value)}'


def format_protocol(protocol: Dict[str, Any]) -> Dict[str, str]:
    """:func:`describe_protocol`'s record as short texts for a table or a
    console.

    Args:
        protocol (dict): What :func:`describe_protocol` returns.

    Returns:
        dict[str, str]: ``classes``, ``resize``, ``window``, ``bg_thresh``,
        ``templates`` and ``vocabulary``, e.g. ``'short 448, long <= 2048'``
        or ``'slide 448x448 / 224x224'``.
    """
    classes = str(protocol['num_classes'])
    if protocol['background']:
        classes += ' (incl. background)'
    return dict(
        classes=classes,
        resize=_format_resize(protocol['resize']),
        window=_format_window(protocol['window']),
        bg_thresh=('-' if protocol['bg_thresh'] is None else
                   f'{protocol["bg_thresh"]:g}'),
        templates=format_templates(protocol['templates']),
        vocabulary=format_vocabulary(protocol['vocabulary']))
