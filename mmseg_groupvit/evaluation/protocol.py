# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The evaluation protocol of a config (what is measured, on which data,
with which test-time settings) and the lines ``tools/test.py`` prints."""
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.model import BaseTTAModel

from ..datasets.transforms import step_kind
from ..models.config_arguments import builds
from ..models.decode_heads.groupvit_head import head_with_bg
from ..utils.config_file import dataset_classes, load_config


def _plain(value: Any) -> Any:
    """Config values as JSON-friendly Python (tuples become lists)."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def is_classification_config(cfg) -> bool:
    """Whether a config (object or file) builds a ``GroupViTClassifier``."""
    from ..models.classifiers import GroupViTClassifier
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    return builds(cfg.get('model', {}), GroupViTClassifier)


def is_tta_model(model: dict) -> bool:
    """Whether a model config is a test-time augmentation model (mmseg's
    ``SegTTAModel``) whose ``module`` is the segmentor."""
    return builds(model, BaseTTAModel)


def _tested(cfg: Config) -> Tuple[dict, list, list]:
    """The model config and test steps that run, and the stages of a
    ``TestTimeAug`` step with several choices, each of which runs
    (``tools/test.py --tta`` moves the model to ``cfg.model.module``)."""
    model = cfg.model
    if is_tta_model(model):
        model = model['module']
    dataset = cfg.test_dataloader.dataset
    steps, choices = [], []
    for step in dataset.get('pipeline', None) or cfg.get('test_pipeline', []):
        if step_kind(step) != 'TestTimeAug':
            steps.append(step)
            continue
        for stage in step.get('transforms') or []:
            if len(stage) == 1:
                steps.extend(stage)
            else:
                choices.append(stage)
    return model, steps, choices


def _step_text(step: dict) -> str:
    """A pipeline step as ``Resize(scale=[2048, 448], keep_ratio=True)``."""
    values = ', '.join(f'{k}={_plain(v)!r}' for k, v in step.items()
                       if k != 'type')
    return f'{step_kind(step)}({values})'


def describe_protocol(cfg: Config) -> Dict[str, Any]:
    """The test-time protocol of a merged config, JSON-friendly.

    Returns:
        dict: ``dataset``, ``data_root``, ``templates`` and ``vocabulary``
        (None without a text encoder); for classification ``task``,
        ``pipeline``, ``resize``, ``crop`` and ``topk``; for segmentation
        ``num_classes``, ``background``, ``bg_thresh``, ``resize`` and
        ``window``; ``tta``, the stages of test-time augmentation whose
        choices each run (None without).
    """
    model, pipeline, choices = _tested(cfg)
    dataset = cfg.test_dataloader.dataset
    zero_shot = 'text_encoder' in model
    text = model.get('text_encoder', {})
    vocabulary = dict(dataset_name=text.get('dataset_name', None))
    if text.get('vocabulary', None) is not None:
        vocabulary = dict(vocabulary=_plain(text['vocabulary']))
    steps = {step_kind(step): step for step in reversed(pipeline)}
    protocol = dict(
        dataset=dataset.get('type'),
        data_root=dataset.get('data_root', None),
        templates=_plain(text.get('templates', 'simple'))
        if zero_shot else None,
        vocabulary=vocabulary if zero_shot else None,
        tta=[[_plain(s) for s in stage] for stage in choices] or None)
    if is_classification_config(cfg):
        resize, crop = steps.get('ResizeEdge'), steps.get('CenterCrop')
        # As Accuracy reads it: an int or a sequence, of any evaluator.
        evaluators = cfg.get('test_evaluator', {})
        if not isinstance(evaluators, list):
            evaluators = [evaluators]
        topk = next((e['topk'] for e in evaluators if 'topk' in e), (1, ))
        return dict(
            protocol,
            task='classification',
            pipeline=[s.get('type') for s in pipeline],
            resize=resize and dict(
                scale=resize.get('scale'), edge=resize.get('edge', 'short')),
            crop=None if crop is None else _plain(crop.get('crop_size')),
            topk=_plain((topk, ) if isinstance(topk, int) else topk))
    head = model.get('decode_head', {})
    test_cfg = model.get('test_cfg', None) or {}
    with_bg = zero_shot and bool(head_with_bg(head))
    bg_thresh = test_cfg.get('bg_thresh', head.get('bg_thresh', 0.95))
    window = dict(mode=test_cfg.get('mode', 'whole'))
    if window['mode'] == 'slide':
        window.update(
            crop_size=_plain(test_cfg.get('crop_size')),
            stride=_plain(test_cfg.get('stride')))
    step = steps.get('Resize', steps.get('CheckedResize'))
    resize = step and dict(
        scale=_plain(step.get('scale')),
        keep_ratio=bool(step.get('keep_ratio', False)))
    if step and step.get('scale') is None:  # mmcv's Resize then takes it
        resize['scale_factor'] = _plain(step.get('scale_factor'))
    return dict(
        protocol,
        num_classes=head.get('num_classes', None)
        or len(dataset_classes(dataset) or ()),
        background=with_bg,
        bg_thresh=float(bg_thresh) if with_bg else None,
        resize=resize,
        window=window)


def format_protocol(protocol: Dict[str, Any]) -> Dict[str, str]:
    """:func:`describe_protocol`'s record as the short texts of a table row
    (``resize`` ``'short 448, long <= 2048'``, ``window`` ``'slide 448x448
    / 224x224'``, ...)."""
    templates, vocabulary = protocol['templates'], protocol['vocabulary']
    if isinstance(templates, list):
        templates = (
            repr(templates[0]) if len(templates) == 1 else
            f'{len(templates)} custom: ' + ' / '.join(templates))
    if vocabulary is not None:
        value = vocabulary.get('vocabulary')
        vocabulary = (f'dataset_name={vocabulary["dataset_name"]}'
                      if 'dataset_name' in vocabulary else f'file {value}'
                      if isinstance(value, str) else f'list of {len(value)}')
    texts = dict(
        templates='-' if templates is None else templates,
        vocabulary='-' if vocabulary is None else vocabulary)
    resize = protocol['resize']
    if protocol.get('task') == 'classification':
        shown = [f'{resize["edge"]} {resize["scale"]}'] if resize else []
        if protocol['crop'] is not None:
            shown.append(f'crop {protocol["crop"]}')
        return dict(
            texts,
            classes='-',
            resize=', '.join(shown) or 'none',
            window='-',
            bg_thresh='-')
    scale = resize and resize['scale']
    augmented = any(
        step_kind(step) in ('Resize', 'CheckedResize')
        for stage in protocol.get('tta') or [] for step in stage)
    if not resize:
        resize_text = 'by test-time augmentation' if augmented else 'none'
    elif resize['keep_ratio'] and isinstance(scale, list) and len(scale) == 2:
        resize_text = f'short {min(scale)}, long <= {max(scale)}'
    elif resize.get('scale_factor') is not None:
        resize_text = (f'scale_factor {resize["scale_factor"]} '
                       f'(keep_ratio={resize["keep_ratio"]})')
    else:
        resize_text = f'{scale} (keep_ratio={resize["keep_ratio"]})'
    window = protocol['window'].get('mode', 'whole')
    if window == 'slide':
        crop, stride = (protocol['window'][k] for k in ('crop_size', 'stride'))
        window = f'slide {crop[0]}x{crop[1]} / {stride[0]}x{stride[1]}'
    bg_thresh = protocol['bg_thresh']
    return dict(
        texts,
        classes=f'{protocol["num_classes"]}' +
        ' (incl. background)' * protocol['background'],
        resize=resize_text,
        window=window,
        bg_thresh='-' if bg_thresh is None else f'{bg_thresh:g}')


def run_lines(cfg, config: str, checkpoint: Optional[str]) -> List[str]:
    """What a test run evaluates, one ``name  value`` line each."""
    protocol = describe_protocol(cfg)
    texts = format_protocol(protocol)
    data = f'{protocol["dataset"]} in {protocol["data_root"]}'
    split = cfg.test_dataloader.dataset.get('ann_file', None)
    if split:
        data += f', split {osp.join(protocol["data_root"] or "", split)}'
    if protocol.get('task') == 'classification':
        classes = (
            texts['vocabulary'] if 'vocabulary' in protocol['vocabulary'] else
            f'the classes of {protocol["vocabulary"]["dataset_name"]}')
        resize, crop = protocol['resize'], protocol['crop']
        steps = [
            f'resize {resize["edge"]} side {resize["scale"]}'
            if resize else 'no resize',
            f'center crop {crop}' if crop is not None else 'no crop',
            'top-' + ', top-'.join(str(k) for k in protocol['topk'])
        ]
        vocabulary = ('vocabulary',
                      f'{classes}; templates {protocol["templates"]}')
    else:
        classes = (f'{protocol["num_classes"]} classes' +
                   ' incl. background' * protocol['background'])
        steps = [f'resize {texts["resize"]}', texts['window']]
        if protocol['bg_thresh'] is not None:
            steps.append(f'bg_thresh {texts["bg_thresh"]}')
        vocabulary = ('classes', classes)
        if protocol['vocabulary'] is not None:
            vocabulary = ('vocabulary', f'{texts["vocabulary"]}; {classes}; '
                          f'templates {texts["templates"]}')
    for stage in protocol['tta'] or []:
        steps.append('averaged over ' + ' | '.join(map(_step_text, stage)))
    lines = [('config', config), ('checkpoint', checkpoint or 'none'),
             ('data', data), vocabulary, ('protocol', '; '.join(steps))]
    return [f'{name:<11} {value}' for name, value in lines]


def class_table_lines(class_results: Optional[dict]) -> List[str]:
    """The per-class table of ``PerClassIoUMetric.class_results``."""
    if not class_results:
        return []
    classes = class_results['classes']
    metrics = [k for k in class_results if k != 'classes']
    width = max(len('class'), *(len(str(c)) for c in classes))
    lines = [f'{"class":<{width}}' + ''.join(f'{m:>8}' for m in metrics)]
    for i, name in enumerate(classes):
        cells = ('-' if class_results[m][i] is None else
                 f'{class_results[m][i]:.2f}' for m in metrics)
        lines.append(f'{str(name):<{width}}' + ''.join(f'{c:>8}'
                                                       for c in cells))
    return lines
