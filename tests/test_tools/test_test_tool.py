# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/test.py end to end on the real VOC, Context and COCO samples.

The checkpoint is a small, randomly initialised transformers
``GroupViTModel`` (weights perturbed so that predictions vary), saved with
``save_pretrained`` and converted with ``convert_checkpoint``; the converter
writes the config of its architecture, which the runs inherit through small
leaf configs over the shipped ones. Every run goes through the command line
(``python tools/test.py`` or ``torchrun``) with one thread per process, so
one and two processes compute bit-identical scores.

What is checked against something independent:

- the per-class IoU / accuracy and the summary metrics of ``results.json``
  against a numpy confusion matrix of the saved predictions (``--out``) and
  the label PNGs read with PIL (ignore index 255);
- the predictions' size against the JPEG's own size;
- two processes (torchrun, gloo) against one process;
- ``--show-dir`` overlays against the images they show.
"""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmseg.datasets import PascalVOCDataset
from mmseg.registry import MODELS
from PIL import Image

from mmseg_groupvit.evaluation import describe_protocol
from mmseg_groupvit.utils import get_prompt_classes
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import (COCO_SAMPLE, CONTEXT_SAMPLE, HF_SMALL, REPO,
                            VOC_SAMPLE, load_script, run_main,
                            swaps_of_a_test_run)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

transformers = pytest.importorskip('transformers')

TEST_PY = osp.join(REPO, 'tools', 'test.py')
VOC_IMAGES = 5  # odd: two processes must drop the sampler's padding


@pytest.fixture(scope='module')
def small_model(tmp_path_factory):
    """``(checkpoint, architecture)`` of a converted random transformers
    model."""
    root = tmp_path_factory.mktemp('groupvit_small')
    torch.manual_seed(0)
    model = transformers.GroupViTModel(
        transformers.GroupViTConfig(**HF_SMALL)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name == 'logit_scale':
                param.fill_(4.6)
            else:
                param.add_(torch.randn(param.shape, generator=gen) * 0.2)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
    model.save_pretrained(str(root / 'hf'))
    result = convert_checkpoint(str(root / 'hf'), str(root / 'small.pth'))
    return str(root / 'small.pth'), result['arch']


def leaf_config(path, base, arch):
    """A config over a shipped one with the converted architecture."""
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{osp.join(REPO, 'configs', base)}']\n"
                f"model = dict(image_encoder={arch['image_encoder']!r}, "
                f"text_encoder={arch['text_encoder']!r})\n")
    return str(path)


def run_tool(config, checkpoint, work_dir, *extra, nproc=1):
    """Run tools/test.py and return its results.json: in process, or a
    process for ``--show-dir`` (mmseg's visualizer is one per process) and
    torchrun for ``nproc`` > 1."""
    args = [config, checkpoint, '--work-dir', str(work_dir), *extra]
    if nproc == 1 and '--show-dir' not in extra:
        result, text = run_main(TEST_PY, args, 'groupvit_test_tool')
        assert isinstance(result, dict), text[-6000:]
    else:
        launch = [] if nproc == 1 else [
            '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
            '--master_addr=127.0.0.1', f'--master_port={free_port()}'
        ]
        launcher = [] if nproc == 1 else ['--launcher', 'pytorch']
        proc = subprocess.run(
            [sys.executable, *launch, TEST_PY, *args, *launcher],
            cwd=REPO,
            env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'),
            capture_output=True,
            text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        text = proc.stdout + proc.stderr
    # What the user saw, for the tests of the console.
    with open(osp.join(work_dir, 'console.txt'), 'w') as f:
        f.write(text)
    with open(osp.join(work_dir, 'results.json')) as f:
        return json.load(f)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def subset_split(path, split_file, count):
    """The first ``count`` ids of a split file, written to ``path``."""
    with open(split_file) as f:
        ids = f.read().split()[:count]
    path.write_text('\n'.join(ids) + '\n')
    return str(path), ids


def numpy_metrics(pairs, num_classes, ignore_index=255):
    """Per-class IoU / accuracy and the summary, in percent, from a
    confusion matrix; NaN for a class absent from both maps."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for pred, label in pairs:
        valid = label != ignore_index
        hist += np.bincount(
            num_classes * label[valid].astype(np.int64) + pred[valid],
            minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = np.diag(hist).astype(np.float64)
    label_area, pred_area = hist.sum(1), hist.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = inter / (label_area + pred_area - inter)
        acc = inter / label_area
    return dict(
        IoU=iou * 100,
        Acc=acc * 100,
        aAcc=inter.sum() / hist.sum() * 100,
        mIoU=np.nanmean(iou) * 100,
        mAcc=np.nanmean(acc) * 100,
        predicted=set(np.flatnonzero(pred_area)))


def read_pairs(pred_dir, image_dir, label_dir, ids, label_suffix):
    """``(prediction, label)`` arrays, checking each against its image's
    size."""
    pairs = []
    for name in ids:
        width, height = Image.open(osp.join(image_dir, name + '.jpg')).size
        pred = np.asarray(Image.open(osp.join(pred_dir, name + '.png')))
        label = np.asarray(
            Image.open(osp.join(label_dir, name + label_suffix)))
        assert pred.shape == label.shape == (height, width), name
        pairs.append((pred.astype(np.int64), label))
    return pairs


def assert_matches_numpy(record, expected, num_classes):
    per_class = record['per_class']
    assert len(per_class['classes']) == num_classes
    for metric in ('IoU', 'Acc'):
        got = np.array([np.nan if v is None else v for v in per_class[metric]])
        np.testing.assert_array_equal(
            np.isnan(got), np.isnan(expected[metric]))
        np.testing.assert_allclose(
            got, expected[metric], rtol=1e-5, atol=1e-4, equal_nan=True)
    # mmseg reports the summary rounded to 2 decimals (from float32).
    for metric in ('mIoU', 'mAcc', 'aAcc'):
        assert abs(record['metrics'][metric] - expected[metric]) < 0.0051, \
            metric


@pytest.fixture(scope='module')
def voc_run(small_model, tmp_path_factory):
    """One process over 5 VOC images, with --out and --show-dir."""
    checkpoint, arch = small_model
    root = tmp_path_factory.mktemp('voc_run')
    config = leaf_config(root / 'voc.py', 'groupvit_voc.py', arch)
    split, ids = subset_split(
        root / 'val.txt',
        osp.join(VOC_SAMPLE, 'ImageSets', 'Segmentation', 'val.txt'),
        VOC_IMAGES)
    options = [
        '--cfg-options', f'test_dataloader.dataset.data_root={VOC_SAMPLE}',
        f'test_dataloader.dataset.ann_file={split}'
    ]
    record = run_tool(config, checkpoint, root / 'work', '--out',
                      str(root / 'pred'), '--show-dir', str(root / 'show'),
                      *options)
    return dict(
        record=record,
        root=root,
        ids=ids,
        config=config,
        checkpoint=checkpoint,
        options=options)


def test_voc_metrics_equal_numpy(voc_run):
    record, root, ids = voc_run['record'], voc_run['root'], voc_run['ids']
    assert record['images'] == VOC_IMAGES
    assert record['processes'] == 1
    assert record['seconds'] > 0
    pairs = read_pairs(
        str(root / 'pred'), osp.join(VOC_SAMPLE, 'JPEGImages'),
        osp.join(VOC_SAMPLE, 'SegmentationClass'), ids, '.png')
    assert any((label == 255).any() for _, label in pairs)
    expected = numpy_metrics(pairs, 21)
    # A test of the metric needs several predicted classes.
    assert len(expected['predicted']) >= 2, expected['predicted']
    assert_matches_numpy(record, expected, 21)
    assert record['per_class']['classes'][0] == 'background'


def test_results_json_records_the_protocol(voc_run):
    protocol = voc_run['record']['protocol']
    assert protocol['dataset'] == 'PascalVOCDataset'
    assert protocol['data_root'] == VOC_SAMPLE
    assert protocol['num_classes'] == 21 and protocol['background']
    assert protocol['bg_thresh'] == 0.95
    assert protocol['resize'] == dict(scale=[2048, 448], keep_ratio=True)
    assert protocol['window'] == dict(
        mode='slide', crop_size=[448, 448], stride=[224, 224])
    assert protocol['templates'] == 'simple'
    assert protocol['vocabulary'] == dict(dataset_name='voc')


def test_show_dir_writes_overlays(voc_run):
    """Every image gets mmseg's SegLocalVisualizer drawing: ground truth
    and prediction side by side, each blended over the photo with the
    dataset palette at the configs' opacity (``0.5 * photo + 0.5 *
    colour``, label boxes aside)."""
    root, ids = voc_run['root'], voc_run['ids']
    files = glob.glob(str(root / 'show' / '**' / '*.png'), recursive=True)
    assert len(files) == len(ids)
    # Index 255 (void) is not painted: black mask.
    palette = np.zeros((256, 3))
    palette[:21] = PascalVOCDataset.METAINFO['palette']
    for name in ids:
        (path, ) = [
            f for f in files if osp.basename(f).startswith(f'test_{name}.')
        ]
        image = np.asarray(
            Image.open(osp.join(VOC_SAMPLE, 'JPEGImages', name + '.jpg')))
        label = np.asarray(
            Image.open(
                osp.join(VOC_SAMPLE, 'SegmentationClass', name + '.png')))
        pred = np.asarray(Image.open(root / 'pred' / f'{name}.png'))
        overlay = np.asarray(Image.open(path).convert('RGB')).astype(int)
        assert overlay.shape == (image.shape[0], 2 * image.shape[1], 3)
        for half, labels in zip(np.split(overlay, 2, axis=1), (label, pred)):
            expected = image * 0.5 + palette[labels] * 0.5
            close = (np.abs(half - expected) <= 1).all(axis=2)
            assert close.mean() > 0.9, (name, close.mean())


def test_console_says_what_a_person_needs(voc_run):
    """The default console: what is run, progress in images, the per-class
    table (equal to results.json, itself checked against numpy above), the
    metrics and the paths written; none of mmengine's set-up log (it was
    about 300 lines for 25 images), which stays in the log file."""
    root, record = voc_run['root'], voc_run['record']
    text = (root / 'work' / 'console.txt').read_text()
    lines = text.splitlines()
    assert len(lines) < 60, text
    for noise in ('pkg_resources', 'Config:', 'before_run:', 'GPU number',
                  'dist_cfg', 'The prefix is not set', 'The draw is False',
                  'Loads checkpoint by', 'Iter(test)'):
        assert noise not in text, noise
    assert f'config      {voc_run["config"]}' in lines
    assert f'checkpoint  {voc_run["checkpoint"]}' in lines
    assert any(
        line.startswith('data        PascalVOCDataset in ' + VOC_SAMPLE)
        for line in lines)
    assert f'images      {VOC_IMAGES}' in lines
    assert f'test: {VOC_IMAGES}/{VOC_IMAGES} images' in text
    # The config values the tool changes, one line each (the shipped
    # configs name the rest of what runs).
    progress = root / 'work' / 'progress'
    swaps = [
        line.split(None, 1)[1] for line in lines
        if line.startswith('swapped     ')
    ]
    assert swaps == swaps_of_a_test_run(progress), swaps
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    per_class = record['per_class']
    for i, name in enumerate(per_class['classes']):
        expected = [
            '-' if v is None else f'{v:.2f}'
            for v in (per_class['IoU'][i], per_class['Acc'][i])
        ]
        assert rows[name] == expected, name
    metrics = record['metrics']
    assert (f'metrics     aAcc {metrics["aAcc"]:.2f}  mIoU '
            f'{metrics["mIoU"]:.2f}  mAcc {metrics["mAcc"]:.2f}') in lines
    written = {
        line.split()[0]: line.split()[1]
        for line in lines[lines.index('written') + 1:]
    }
    assert written['results'] == str(root / 'work' / 'results.json')
    assert written['predictions'] == str(root / 'pred')
    assert written['pictures'] == str(root / 'show')
    # The full log is in the file named.
    with open(written['log']) as f:
        log = f.read()
    assert 'Config:' in log
    assert f'Iter(test) [{VOC_IMAGES}/{VOC_IMAGES}]' in log
    for swap in swaps:
        assert f'swapped {swap}' in log, swap


def assert_same_evaluation(record, pred_dir, voc_run):
    """Metrics, per-class results and every label map equal the one-process
    run's."""
    single = voc_run['record']
    assert record['images'] == single['images'] == VOC_IMAGES
    assert record['metrics'] == single['metrics']
    assert record['per_class'] == single['per_class']
    for name in voc_run['ids']:
        np.testing.assert_array_equal(
            np.asarray(Image.open(pred_dir / f'{name}.png')),
            np.asarray(Image.open(voc_run['root'] / 'pred' / f'{name}.png')))


def test_two_processes_give_the_same_metrics(voc_run, tmp_path):
    record = run_tool(
        voc_run['config'],
        voc_run['checkpoint'],
        tmp_path / 'work',
        '--out',
        str(tmp_path / 'pred'),
        *voc_run['options'],
        nproc=2)
    assert record['processes'] == 2
    assert_same_evaluation(record, tmp_path / 'pred', voc_run)
    # The console counts images of the whole run, not iterations of one
    # process, and only the main process prints.
    text = (tmp_path / 'work' / 'console.txt').read_text()
    assert text.count(f'test: {VOC_IMAGES}/{VOC_IMAGES} images') == 1
    assert 'Iter(test)' not in text and text.count('config      ') == 1


def test_a_transformers_folder_evaluates_as_its_converted_file(
        voc_run, small_model, tmp_path):
    folder = osp.join(osp.dirname(small_model[0]), 'hf')
    record = run_tool(voc_run['config'], folder, tmp_path / 'work', '--out',
                      str(tmp_path / 'pred'), *voc_run['options'])
    assert_same_evaluation(record, tmp_path / 'pred', voc_run)


def test_compact_scores_and_verbose(voc_run, tmp_path):
    """One run, two checks. The compact path (what a vocabulary of
    thousands of classes takes), forced here with a zero score budget: the
    same metrics and label maps through tools/test.py. --verbose:
    mmengine's log on the console, with the config as run (``resume=False``
    under --resume: mmengine resumes no training state; the
    evaluation's records are resumed)."""
    record = run_tool(voc_run['config'],
                      voc_run['checkpoint'], tmp_path / 'work', '--out',
                      str(tmp_path / 'pred'), '--verbose', '--resume',
                      *voc_run['options'],
                      'model.test_cfg.max_dense_scores_bytes=0')
    assert_same_evaluation(record, tmp_path / 'pred', voc_run)
    text = (tmp_path / 'work' / 'console.txt').read_text()
    assert 'Config:' in text and 'resume=False' in text
    assert f'Iter(test) [{VOC_IMAGES}/{VOC_IMAGES}]' in text
    assert 'pkg_resources' not in text
    # The values the tool changed are in mmengine's log.
    assert ('swapped test_dataloader.dataset.pipeline.0: LoadImageFromFile '
            '-> RobustLoadImageFromFile') in text
    # The short report is not printed.
    assert 'config      ' not in text and 'metrics     ' not in text


def test_context_end_to_end(small_model, tmp_path):
    """2 Context sample pairs (one proves the point; two give more classes
    to count), 60 classes with background 0."""
    checkpoint, arch = small_model
    config = leaf_config(tmp_path / 'context.py', 'groupvit_context.py', arch)
    split, ids = subset_split(
        tmp_path / 'val.txt',
        osp.join(CONTEXT_SAMPLE, 'ImageSets', 'SegmentationContext',
                 'val.txt'), 2)
    record = run_tool(config, checkpoint, tmp_path / 'work', '--out',
                      str(tmp_path / 'pred'), '--cfg-options',
                      f'test_dataloader.dataset.data_root={CONTEXT_SAMPLE}',
                      f'test_dataloader.dataset.ann_file={split}')
    assert record['images'] == len(ids) == 2
    assert record['protocol']['bg_thresh'] == 0.35
    pairs = read_pairs(
        str(tmp_path / 'pred'), osp.join(CONTEXT_SAMPLE, 'JPEGImages'),
        osp.join(CONTEXT_SAMPLE, 'SegmentationClassContext'), ids, '.png')
    assert_matches_numpy(record, numpy_metrics(pairs, 60), 60)


def write_vocabulary(path, names, synonyms):
    lines = ['# one class per line, synonyms after commas']
    lines += [', '.join([name] + synonyms.get(name, [])) for name in names]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def test_coco_end_to_end_with_a_vocabulary_file(small_model, tmp_path):
    """The 3 COCO-Object pairs (81 classes), prompts from a vocabulary file
    with synonyms and another template set, given on the command line."""
    checkpoint, arch = small_model
    config = leaf_config(tmp_path / 'coco.py', 'groupvit_coco.py', arch)
    names = get_prompt_classes('coco_object')[1:]
    vocabulary = write_vocabulary(tmp_path / 'coco_vocab.txt', names, {
        'person': ['man', 'woman'],
        'tv': ['television']
    })
    record = run_tool(config, checkpoint, tmp_path / 'work', '--out',
                      str(tmp_path / 'pred'), '--cfg-options',
                      f'test_dataloader.dataset.data_root={COCO_SAMPLE}',
                      f'model.text_encoder.vocabulary={vocabulary}',
                      'model.text_encoder.templates=subset')
    assert record['protocol']['vocabulary'] == dict(vocabulary=vocabulary)
    assert record['protocol']['templates'] == 'subset'
    ids = sorted(
        osp.splitext(f)[0]
        for f in os.listdir(osp.join(COCO_SAMPLE, 'images', 'val2017')))
    assert record['images'] == len(ids) == 3
    pairs = read_pairs(
        str(tmp_path / 'pred'), osp.join(COCO_SAMPLE, 'images', 'val2017'),
        osp.join(COCO_SAMPLE, 'annotations', 'val2017'), ids,
        '_instanceTrainIds.png')
    # COCO-Object has no ignore region: 255 never occurs.
    assert not any((label == 255).any() for _, label in pairs)
    assert_matches_numpy(record, numpy_metrics(pairs, 81), 81)


def test_text_options_reach_the_model(small_model, tmp_path):
    """--cfg-options sets the vocabulary file, templates and threshold of
    the model that tools/test.py builds."""
    checkpoint, arch = small_model
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', arch)
    names = get_prompt_classes('voc')[1:]
    vocabulary = write_vocabulary(tmp_path / 'voc_vocab.txt', names,
                                  {'aeroplane': ['airplane', 'plane']})
    args = tool.parse_args([
        config, checkpoint, '--cfg-options',
        f'model.text_encoder.vocabulary={vocabulary}',
        'model.text_encoder.templates=subset', 'model.test_cfg.bg_thresh=0.5',
        f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
    ])
    cfg = tool.build_config(args)
    model = MODELS.build(cfg.model)
    assert model.text_encoder.classes[0] == ['aeroplane', 'airplane', 'plane']
    assert [c[0] for c in model.text_encoder.classes] == names
    assert len(model.text_encoder.templates) == 7
    assert model.test_cfg['bg_thresh'] == 0.5
    protocol = describe_protocol(cfg)
    assert protocol['bg_thresh'] == 0.5
    assert protocol['vocabulary'] == dict(vocabulary=vocabulary)


@pytest.mark.parametrize('case', [
    'config', 'checkpoint', 'data_root', 'vocabulary_file', 'template',
    'vocabulary_size', 'tiny_image', 'batch_of_sizes'
])
def test_bad_input_gives_one_clear_error(case, small_model, tmp_path):
    checkpoint, arch = small_model
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', arch)
    options = [f'test_dataloader.dataset.data_root={VOC_SAMPLE}']
    expected = dict(
        config='config not found',
        checkpoint='checkpoint not found',
        data_root='data_root',
        vocabulary_file='missing.txt',
        template='has 0 replacement field',
        vocabulary_size='The text encoder has 3 classes',
        tiny_image='strip.jpg (10x640, 8x512 after the test pipeline): '
        'Image (8, 448) is smaller than one 16x16 patch',
        batch_of_sizes='a batch of images of different sizes, which mmseg\'s '
        'data preprocessor cannot stack. Set --cfg-options '
        'test_dataloader.batch_size=1')[case]
    if case == 'config':
        config = str(tmp_path / 'missing.py')
    elif case == 'checkpoint':
        checkpoint = str(tmp_path / 'missing.pth')
    elif case == 'data_root':
        options = [f'test_dataloader.dataset.data_root={tmp_path}/nowhere']
    elif case == 'vocabulary_file':
        options.append(f'model.text_encoder.vocabulary={tmp_path}/missing.txt')
    elif case == 'template':
        options.append('model.text_encoder.templates=[aphoto]')
    elif case == 'tiny_image':
        # A 640x10 strip (64:1, the most elongated accepted): 512x8 after a
        # resize to a long side of 512.
        root = tmp_path / 'voc'
        for folder in ('JPEGImages', 'SegmentationClass',
                       'ImageSets/Segmentation'):
            (root / folder).mkdir(parents=True)
        Image.fromarray(np.zeros(
            (10, 640, 3), np.uint8)).save(root / 'JPEGImages' / 'strip.jpg')
        Image.fromarray(np.zeros(
            (10, 640),
            np.uint8)).save(root / 'SegmentationClass' / 'strip.png')
        (root / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('strip\n')
        options = [
            f'test_dataloader.dataset.data_root={root}',
            'test_dataloader.dataset.pipeline.1.scale=(512,448)'
        ]
    elif case == 'batch_of_sizes':  # mmseg asserted (500x375, 500x333)
        options.append('test_dataloader.batch_size=25')
    else:
        vocabulary = write_vocabulary(tmp_path / 'v.txt',
                                      ['cat', 'dog', 'bird'], {})
        options.append(f'model.text_encoder.vocabulary={vocabulary}')
    with pytest.raises(SystemExit) as error:
        tool.main([
            config, checkpoint, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', *options
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and expected in message, message


@pytest.mark.parametrize('options, expected', [
    (['model.test_cfg.stride=(0,0)'
      ], 'model.test_cfg.stride must be two positive integers'),
    (['model.test_cfg.bg_thresh=abc'
      ], "model.test_cfg.bg_thresh must be a number in [0, 1], got 'abc'"),
    (['--tta'], '--tta needs tta_pipeline in the config'),
])
def test_bad_options_give_one_error_line(options, expected, small_model,
                                         tmp_path):
    """One ``error:`` line and no work done (no results.json); what a user
    sees of such an exit is tested once below."""
    checkpoint, arch = small_model
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', arch)
    flags = [o for o in options if '=' not in o]
    cfg_options = [o for o in options if '=' in o]
    with pytest.raises(SystemExit) as error:
        tool.main([
            config, checkpoint, '--work-dir',
            str(tmp_path / 'work'), *flags, '--cfg-options',
            f'test_dataloader.dataset.data_root={VOC_SAMPLE}', *cfg_options
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    assert expected in message, message
    assert not (tmp_path / 'work' / 'results.json').exists()


def test_an_error_from_the_command_line_is_one_line(small_model, tmp_path):
    """As a user runs it: exit status 1, one ``error:`` line on stderr, no
    traceback, and no work done (no results.json)."""
    checkpoint, arch = small_model
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', arch)
    proc = subprocess.run([
        sys.executable, TEST_PY, config, checkpoint, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={VOC_SAMPLE}',
        'model.test_cfg.bg_thresh=abc'
    ],
                          cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS='1'),
                          capture_output=True,
                          text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert lines[-1].startswith('error: ') and (
        "model.test_cfg.bg_thresh must be a number in [0, 1], got 'abc'"
        in lines[-1]), lines
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'work' / 'results.json').exists()


@pytest.mark.parametrize('option, expected', [
    ('model.test_cfg.crop_size=(224,224) model.test_cfg.stride=(300,300)',
     'model.test_cfg.stride (300, 300) is larger than model.test_cfg.'
     'crop_size (224, 224)'),
    ('model.test_cfg.crop_size=(8,8) model.test_cfg.stride=(8,8)',
     'model.test_cfg.crop_size (8, 8) is smaller than one 16x16 patch'),
    ('model.decode_head.num_classes=abc',
     'model.decode_head.num_classes must be a positive integer'),
    ('model.test_cfg.bg_thresh=nan', 'model.test_cfg.bg_thresh must be a'),
    ('model.text_encoder.extra_classes=grass',
     "model.text_encoder.extra_classes 'grass' is neither a vocabulary"),
    ('model.text_encoder.extra_classes=[background]',
     '"background" is a name of the prompted class'),
    ('test_dataloader.dataset.data_root=[a,b]',
     'data_root must be one folder (a string)'),
    (f'test_dataloader.dataset.data_root={VOC_SAMPLE}/ImageSets/'
     f'Segmentation/val.txt', 'val.txt\' is a file, not a folder'),
    ('test_dataloader.dataset.pipeline.1.scale=(0,0)',
     'test_dataloader.dataset.pipeline.1.scale must be two positive'),
    ('test_dataloader.num_workers=0',
     'test_dataloader.persistent_workers=True keeps worker processes, but '
     'test_dataloader.num_workers is 0'),
    ('model.text_encoder.vocabulary=[bicycle,aeroplane,' +
     ','.join(get_prompt_classes('voc20')[2:]) + ']',
     "vocabulary class 1 ('bicycle') is named as the dataset's class 2 "
     "('bicycle'), but it is scored as label 1 ('aeroplane')"),
])
def test_bad_cfg_options_give_one_error(option, expected, small_model,
                                        tmp_path):
    """Each setting is refused by the component that owns it (segmentor,
    head, text encoder, dataloader checks) before the first image; the
    other values each component refuses are tested with the component."""
    checkpoint, arch = small_model
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', arch)
    options = [f'test_dataloader.dataset.data_root={VOC_SAMPLE}']
    with pytest.raises(SystemExit) as error:
        tool.main([
            config, checkpoint, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', *options, *option.split()
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and expected in message, message
    assert 'class `' not in message
    assert not (tmp_path / 'work' / 'results.json').exists()


@pytest.mark.parametrize('option', ['--out', '--work-dir'])
def test_output_folder_under_a_file_is_refused_before_any_image(
        option, small_model, tmp_path):
    checkpoint, arch = small_model
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', arch)
    afile = tmp_path / 'file.txt'
    afile.write_text('')
    argv = [config, checkpoint, '--work-dir', str(tmp_path / 'work')]
    argv += [option, str(afile / 'sub')]
    with pytest.raises(SystemExit) as error:
        tool.main(argv + [
            '--cfg-options', f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
        ])
    message = str(error.value.code)
    assert message == (f'error: {option} {afile / "sub"} lies under the file '
                       f'{afile}, not a folder. Give a folder path (it is '
                       f'created if missing).')
