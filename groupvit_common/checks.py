# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The rules of config values: each raises :class:`ConfigValueError` (or
:class:`ConfigCheckError`) naming the key, the value and the fix."""
import math
from fnmatch import fnmatchcase
from numbers import Integral, Real
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .errors import ConfigCheckError, ConfigValueError
from .vocabulary import resolve_classes

#: ``test_cfg.autocast``'s half dtypes (torch's names); the others keep fp32.
HALF_DTYPES = dict(
    fp16='float16', float16='float16', bf16='bfloat16', bfloat16='bfloat16')
AUTOCAST_CHOICES = (None, False, 'fp32', 'float32', *HALF_DTYPES)


def is_int(value: Any) -> bool:
    """An integer that is not a bool (JSON and configs give both)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def _must(key: str, what: str, value: Any, fix: str = '') -> ConfigValueError:
    """``KEY must be WHAT, got VALUE.`` and the ``fix``."""
    return ConfigValueError(
        f'{key} must be {what}, got {value!r}. {fix}'.strip())


def check_positive_int(value: Any, key: str, meaning: str) -> int:
    """Return ``value`` if it is an integer of at least 1."""
    if not is_int(value) or value < 1:
        raise _must(key, f'a positive integer ({meaning})', value,
                    f'Set it with --cfg-options {key}=N, N >= 1.')
    return int(value)


def check_positive_pair(value: Any,
                        key: str,
                        meaning: str,
                        form: str = '(H,W)') -> Tuple[int, int]:
    """Return ``value`` as a pair if it is two integers of at least 1."""
    if not (isinstance(value, Sequence) and not isinstance(value, str)
            and len(value) == 2 and all(is_int(v) and v >= 1 for v in value)):
        raise _must(key, f'two positive integers ({meaning})', value,
                    f'Set it with --cfg-options "{key}={form}".')
    return int(value[0]), int(value[1])


def check_number(value: Any,
                 key: str,
                 what: str,
                 rule: Callable[[float], bool],
                 fix: str = '') -> float:
    """Return ``value`` as a float if it is a finite number that ``rule``
    takes, else raise: ``key`` must be ``what``."""
    if not (is_number(value) and math.isfinite(value) and rule(value)):
        raise _must(key, what, value, fix)
    return float(value)


def check_bg_thresh(value: Any, key: str) -> float:
    """Return the background threshold ``value`` as a float in [0, 1]."""
    return check_number(
        value, key, 'a number in [0, 1]', lambda v: 0 <= v <= 1,
        'A pixel is background when its group\'s best class score is below '
        'it: 0 keeps every pixel foreground, 0.95 is the VOC and COCO value, '
        '0.35 the PASCAL Context one.')


def check_topk(value: Any,
               key: str,
               classes: Optional[int] = None) -> Tuple[int, ...]:
    """Return top-k accuracy's ``value`` (a k or a sequence of them) as a
    tuple of integers from 1 to ``classes`` (the model's, when known)."""
    ks = tuple(value) if isinstance(value, (list, tuple)) else (value, )
    if not ks or not all(is_int(k) and k >= 1 for k in ks):
        raise _must(
            key, 'a positive integer or a list of them (the k of top-k '
            'accuracy)', value, f'Set it with --cfg-options "{key}=(1,5)".')
    if classes is not None and max(ks) > classes:
        raise ConfigValueError(
            f'{key} asks for top-{max(ks)} accuracy, but the vocabulary has '
            f'{classes} classes. Set values up to {classes}, e.g. '
            f'--cfg-options "{key}=(1,{min(5, classes)})".')
    return tuple(int(k) for k in ks)


#: Rules of number arguments of constructors by name (``*``: any prefix;
#: one whose default is a bool is a flag): what a value must be, a finite
#: number that the test takes.
NUMBER_ARGUMENTS = {
    '*temperature': ('a positive finite number', lambda v: v > 0),
    'gumbel_tau': ('a positive finite number', lambda v: v > 0),
    '*loss_weight': ('a finite number', lambda v: True),
    'drop_path_rate': ('a number in [0, 1) (the probability of dropping a '
                       'block)', lambda v: 0 <= v < 1),
}


def check_arguments(given: dict, arguments: dict, key: str) -> None:
    """Raise for a value of ``given`` (the config at ``key`` of a component)
    that its constructor's argument of that name cannot use (by
    :data:`NUMBER_ARGUMENTS`, and ``frozen_stages``); ``arguments``: the
    constructor's arguments and their defaults."""
    for name, value in given.items():
        rule = next((rule for pattern, rule in NUMBER_ARGUMENTS.items()
                     if fnmatchcase(str(name), pattern)), None)
        default = arguments.get(name, False)
        if rule is not None and not isinstance(default, bool):
            fix = f'The default is {default!r}.' if is_number(
                default) and rule[1](default) else ''
            check_number(value, f'{key}.{name}', rule[0], rule[1], fix)
    if 'frozen_stages' not in given or 'frozen_stages' not in arguments:
        return
    value = given['frozen_stages']
    values = {**arguments, **given}
    stages = values.get('num_stages')
    if not is_int(stages) and isinstance(values.get('depths'), (list, tuple)):
        stages = len(values['depths'])
    if not is_int(value) or value < -1 or is_int(stages) and value > stages:
        most = f' to {stages} (all stages)' if is_int(stages) else ' up'
        raise _must(f'{key}.frozen_stages',
                    f'an integer from -1 (nothing frozen){most}', value,
                    f'Set it with --cfg-options {key}.frozen_stages=N.')


def check_in_index(head: dict, key: str, outputs: int, source: str) -> None:
    """Raise unless the ``in_index`` of ``head`` (the config at ``key`` of a
    decode head, its default set) selects maps among the ``outputs`` that
    ``source`` (the backbone's ``out_indices``) gives."""
    index = head.get('in_index')
    indices = index if isinstance(index, (list, tuple)) else [index]
    if all(is_int(i) and -outputs <= i < outputs for i in indices):
        return
    raise ConfigValueError(
        f'{key}.in_index is {index!r} but {source} gives {outputs} '
        f'map{"s" * (outputs != 1)}: the head would read a map that does not '
        f'exist. Give {key}.in_index indices in [-{outputs}, '
        f'{outputs - 1}], or {source} more stages.')


def check_choice(value: Any, key: str, choices: Sequence) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise _must(key, f'one of {", ".join(map(repr, choices))}', value)
    return value


_KEY = 'model.test_cfg'

#: The memory budgets of ``test_cfg`` and what each bounds.
BUDGETS = dict(
    max_dense_scores_bytes='the largest score canvas at the network\'s size',
    max_full_size_scores_bytes='the largest score map resized to the '
    'original image')


def check_stride(crop: Sequence[int], stride: Sequence[int], key: str) -> None:
    """Raise unless windows of ``crop`` every ``stride`` cover every pixel."""
    if stride[0] > crop[0] or stride[1] > crop[1]:
        raise ConfigValueError(
            f'{key}.stride {stride} is larger than {key}.crop_size {crop}: '
            f'the pixels between two windows would get no score (0/0 = NaN, '
            f'then counted as background). Use a stride of at most the crop '
            f'size, e.g. "{key}.stride=({max(crop[0] // 2, 1)},'
            f'{max(crop[1] // 2, 1)})".')


#: Every key of the segmentor's ``test_cfg``; another would be ignored.
KEYS = ('mode', 'crop_size', 'stride', 'bg_thresh', 'window_batch', 'autocast',
        *BUDGETS)


def check_test_cfg(test_cfg: Optional[dict],
                   patch_size: Optional[int] = None) -> None:
    """Raise unless every key of the segmentor's ``test_cfg`` is known and
    can give a correct result (``patch_size``: the image encoder's)."""
    if test_cfg is None:
        return
    unknown = sorted(set(test_cfg) - set(KEYS))
    if unknown:
        raise ConfigValueError(
            f'{_KEY} has no setting {", ".join(map(repr, unknown))}: it '
            f'would be ignored. The settings are {", ".join(KEYS)}.')
    mode = check_choice(
        test_cfg.get('mode', 'whole'), f'{_KEY}.mode', ('whole', 'slide'))
    if mode == 'slide':
        crop = check_positive_pair(
            test_cfg.get('crop_size'), f'{_KEY}.crop_size',
            'window height and width, needed by mode=\'slide\'')
        check_stride(
            crop,
            check_positive_pair(
                test_cfg.get('stride'), f'{_KEY}.stride',
                'step between windows, needed by mode=\'slide\''), _KEY)
        if patch_size and min(crop) < patch_size:
            raise ConfigValueError(
                f'{_KEY}.crop_size {crop} is smaller than one '
                f'{patch_size}x{patch_size} patch of the image encoder, so '
                f'no window can be segmented. Use windows of at least '
                f'({patch_size}, {patch_size}); the shipped configs use '
                f'(448, 448) with a stride of (224, 224).')
    if test_cfg.get('window_batch') is not None:
        check_positive_int(test_cfg['window_batch'], f'{_KEY}.window_batch',
                           'windows per backbone pass')
    for key, meaning in BUDGETS.items():
        budget = test_cfg.get(key)
        if budget is not None and (not is_int(budget) or budget < 0):
            raise _must(
                f'{_KEY}.{key}',
                f'a number of bytes (an integer, 0 or more: {meaning})',
                budget)
    check_choice(
        test_cfg.get('autocast'), f'{_KEY}.autocast', AUTOCAST_CHOICES)
    if test_cfg.get('bg_thresh') is not None:
        check_bg_thresh(test_cfg['bg_thresh'], f'{_KEY}.bg_thresh')


#: Sections a test config must have: what each must be, the types it may
#: have (a list: a non-empty one of dicts). ``model`` sections must be dicts
#: when present.
TEST_SECTIONS = {
    'test_dataloader': ('a dict', dict),
    'test_dataloader.dataset': ('a dict', dict),
    'test_evaluator': ('a dict or a non-empty list of dicts', (dict, list)),
    'test_dataloader.dataset.pipeline':
    ('a list of dicts (the test steps)', list),
}
#: What a training config sets up (mmengine's ``Runner.train`` reads them).
TRAIN_SECTIONS = ('train_dataloader', 'train_cfg', 'optim_wrapper')
MODEL_SECTIONS = ('model.test_cfg', 'model.text_encoder',
                  'model.image_encoder', 'model.decode_head',
                  'model.data_preprocessor')


def _lookup(cfg: dict, key: str) -> Tuple[bool, Any]:
    """``(present, value)`` of a dotted ``key`` of nested dicts."""
    value = cfg
    for part in key.split('.'):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _section_error(key: str, value: Any, what: str) -> ConfigValueError:
    return _must(
        key, what, value, f'Check the config file and any '
        f'--cfg-options that sets {key}.')


def check_head_classes(head: dict, vocabulary: int, with_bg: bool) -> int:
    """The head's outputs, one per class plus background when ``with_bg``;
    a configured ``num_classes`` or ``out_channels`` must agree."""
    if not isinstance(with_bg, bool):
        raise _must('model.decode_head.with_bg', 'True or False', with_bg)
    channels = vocabulary + with_bg
    for key in ('out_channels', 'num_classes'):
        value = head.get(key)
        if value is None or (key == 'num_classes' and not is_int(value)):
            continue
        if not is_int(value) or value != channels:
            raise ConfigValueError(
                f'model.decode_head.{key} is {value!r} but the vocabulary '
                f'has {vocabulary} classes{" plus background" * with_bg}, so '
                f'the head has {channels} outputs. The vocabulary decides the '
                f'classes: remove model.decode_head.{key} from the config.')
    return channels


def check_aux_head_classes(aux_heads: Any, outputs: int) -> None:
    """Raise unless each auxiliary head (trained on the labels the decode
    head's ``outputs`` score) has ``outputs`` classes."""
    heads = aux_heads if isinstance(aux_heads, list) else [aux_heads]
    for index, aux in enumerate(heads):
        value = aux.get('num_classes') if isinstance(aux, dict) else None
        if not is_int(value) or value == outputs:
            continue
        key = (f'model.auxiliary_head.{index}'
               if isinstance(aux_heads, list) else 'model.auxiliary_head')
        raise ConfigValueError(
            f'{key}.num_classes is {value} but the decode head scores '
            f'{outputs} classes: the auxiliary head learns the same labels. '
            f'Set --cfg-options {key}.num_classes={outputs}.')


def check_class_count(model_classes: int,
                      dataset_classes: int,
                      source: str = '') -> None:
    """Raise unless the model scores as many classes as the dataset has
    (one channel: mmseg's binary protocol); ``source`` leads the message."""
    if model_classes == dataset_classes or (model_classes, dataset_classes) \
            == (1, 2):
        return
    raise ConfigCheckError(
        f'{source}The model scores {model_classes} classes but the dataset '
        f'has {dataset_classes}: the metrics would compare different class '
        f'lists. The vocabulary (model.text_encoder.vocabulary or '
        f'dataset_name) needs one entry per dataset class, in label order, '
        f'without background when the head adds it (with_bg=True).')


def _vocabulary(text: dict, prompt_classes: Optional[Callable],
                with_bg: bool) -> Optional[List[list]]:
    """The prompted classes of a text encoder config (None without any),
    by the text encoder's own rules."""
    if text.get('vocabulary') is None and not (text.get('dataset_name')
                                               and prompt_classes):
        return None
    return resolve_classes(
        text.get('vocabulary'), text.get('dataset_name'),
        text.get('extra_classes'), prompt_classes, with_bg)[0]


def check_classes(cfg: dict,
                  test: bool = True,
                  dataset_classes: Optional[Callable] = None,
                  prompt_classes: Optional[Callable] = None,
                  head_with_bg: Optional[Callable] = None) -> Optional[int]:
    """The one rule of class counts: the vocabulary (plus background when
    the head has it) decides the model's classes, and a test dataset must
    have as many.

    Args:
        cfg (dict): A config whose sections :func:`check_config` checked.
        test (bool): Check against the test dataset too.
        dataset_classes (callable, optional): A dataset config's class names.
        prompt_classes (callable, optional): A ``dataset_name``'s names.
        head_with_bg (callable, optional): Whether a decode head config has
            a background channel (None: its ``with_bg``, else False).

    Returns:
        int | None: The classes the model scores, when the config says.
    """
    model, source = cfg['model'], ''
    head = model.get('decode_head') or {}
    text = model.get('text_encoder')
    if text is not None:
        with_bg = head_with_bg(head) if head_with_bg else head.get(
            'with_bg', False)
        classes = _vocabulary(text, prompt_classes, with_bg
                              or 'decode_head' not in model)
        if classes is None:
            return None
        if 'decode_head' in model:
            outputs = check_head_classes(head, len(classes), with_bg)
            source = (f'The text encoder has {len(classes)} classes (first: '
                      f'{classes[0][0]!r}){" plus background" * with_bg}. ')
        else:
            outputs = len(classes)
            source = f'The classifier\'s vocabulary has {outputs} classes '
    elif is_int(head.get('num_classes')):
        outputs = head['num_classes']
    else:
        return None
    check_aux_head_classes(model.get('auxiliary_head'), outputs)
    dataset = cfg['test_dataloader']['dataset'] if test else None
    names = dataset_classes(dataset) if test and dataset_classes else None
    if names is None:
        return outputs
    if text is not None and 'decode_head' not in model:
        source += f'and the test dataset {len(names)}. '
    else:
        source += (f'The test dataset ({dataset.get("type")}) has '
                   f'{len(names)} classes. ')
    check_class_count(outputs, len(names), source)
    if text is not None:
        check_class_order(classes, names, outputs - len(classes))
    return outputs


def check_class_order(classes: List[List[str]], names: Sequence[str],
                      first: int) -> None:
    """Raise when a vocabulary class is named (its first name) as another
    dataset class than the one of its label, which none of its names is
    (``first``: the label of the first class, 1 after the head's
    background): the same classes in another order."""

    def key(name):
        return str(name).strip().casefold()

    labels = {}
    for label, name in enumerate(names):
        labels.setdefault(key(name), label)
    for index, synonyms in enumerate(classes):
        label = index + first
        if label >= len(names) or key(names[label]) in map(key, synonyms):
            continue
        other = labels.get(key(synonyms[0]))
        if other is not None:
            raise ConfigCheckError(
                f'vocabulary class {index + 1} ({synonyms[0]!r}) is named as '
                f'the dataset\'s class {other} ({names[other]!r}), but it is '
                f'scored as label {label} ({names[label]!r}): the metrics '
                f'would count one class as another. List the vocabulary in '
                f'the label order of the dataset\'s classes '
                f'(metainfo.classes), or, if it is {names[label]!r}, give it '
                f'that name first.')


def check_zero_shot_segmentor(model: dict, config: str) -> None:
    """Raise unless a config's ``model`` is a zero-shot segmentor (a text
    encoder and a decode head); ``config`` names the config's file."""
    if 'text_encoder' in model and 'decode_head' in model:
        return
    kind = model.get('type')
    if 'text_encoder' in model:
        raise ConfigCheckError(
            f'{config} is a zero-shot classification config (model '
            f'{kind}): it ranks classes for a whole image and segments '
            f'nothing. Classify with tools/demo.py --classify; the ONNX '
            f'export and the benchmarks take segmentation configs only, '
            f'e.g. configs/groupvit_voc.py (docs/deployment.md).')
    raise ConfigCheckError(
        f'{config} has no model.text_encoder, so it is not a zero-shot '
        f'GroupViT config (model {kind} segments the fixed classes it was '
        f'trained on, with no vocabulary). Give a zero-shot config, e.g. '
        f'configs/groupvit_voc.py; evaluate this one with tools/test.py.')


def check_config(cfg: dict,
                 test: bool = True,
                 dataset_classes: Optional[Callable] = None,
                 prompt_classes: Optional[Callable] = None,
                 head_with_bg: Optional[Callable] = None,
                 train: bool = False) -> None:
    """Raise unless the sections a tool reads (for a ``test`` the test
    sections too, to ``train`` the training ones) have the right types and
    the values of the dataloaders, the optimizer and ``test_evaluator``'s
    ``topk`` can work, by :func:`check_classes` too."""
    model = cfg.get('model')
    if not isinstance(model, dict) or not model.get('type'):
        raise _section_error('model', model, 'a dict with a type')
    for key in MODEL_SECTIONS:
        present, value = _lookup(cfg, key)
        if present and not isinstance(value, dict):
            raise _section_error(key, value, 'a dict')
    if 'text_encoder' in model and 'decode_head' in model:
        check_test_cfg(model.get('test_cfg'))  # a zero-shot segmentor's
    sections = dict(TEST_SECTIONS) if test else {}
    if train:
        missing = [key for key in TRAIN_SECTIONS if cfg.get(key) is None]
        if missing:
            raise ConfigCheckError(
                f'the config has no {", ".join(missing)}: it does not set up '
                f'training, so it cannot be trained (a zero-shot or '
                f'classification config is evaluated with tools/test.py). '
                f'Train with a config of configs/finetune/ (docs/finetune.md) '
                f'or configs/pretrain/ (docs/pretrain.md).')
        sections.update(
            dict.fromkeys((*TRAIN_SECTIONS, 'train_dataloader.dataset'),
                          ('a dict', dict)))
    for key, (what, types) in sections.items():
        value = _lookup(cfg, key)[1]
        if not isinstance(value, types) or isinstance(value, list) and not (
                value and all(isinstance(v, dict) for v in value)):
            raise _section_error(key, value, what)
    if test:
        check_test_dataloader(cfg)
    for key in ('train_dataloader', 'val_dataloader') if train else ():
        if isinstance(cfg.get(key), dict):
            check_dataloader(cfg[key], key)
    present, lr = _lookup(cfg, 'optim_wrapper.optimizer.lr')
    if train and present and lr is not None:  # None: Adafactor's own
        check_number(
            lr, 'optim_wrapper.optimizer.lr', 'a finite number, 0 or more',
            lambda v: v >= 0, 'Set the learning rate with --cfg-options '
            'optim_wrapper.optimizer.lr=VALUE.')
    classes = check_classes(cfg, test, dataset_classes, prompt_classes,
                            head_with_bg)
    evaluators = cfg['test_evaluator'] if test else []
    many = isinstance(evaluators, list)
    for index, evaluator in enumerate(evaluators if many else [evaluators]):
        if 'topk' in evaluator:
            check_topk(evaluator['topk'],
                       f'test_evaluator{f".{index}" * many}.topk', classes)


def check_dataloader(loader: dict, key: str) -> None:
    """Raise unless a dataloader's ``batch_size`` (None: a batch sampler's,
    outside the test) and its workers can work; ``key`` names it."""
    batch_size = loader.get('batch_size', 1)
    if batch_size is not None or key == 'test_dataloader':
        check_positive_int(batch_size, f'{key}.batch_size', 'images per batch')
    if loader.get('persistent_workers') and not loader.get('num_workers'):
        raise ConfigValueError(
            f'{key}.persistent_workers=True keeps worker processes, but '
            f'{key}.num_workers is {loader.get("num_workers", 0)!r} (no '
            f'workers: PyTorch refuses it). Add --cfg-options '
            f'{key}.persistent_workers=False.')


def check_test_dataloader(cfg: dict) -> None:
    """Raise unless the test dataloader (:func:`check_dataloader`) and its
    ``Resize`` sizes can work."""
    loader = cfg['test_dataloader']
    check_dataloader(loader, 'test_dataloader')
    for index, step in enumerate(loader['dataset']['pipeline']):
        if 'Resize' not in str(step.get('type', '')):
            continue
        key = f'test_dataloader.dataset.pipeline.{index}'
        scale, factor = step.get('scale'), step.get('scale_factor')
        what = f'{step["type"]}: the target'
        if is_int(scale):
            check_positive_int(scale, f'{key}.scale', f'{what} size')
        elif scale is not None:
            check_positive_pair(scale, f'{key}.scale',
                                f'{what} width and height', '(W,H)')
        factors = factor if isinstance(factor, (list, tuple)) else [factor]
        if factor is not None and not all(
                is_number(f) and f > 0 for f in factors):
            raise _must(f'{key}.scale_factor ({step["type"]})', 'positive',
                        factor)
