# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Pretraining through tools/train.py: the smoke config trains, its
checkpoint is evaluated by tools/test.py with a zero-shot config as it is,
and --resume continues the same curve."""
import glob
import importlib.util
import io
import json
import os.path as osp
import re
import tarfile

import pytest

from tests.conftest import PHOTOS, REPO, load_script

LOSS = re.compile(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\sloss: ([\d.]+)')
SMOKE = osp.join(REPO, 'configs', 'pretrain', 'groupvit_samples_smoke.py')
FCN_SMOKE = osp.join(REPO, 'configs', 'finetune',
                     'fcn_groupvit_voc-sample_smoke.py')


def train(argv):
    return load_script(
        osp.join(REPO, 'tools', 'train.py'), 'pretrain_train_tool').main(argv)


def write_shards(folder, shards=2, samples=5):
    """``good-{0..}.tar`` of ``samples`` captioned photos each."""
    photo = open(osp.join(PHOTOS, 'groupvit_demo_voc.jpg'), 'rb').read()
    for shard in range(shards):
        with tarfile.open(folder / f'good-{shard}.tar', 'w') as tar:
            for key in range(samples):
                for ext, data in (('jpg', photo), ('txt', b'a dog')):
                    info = tarfile.TarInfo(f'{shard}{key}.{ext}')
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def shard_config(folder, entry, **dataloader):
    """The smoke config on shards in ``folder`` (``entry`` of
    ``datasets``), 2 epochs without validation."""
    config = folder / 'shards.py'
    config.write_text(f'''_base_ = [{SMOKE!r}]
train_dataloader = dict(sampler=None, **{dataloader!r}, dataset=dict(
    _delete_=True, type='CaptionShards', shuffle_buffer=10,
    datasets=[dict(path={str(folder)!r}, **{entry!r})],
    pipeline=_base_.train_pipeline[1:]))
train_cfg = dict(max_epochs=2, val_interval=10)
val_cfg = None
val_dataloader = None
val_evaluator = None
''')
    return str(config)


def losses(work_dir):
    """``{iteration: logged loss}`` of every run in ``work_dir``, read from
    the log files (mmengine's scalar files are only written by the first
    runner of a process)."""
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))):
        with open(path) as f:
            for match in LOSS.finditer(f.read()):
                out[int(match[1])] = match[2]
    return out


@pytest.mark.slow
def test_smoke_checkpoint_is_tested_by_the_zero_shot_config(tmp_path):
    work_dir = str(tmp_path / 'train')
    train([
        SMOKE, '--work-dir', work_dir, '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'val_dataloader.dataset.indices=2'
    ])
    assert sorted(losses(work_dir)) == [1, 2, 3, 4]
    test = load_script(osp.join(REPO, 'tools', 'test.py'), 'pretrain_test')
    test.main([
        osp.join(REPO, 'configs', 'groupvit_voc.py'),
        osp.join(work_dir, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        'test_dataloader.dataset.data_root=' +
        osp.join(REPO, 'samples', 'voc2012_sample', 'VOCdevkit', 'VOC2012'),
        'test_dataloader.dataset.indices=2'
    ])
    with open(tmp_path / 'test' / 'results.json') as f:
        results = json.load(f)
    assert 'mIoU' in results['metrics']


@pytest.mark.slow
def test_resume_continues_the_same_curve(tmp_path):
    # Without randomness in the data or the model, a resumed run must log
    # the losses of an uninterrupted one.
    config = tmp_path / 'deterministic.py'
    config.write_text(f'''_base_ = [{SMOKE!r}]
model = dict(image_encoder=dict(gumbel=False, drop_path_rate=0.0),
             multi_label=0)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='CaptionTokenize', multi_label=0),
    dict(type='PackCaptionInputs')],
    indices=16))
train_cfg = dict(max_epochs=2, val_interval=10)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(checkpoint=dict(interval=1))
''')
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    train([str(config), '--work-dir', straight])
    train([
        str(config), '--work-dir', resumed, '--cfg-options',
        'train_cfg.max_epochs=1'
    ])
    train([str(config), '--work-dir', resumed, '--resume'])
    expected, got = losses(straight), losses(resumed)
    assert sorted(got) == sorted(expected) == [1, 2, 3, 4]
    # The same losses to the 4 decimals logged.
    assert [got[3], got[4]] == [expected[3], expected[4]]


def test_bad_training_data_stops_with_one_error_line(tmp_path):
    with pytest.raises(SystemExit) as error:
        train([
            SMOKE, '--work-dir',
            str(tmp_path), '--cfg-options',
            f'train_dataloader.dataset.ann_file={tmp_path}/missing.jsonl'
        ])
    message = str(error.value)
    assert message.startswith('error: annotation file ') and \
        'missing.jsonl not found' in message and '\n' not in message


def test_an_image_that_does_not_decode_names_its_annotation_line(tmp_path):
    (tmp_path / 'bad.jpg').write_bytes(b'not a jpeg')
    with open(tmp_path / 'ann.jsonl', 'w') as f:
        f.write(
            json.dumps(dict(image=str(tmp_path /
                                      'bad.jpg'), caption='a cat')) + '\n')
    with pytest.raises(SystemExit) as error:
        train([
            SMOKE, '--work-dir',
            str(tmp_path), '--cfg-options',
            f'train_dataloader.dataset.ann_file={tmp_path}/ann.jsonl',
            'train_dataloader.batch_size=1'
        ])
    assert str(error.value) == (
        f'error: Cannot load image {tmp_path}/bad.jpg: the file is truncated '
        f'or corrupt (not a known image format). Copy or download it again, '
        f'or remove it from annotation file {tmp_path}/ann.jsonl line 1.')


def test_a_batch_larger_than_the_data_stops_with_one_error_line(tmp_path):
    """Refused before the schedulers, which divide the epochs into its
    batches (convert_to_iter_based): there were none to divide into."""
    photo = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')
    ann = tmp_path / 'three.jsonl'
    ann.write_text(''.join(
        json.dumps(dict(image=photo, caption=f'dog {i}')) + '\n'
        for i in range(3)))
    with pytest.raises(SystemExit) as error:
        train([
            SMOKE, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'train_dataloader.dataset.ann_file={ann}',
            'train_dataloader.batch_size=4'
        ])
    assert str(error.value) == (
        f'error: the training batch (4 per process x 1 process(es)) is '
        f'larger than the data (3 samples per process from {ann}): lower '
        f'train_dataloader.batch_size or add data.')


@pytest.mark.slow
def test_shards_train_every_batch_of_an_epoch_with_many_workers(tmp_path):
    """8 samples in batches of 4 from 3 DataLoader workers: 2 steps an
    epoch (split evenly, no worker had a whole batch: 0 steps)."""
    write_shards(tmp_path)
    config = shard_config(
        tmp_path,
        dict(prefix='good-{0..1}.tar', length=8),
        batch_size=4,
        num_workers=3,
        drop_last=True)
    train([config, '--work-dir', str(tmp_path / 'work')])
    assert sorted(losses(str(tmp_path / 'work'))) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    'entry, message',
    [(dict(prefix='good-{0..1}.tar', length='abc'),
      'train_dataloader.dataset.datasets[0].length must be a positive whole '
      "number of samples, got 'abc': "),
     (dict(length=8), 'train_dataloader.dataset.datasets[0].prefix must '
      'name the shards, got None: '),
     (dict(prefix='good-{0..9}.tar', length=8),
      '8 of the 10 shards of {folder}/good-{{0..9}}.tar are missing '
      '({folder}/good-2.tar, ')],
    ids=['length', 'prefix', 'missing'])
def test_a_bad_shard_entry_stops_with_one_error_line(tmp_path, entry, message):
    write_shards(tmp_path)
    with pytest.raises(SystemExit) as error:
        train([
            shard_config(tmp_path, entry), '--work-dir',
            str(tmp_path / 'work')
        ])
    expected = 'error: ' + message.format(folder=tmp_path)
    assert str(error.value).startswith(expected), error.value
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('runner, strategy',
                         [('FlexibleRunner', 'FSDPStrategy'),
                          ('mmengine.FlexibleRunner', 'DeepSpeedStrategy')])
def test_flexible_runner_strategies_are_refused_for_the_pretrainer(
        tmp_path, runner, strategy):
    """Their wrappers call the loss and the optimizer themselves, skipping
    the pretrainer's checked step (docs/pretrain.md: both were tried)."""
    with pytest.raises(SystemExit) as error:
        train([
            SMOKE, '--work-dir',
            str(tmp_path), '--cfg-options', f'runner_type={runner}',
            f'strategy.type={strategy}'
        ])
    message = str(error.value)
    assert message.startswith('error: GroupViTPretrainer trains through its '
                              'own checked step') and '\n' not in message
    assert not list(tmp_path.iterdir())  # refused before the runner


@pytest.mark.parametrize('model, refused', [('EncoderDecoder', False),
                                            ('GroupViTPretrainer', True)])
def test_flexible_runner_is_left_to_models_without_their_own_step(
        model, refused):
    from mmengine.config import Config
    tool = load_script(osp.join(REPO, 'tools', 'train.py'), 'runner_check')
    cfg = Config(dict(runner_type='FlexibleRunner', model=dict(type=model)))
    if refused:
        with pytest.raises(SystemExit):
            tool.check_runner(cfg)
    else:
        tool.check_runner(cfg)


@pytest.mark.parametrize('config, option, loop', [
    (SMOKE, 'train_cfg.max_iters=5', 'EpochBasedTrainLoop'),
    (FCN_SMOKE, 'train_cfg.max_epochs=5', 'IterBasedTrainLoop'),
])
def test_a_length_the_loop_does_not_count_is_one_line(tmp_path, config, option,
                                                      loop):
    """max_iters for an epoch-based config (max_epochs for an iteration-based
    one) is refused when the config is read, naming the loop's settings (it
    was mmengine's TypeError traceback when the loop was built)."""
    with pytest.raises(SystemExit) as error:
        train([config, '--work-dir', str(tmp_path), '--cfg-options', option])
    message = str(error.value)
    key = option.split('=')[0]
    assert message.startswith(f'error: {key} is not a setting of {loop}: ')
    assert '\n' not in message and not list(tmp_path.iterdir())
    length = 'max_epochs' if 'Epoch' in loop else 'max_iters'
    assert f' {length}, ' in message


@pytest.mark.parametrize('option, must', [
    ('model.contrast_temperature=0', 'a positive finite number'),
    ('model.contrast_temperature=-1', 'a positive finite number'),
    ('model.contrast_temperature=nan', 'a positive finite number'),
    ('model.multi_label_loss_weight=nan', 'a finite number, got nan'),
    ('model.image_encoder.gumbel_tau=0', 'a positive finite number'),
    ('model.image_encoder.gumbel_tau=nan', 'a positive finite number'),
    ('model.image_encoder.drop_path_rate=1.5', 'a number in [0, 1)'),
])
def test_a_pretraining_value_that_cannot_train_is_one_line(
        tmp_path, option, must):
    """Temperatures of 0 (ZeroDivisionError), below 0 (math domain error) or
    NaN, NaN loss weights, a Gumbel tau of 0 or NaN and a drop path rate
    above 1 stopped at step 1 as "not finite ... lower the learning rate",
    the wrong cause: refused when the config is read, with the default."""
    with pytest.raises(SystemExit) as error:
        train([SMOKE, '--work-dir', str(tmp_path), '--cfg-options', option])
    message = str(error.value)
    key, value = option.split('=')
    assert message.startswith(f'error: {key} must be {must}'), message
    assert message.endswith(f', got {value}. The default is ' +
                            ('0.07.' if 'temperature' in key else
                             '0.0.' if 'drop' in key else '1.0.')), message
    assert '\n' not in message and not list(tmp_path.iterdir())


@pytest.mark.parametrize('option, words', [
    ('model.backbone.frozen_stages=5',
     'model.backbone.frozen_stages must be an integer from -1 (nothing '
     'frozen) to 3 (all stages), got 5.'),
    ('model.backbone.frozen_stages=-2',
     'model.backbone.frozen_stages must be an integer'),
    ('model.backbone.frozen_stages=1.5',
     'model.backbone.frozen_stages must be an integer'),
    ('model.backbone.out_indices=(-1,)',
     'model.decode_head.in_index is [0, 1, 2] but '
     'model.backbone.out_indices gives 1 map'),
    ('optim_wrapper.optimizer.lr=nan',
     'optim_wrapper.optimizer.lr must be a finite number, 0 or more'),
    ('model.backbone.drop_path_rate=1.5',
     'model.backbone.drop_path_rate must be a number in [0, 1)'),
    ('model.backbone.drop_path_rate=nan',
     'model.backbone.drop_path_rate must be a number in [0, 1)'),
])
def test_a_finetuning_value_that_cannot_train_is_one_line(
        tmp_path, option, words):
    """frozen_stages out of range (a ValueError traceback) or not an integer
    (a TypeError), a head reading a map out_indices does not give (an
    IndexError at step 1), a NaN learning rate (torch's ValueError) and a
    drop path rate that trains silently (above 1, or NaN acting as 0):
    refused when the config is read."""
    with pytest.raises(SystemExit) as error:
        train([
            FCN_SMOKE, '--work-dir',
            str(tmp_path), '--cfg-options', 'model.backbone.init_cfg=None',
            option
        ])
    message = str(error.value)
    assert message.startswith(f'error: {words}'), message
    assert '\n' not in message and not list(tmp_path.iterdir())


@pytest.mark.parametrize('by_epoch, loop, key', [
    ('by_epoch=True, ', 'EpochBasedTrainLoop', 'max_iters'),
    ('by_epoch=False, ', 'IterBasedTrainLoop', 'max_epochs'),
    ('', 'IterBasedTrainLoop', 'max_epochs'),
    ("type='EpochBasedTrainLoop', max_epochs=1, ", 'EpochBasedTrainLoop',
     'by_epoch'),
    ('by_epoch=True, max_epochs=1, ', 'EpochBasedTrainLoop', '_scope_'),
])
def test_a_loop_chosen_by_by_epoch_is_checked_as_well(tmp_path, by_epoch, loop,
                                                      key):
    """A ``train_cfg`` without ``type`` (mmengine picks the loop by
    ``by_epoch``, iterations without it) is checked against the loop it
    gets, ``_scope_`` included (mmengine gives it to the loop), and one with
    both is refused (they were mmengine's TypeError and RuntimeError
    tracebacks)."""
    config = tmp_path / 'by_epoch.py'
    config.write_text(f'_base_ = [{SMOKE!r}]\n'
                      f'train_cfg = dict(_delete_=True, {by_epoch}{key}=5)\n')
    with pytest.raises(SystemExit) as error:
        train([str(config), '--work-dir', str(tmp_path / 'work')])
    message = str(error.value)
    assert message.startswith(
        f'error: train_cfg.{key} is not a setting of {loop}: ')
    assert '\n' not in message and not (tmp_path / 'work').exists()


def scoped_config(tmp_path, more: str = ''):
    """The smoke config training with ``mmpretrain.Resize``, then ``more``
    config text."""
    config = tmp_path / 'scoped.py'
    config.write_text(
        f'_base_ = [{SMOKE!r}]\n'
        'train_dataloader = dict(dataset=dict(pipeline=[\n'
        "    dict(type='RobustLoadImageFromFile'),\n"
        "    dict(type='mmpretrain.Resize', scale=224),\n"
        "    dict(type='CaptionTokenize', multi_label=3, tagger='rules'),\n"
        "    dict(type='PackCaptionInputs')]))\n" + more)
    return config


@pytest.mark.skipif(
    importlib.util.find_spec('torchvision') is not None,
    reason='needs a machine without torchvision (mmpretrain then imports)')
def test_a_step_of_mmpretrain_without_torchvision_is_one_line(tmp_path):
    """``mmpretrain.Resize`` makes mmengine import mmpretrain's transforms,
    which need torchvision: refused when the config is read, naming the step
    and the unscoped name (it was an ImportError traceback after the
    runner started)."""
    config = scoped_config(tmp_path)
    work_dir = tmp_path / 'work'
    with pytest.raises(SystemExit) as error:
        train([str(config), '--work-dir', str(work_dir)])
    message = str(error.value)
    assert message == (
        "error: train_dataloader.dataset.pipeline.1.type 'mmpretrain.Resize' "
        "cannot be built here: importing mmpretrain's transforms fails (No "
        "module named 'torchvision'). In the config, write type='Resize' if "
        'the step of that name registered without mmpretrain is the one '
        'meant, or install torchvision.')
    assert not work_dir.exists()


@pytest.mark.skipif(
    importlib.util.find_spec('torchvision') is not None,
    reason='needs a machine without torchvision (mmpretrain then imports)')
def test_a_step_of_mmpretrain_is_refused_only_by_a_run_that_builds_it(
        tmp_path):
    """tools/test.py builds no training steps: the pretraining config with
    ``mmpretrain.Resize`` in them is tested (it was refused). --tta builds
    ``tta_pipeline``: ``mmpretrain.EfficientNetRandomCrop`` there is one
    line whose fix is to install torchvision (no step of this package's
    scopes has that name; it read "In the config, install torchvision")."""
    config = scoped_config(
        tmp_path, "tta_model = dict(type='SegTTAModel')\n"
        'tta_pipeline = [\n'
        "    dict(type='LoadImageFromFile'),\n"
        "    dict(type='TestTimeAug', transforms=[\n"
        "      [dict(type='mmpretrain.EfficientNetRandomCrop', scale=224)],\n"
        "      [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]]\n"
        '    )\n'
        ']\n')
    test = load_script(osp.join(REPO, 'tools', 'test.py'), 'scoped_test_tool')
    cfg = test.build_config(
        test.parse_args([
            str(config), '--random-weights', '--work-dir',
            str(tmp_path / 'plain')
        ]))
    assert [s['type'] for s in cfg.test_dataloader.dataset.pipeline] == [
        'LoadImageFromFile', 'CheckedResize', 'LoadAnnotations',
        'PackSegInputs'
    ]
    work_dir = tmp_path / 'tta'
    with pytest.raises(SystemExit) as error:
        test.main([
            str(config), '--tta', '--random-weights', '--work-dir',
            str(work_dir)
        ])
    assert str(error.value) == (
        "error: tta_pipeline.1.transforms.0.0.type 'mmpretrain."
        "EfficientNetRandomCrop' cannot be built here: importing mmpretrain's "
        "transforms fails (No module named 'torchvision'). Install "
        'torchvision.')
    assert not work_dir.exists()


def test_flags_negative_weights_and_adafactor_lr_are_taken():
    """The rules by argument name check numbers: ``share_temperature`` is a
    flag (its default is a bool), a negative loss weight is a choice
    (gradient reversal), and ``lr=None`` is Adafactor's relative step."""
    from mmseg_groupvit.utils.config_file import read_config
    cfg = read_config(
        SMOKE, {
            'model.share_temperature': True,
            'model.multi_label_loss_weight': -0.5,
            'optim_wrapper.optimizer.lr': None
        },
        test=False,
        train=True)
    assert cfg.model.share_temperature is True
