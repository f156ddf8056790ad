# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot classification through ``tools/test.py`` on the shipped VOC
photos dominated by one class (``configs/classification/
groupvit_voc-dominant-sample.py``).

The reported top-1 / top-5 are checked against a recomputation that shares
nothing with the tool but the weights: the list file read by hand, the
images preprocessed with PIL as torchvision would (short side 256 bilinear,
center crop 224, ImageNet mean/std) and the model's logits ranked with
torch.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from PIL import Image

from mmseg_groupvit.utils import get_prompt_classes
from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            run_main, varied_segmentor)

LIST = osp.join(VOC_SAMPLE, 'ImageSets', 'Classification', 'val_dominant.txt')
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A small segmentor checkpoint (varied weights) and a leaf config of
    the sample classification config with its architecture."""
    root = tmp_path_factory.mktemp('cls_tool')
    init_default_scope('mmseg')
    segmentor = varied_segmentor(seed=4, text_encoder=True)
    checkpoint = str(root / 'small.pth')
    torch.save(dict(state_dict=segmentor.state_dict()), checkpoint)
    config = str(root / 'small_cls.py')
    base = osp.join(REPO, 'configs', 'classification',
                    'groupvit_voc-dominant-sample.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r},'
                f' text_encoder={SMALL_ARCH["text_encoder"]!r})\n'
                f'test_dataloader = dict(num_workers=0, dataset=dict('
                f'data_root={VOC_SAMPLE!r}))\n')
    return config, checkpoint, root


def preprocess(path):
    rgb = Image.open(path).convert('RGB')
    w, h = rgb.size
    size = (int(256 * w / h), 256) if h <= w else (256, int(256 * h / w))
    img = np.asarray(rgb.resize(size, Image.BILINEAR), dtype=np.float64)
    top, left = round((size[1] - 224) / 2), round((size[0] - 224) / 2)
    img = (img[top:top + 224, left:left + 224] - MEAN) / STD
    return torch.from_numpy(img.transpose(2, 0, 1)).float()


@pytest.fixture(scope='module')
def cls_run(small):
    """One run of ``tools/test.py`` on the classification config: its
    ``results.json`` and what the user saw."""
    config, checkpoint, root = small
    result, text = run_main('tools/test.py',
                            [config, checkpoint, '--work-dir', root / 'run'])
    assert isinstance(result, dict), text[-3000:]
    with open(root / 'run' / 'results.json') as f:
        record = json.load(f)
    return record, text


def test_top1_top5_equal_a_recomputation(small, cls_run):
    config, checkpoint, root = small
    record, _ = cls_run
    with open(LIST) as f:
        pairs = [line.split() for line in f if line.strip()]
    labels = torch.tensor([int(label) for _, label in pairs])
    images = torch.stack(
        [preprocess(osp.join(VOC_SAMPLE, name)) for name, _ in pairs])
    model = MODELS.build(ConfigDict(Config.fromfile(config).model)).eval()
    load_checkpoint(model, checkpoint, map_location='cpu')
    with torch.no_grad():
        logits = model(images, mode='tensor')
    ranked = logits.argsort(dim=1, descending=True)
    top1 = float((ranked[:, 0] == labels).float().mean() * 100)
    top5 = float(
        (ranked[:, :5] == labels[:, None]).any(1).float().mean() * 100)

    assert len(set(ranked[:, 0].tolist())) > 1  # predictions vary
    assert record['images'] == len(pairs) == 17
    assert record['metrics']['accuracy/top1'] == pytest.approx(top1, abs=1e-3)
    assert record['metrics']['accuracy/top5'] == pytest.approx(top5, abs=1e-3)
    assert record['protocol']['task'] == 'classification'
    assert record['protocol']['resize'] == dict(scale=256, edge='short')
    assert record['protocol']['crop'] == 224
    assert record['protocol']['templates'] == 'subset'


def test_console_says_what_a_person_needs(small, cls_run):
    """The console of tools/test.py for segmentation, for classification:
    what is run, progress in images, the metrics (those of results.json)
    and the files written; mmengine's set-up log only in the log file."""
    config, checkpoint, root = small
    record, text = cls_run
    lines = text.splitlines()
    assert len(lines) < 20, text
    for noise in ('pkg_resources', 'Config:', 'before_run:', 'GPU number',
                  'Loads checkpoint by', 'Iter(test)', 'RANDOM'):
        assert noise not in text, noise
    assert f'config      {config}' in lines
    assert f'checkpoint  {checkpoint}' in lines
    assert f'data        CustomDataset in {VOC_SAMPLE}, split {LIST}' in lines
    assert 'vocabulary  the classes of voc20; templates subset' in lines
    assert ('protocol    resize short side 256; center crop 224; top-1, '
            'top-5') in lines
    assert 'images      17' in lines
    assert 'test: 17/17 images' in text
    metrics = record['metrics']
    assert (f'metrics     top1 {metrics["accuracy/top1"]:.2f}  top5 '
            f'{metrics["accuracy/top5"]:.2f}') in lines
    assert any(
        line.startswith('time        ') and 'for 17 images' in line
        for line in lines)
    written = {
        line.split()[0]: line.split()[1]
        for line in lines[lines.index('written') + 1:]
    }
    assert written['results'] == str(root / 'run' / 'results.json')
    with open(written['log']) as f:
        log = f.read()
    assert 'Config:' in log and 'Iter(test)' in log


def two_image_list(tmp_path):
    with open(LIST) as f:
        path = tmp_path / 'two.txt'
        path.write_text(''.join(f.readlines()[:2]))
    return str(path)


def test_verbose_prints_the_full_log(small, tmp_path, capsys):
    """--verbose: mmengine's log on the console instead of the short
    report, as tools/test.py does."""
    config, checkpoint, _ = small
    tool = load_script('tools/test.py')
    metrics = tool.main([
        config, checkpoint, '--work-dir',
        str(tmp_path), '--verbose', '--cfg-options',
        f'test_dataloader.dataset.ann_file={two_image_list(tmp_path)}'
    ])
    text = ''.join(capsys.readouterr())
    # Two images in one batch of 4.
    assert 'Config:' in text and 'Iter(test) [1/1]' in text
    for short in ('config      ', 'images      ', 'metrics     ', 'written'):
        assert short not in text, short
    with open(tmp_path / 'results.json') as f:
        record = json.load(f)
    assert record['images'] == 2
    assert record['metrics'] == {
        k: round(float(v), 4)
        for k, v in metrics.items()
    }


def test_two_runs_in_one_second_each_log_their_own(small, tmp_path, capsys,
                                                   monkeypatch):
    """mmengine names a run's logger by config and second: a quiet run,
    then a --verbose one in the same second of one process, each logs to
    its own console stream and log file."""
    import time
    import types

    import mmengine.runner.runner as runner_module
    frozen = types.SimpleNamespace(**vars(time))
    frozen.strftime = lambda *args: '20260101_000000'
    monkeypatch.setattr(runner_module, 'time', frozen)
    config, checkpoint, _ = small
    tool = load_script('tools/test.py')
    images = f'test_dataloader.dataset.ann_file={two_image_list(tmp_path)}'
    for work_dir, verbose in (('quiet', []), ('verbose', ['--verbose'])):
        tool.main([
            config, checkpoint, '--work-dir',
            str(tmp_path / work_dir), *verbose, '--cfg-options', images
        ])
    text = ''.join(capsys.readouterr())
    assert text.count('Config:') == 1 and 'Iter(test) [1/1]' in text
    for work_dir in ('quiet', 'verbose'):
        log, = (tmp_path / work_dir).glob('20260101_000000/*.log')
        assert log.read_text().count('Config:') == 1, work_dir


def refusal(small, tmp_path, option: str) -> str:
    """The one ``error:`` line of ``tools/test.py`` on the small config and
    checkpoint with ``--cfg-options option``."""
    config, checkpoint, _ = small
    with pytest.raises(SystemExit) as exit_info:
        load_script('tools/test.py').main([
            config, checkpoint, '--work-dir',
            str(tmp_path), '--cfg-options', option
        ])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_bad_list_is_one_error_line_and_random_weights_are_said(
        small, tmp_path, capsys):
    config, _, _ = small
    (tmp_path / 'list.txt').write_text('JPEGImages/2007_000033.jpg 20\n')
    tool = load_script('tools/test.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            config, '--random-weights', '--work-dir',
            str(tmp_path), '--cfg-options',
            f'test_dataloader.dataset.ann_file={tmp_path / "list.txt"}'
        ])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert 'label 20 is out of range for 20 classes' in message
    assert 'RANDOM' in capsys.readouterr().err


def test_a_list_that_is_not_utf8_is_one_error_line(small, tmp_path):
    """A Latin-1 list (it was a UnicodeDecodeError traceback)."""
    (tmp_path / 'list.txt').write_bytes(b'JPEGImages/caf\xe9.jpg 0\n')
    message = refusal(
        small, tmp_path,
        f'test_dataloader.dataset.ann_file={tmp_path / "list.txt"}')
    assert f'annotation file {tmp_path / "list.txt"} is not UTF-8' in message


def test_missing_checkpoint_is_one_error_line(small):
    tool = load_script('tools/test.py')
    with pytest.raises(SystemExit, match='^error: checkpoint not found'):
        tool.main([small[0], 'nowhere.pth'])


@pytest.mark.parametrize('option, classes',
                         [('model.text_encoder.vocabulary=[cat,dog]', 2),
                          ('model.text_encoder.dataset_name=imagenet', 1000)])
def test_vocabulary_of_another_size_is_refused_before_any_image(
        small, tmp_path, option, classes):
    """Top-1 of a 2-class vocabulary (or ImageNet's 1000) on the 20 VOC
    classes would be a plausible but wrong number: refused, nothing
    evaluated."""
    message = refusal(small, tmp_path, option)
    assert f'vocabulary has {classes} classes and the test dataset 20' \
        in message
    assert not (tmp_path / 'results.json').exists()


def test_a_vocabulary_file_is_named_on_the_console(small, tmp_path, capsys):
    """The console names the vocabulary file (it said "N classes from the
    config", N the length of the file's path)."""
    config, checkpoint, _ = small
    vocabulary = tmp_path / 'voc20.txt'
    vocabulary.write_text('\n'.join(get_prompt_classes('voc20')))
    load_script('tools/test.py').main([
        config, checkpoint, '--work-dir',
        str(tmp_path / 'run'), '--cfg-options',
        f'model.text_encoder.vocabulary={vocabulary}',
        f'test_dataloader.dataset.ann_file={two_image_list(tmp_path)}'
    ])
    lines = capsys.readouterr().out.splitlines()
    assert f'vocabulary  file {vocabulary}; templates subset' in lines, lines


def test_a_vocabulary_in_another_order_is_refused(small, tmp_path):
    """The 20 VOC names in reverse order (every label another class, top-1
    plausible but wrong) are refused before any image."""
    vocabulary = tmp_path / 'reversed.txt'
    vocabulary.write_text('\n'.join(reversed(get_prompt_classes('voc20'))))
    message = refusal(small, tmp_path,
                      f'model.text_encoder.vocabulary={vocabulary}')
    assert ("vocabulary class 2 ('train') is named as the dataset's class 18"
            " ('train'), but it is scored as label 1 ('bicycle')") in message
    assert not (tmp_path / 'results.json').exists()


@pytest.mark.parametrize('evaluator', ['dict', 'list'])
def test_topk_as_one_number_is_run_and_described(small, tmp_path, capsys,
                                                 evaluator):
    """Accuracy takes topk=5 (an int) as (5,), and an evaluator in a list:
    the description of the run did not (a TypeError or AttributeError
    traceback after the checkpoint loaded)."""
    config, checkpoint, _ = small
    leaf = tmp_path / 'topk.py'
    metric = "dict(type='Accuracy', topk=5)"
    leaf.write_text(f'_base_ = [{config!r}]\ntest_evaluator = ' +
                    (f'[{metric}]' if evaluator == 'list' else metric) + '\n')
    load_script('tools/test.py').main([
        str(leaf), checkpoint, '--work-dir',
        str(tmp_path), '--cfg-options',
        f'test_dataloader.dataset.ann_file={two_image_list(tmp_path)}'
    ])
    lines = capsys.readouterr().out.splitlines()
    assert ('protocol    resize short side 256; center crop 224; '
            'top-5') in lines, lines
    with open(tmp_path / 'results.json') as f:
        record = json.load(f)
    assert record['protocol']['topk'] == [5]
    assert list(record['metrics']) == ['accuracy/top5']


@pytest.mark.parametrize('topk, words', [
    ('1.5', 'must be a positive integer or a list of them'),
    ('nan', 'must be a positive integer or a list of them'),
    ('True', 'must be a positive integer or a list of them'),
    ('(1,2.0)', 'must be a positive integer or a list of them'),
    ('50', 'asks for top-50 accuracy, but the vocabulary has 20 classes'),
])
def test_a_topk_that_cannot_be_counted_is_refused_before_any_image(
        small, tmp_path, topk, words):
    """test_evaluator.topk of no integers (a TypeError traceback, after
    every image for True and (1,2.0)) or above the vocabulary's 20 classes
    (refused after every image): refused when the config is read."""
    message = refusal(small, tmp_path, f'test_evaluator.topk={topk}')
    assert message.startswith(f'error: test_evaluator.topk {words}'), message
    assert 'test_evaluator.topk=(1,5)' in message
    assert not (tmp_path / 'results.json').exists()


def test_a_dataset_name_that_is_no_name_is_one_error_line(small, tmp_path):
    """As for a segmentor (the text encoder's message), not a traceback."""
    message = refusal(small, tmp_path, 'model.text_encoder.dataset_name=5')
    assert 'The prompt class set name must be a str, got int: 5.' in message


def test_a_link_in_the_work_dir_is_refused(tmp_path):
    """Classification checks its work dir as segmentation does: a link
    planted where results.json goes is refused before anything runs."""
    outside = tmp_path / 'victim'
    outside.write_text('precious')
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'results.json').symlink_to(outside)
    tool = load_script(osp.join(REPO, 'tools', 'test.py'), 'groupvit_test')
    with pytest.raises(SystemExit) as error:
        tool.main([
            osp.join(REPO, 'configs', 'classification',
                     'groupvit_voc-dominant-sample.py'), '--random-weights',
            '--work-dir',
            str(work)
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert 'is a symbolic link in --work-dir' in message
    assert outside.read_text() == 'precious'


def test_tta_with_a_classification_config_is_one_error_line(small, tmp_path):
    """mmseg's SegTTAModel averages segmentation scores: around the
    classifier it was described as a segmentation run and failed with an
    AttributeError traceback after the checkpoint loaded."""
    config, checkpoint, _ = small
    leaf = tmp_path / 'tta.py'
    leaf.write_text(f'_base_ = [{config!r}]\n'
                    "tta_model = dict(type='SegTTAModel')\n"
                    'tta_pipeline = _base_.test_pipeline\n')
    with pytest.raises(SystemExit) as exit_info:
        load_script('tools/test.py').main([
            str(leaf), checkpoint, '--tta', '--work-dir',
            str(tmp_path / 'work')
        ])
    message = str(exit_info.value.code)
    assert message.startswith('error: --tta averages the segmentation scores')
    assert '\n' not in message and not (tmp_path / 'work').exists()
