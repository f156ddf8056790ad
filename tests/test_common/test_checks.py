# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The one rule of class counts, checked when a config is read: the
vocabulary (plus background) decides the model's classes, a configured
head count and the test dataset must agree."""
import pytest

from groupvit_common.checks import check_class_count
from groupvit_common.checks import check_classes as check_with
from groupvit_common.errors import ConfigCheckError, ConfigValueError
from mmseg_groupvit.models.decode_heads import head_with_bg
from tests.conftest import REPO


def config(model, classes=None, dataset_type='Data'):
    dataset = dict(type=dataset_type, pipeline=[dict(type='Load')])
    if classes is not None:
        dataset['metainfo'] = dict(classes=classes)
    return dict(
        model=model,
        test_dataloader=dict(dataset=dataset),
        test_evaluator=dict(type='IoUMetric'))


def metainfo(dataset):
    return (dataset.get('metainfo') or {}).get('classes')


def check_classes(cfg, test, dataset_classes=None):
    """The rule with the package's head background default."""
    check_with(cfg, test, dataset_classes, head_with_bg=head_with_bg)


ZERO_SHOT = dict(
    type='GroupViTEncoderDecoder',
    text_encoder=dict(vocabulary=['cat', 'dog', 'bird']),
    decode_head=dict(type='GroupViTHead'))


def test_counts_that_agree_pass():
    check_classes(config(ZERO_SHOT, list('abcd')), True, metainfo)
    classifier = dict(type='C', text_encoder=dict(vocabulary=['cat', 'dog']))
    check_classes(config(classifier, ['a', 'b']), True, metainfo)
    # mmseg's binary protocol: one channel for two classes.
    check_class_count(1, 2)


def test_vocabulary_of_another_size_than_the_dataset_names_both():
    with pytest.raises(ConfigCheckError) as info:
        check_classes(config(ZERO_SHOT, list('abcdef')), True, metainfo)
    message = str(info.value)
    assert message.startswith("The text encoder has 3 classes (first: 'cat') "
                              'plus background. The test dataset (Data) '
                              'has 6 classes. The model scores 4 classes but '
                              'the dataset has 6')
    classifier = dict(type='C', text_encoder=dict(vocabulary=['cat', 'dog']))
    with pytest.raises(
            ConfigCheckError,
            match='vocabulary has 2 classes and the test dataset 20'):
        check_classes(
            config(classifier, list('abcdefghijklmnopqrst')), True, metainfo)
    # Without the test (an API building the model) the dataset is not read.
    check_classes(config(ZERO_SHOT, list('abcdef')), False, metainfo)


def test_a_supervised_head_is_checked_against_the_dataset():
    model = dict(type='EncoderDecoder', decode_head=dict(num_classes=4))
    with pytest.raises(
            ConfigCheckError, match='scores 4 classes but the '
            'dataset has 6'):
        check_classes(config(model, list('abcdef')), True, metainfo)


@pytest.mark.parametrize('key', ['num_classes', 'out_channels'])
def test_a_configured_head_count_must_follow_the_vocabulary(key):
    model = dict(ZERO_SHOT, decode_head=dict(type='GroupViTHead', **{key: 21}))
    with pytest.raises(
            ConfigValueError,
            match=f'{key} is 21 but the vocabulary has 3 classes plus '
            'background, so the head has 4 outputs'):
        check_classes(config(model), False)


@pytest.mark.parametrize('value', [True, 4.0, '4'])
def test_an_out_channels_that_is_no_integer_is_refused(value):
    """mmseg's head would pass it to ``nn.Conv2d`` (a traceback)."""
    model = dict(
        ZERO_SHOT, decode_head=dict(type='GroupViTHead', out_channels=value))
    with pytest.raises(
            ConfigValueError,
            match=f'out_channels is {value!r} but the vocabulary has 3 '
            'classes plus background, so the head has 4 outputs'):
        check_classes(config(model), False)


@pytest.mark.parametrize('value', [2, -1, 1, 'no', None])
def test_with_bg_must_be_a_bool(value):
    """``vocabulary + with_bg`` channels: 2 would claim one output more than
    the head has, 'no' is truthy."""
    model = dict(
        ZERO_SHOT, decode_head=dict(type='GroupViTHead', with_bg=value))
    with pytest.raises(
            ConfigValueError,
            match=f'with_bg must be True or False, got {value!r}'):
        check_classes(config(model), False)


def test_leading_background_without_a_background_channel_is_named():
    """The background rule's own words, not a class count that differs."""
    model = dict(
        ZERO_SHOT,
        text_encoder=dict(vocabulary=['background', 'cat', 'dog']),
        decode_head=dict(type='GroupViTHead', with_bg=False))
    with pytest.raises(
            ConfigValueError, match='every label would shift by one'):
        check_classes(config(model, list('abc')), True, metainfo)
    # With the channel, background names label 0 and is not prompted.
    model['decode_head']['with_bg'] = True
    check_classes(config(model, list('abc')), True, metainfo)


def test_the_class_folders_of_a_classification_dataset_count(tmp_path):
    """A folder layout without class names takes its sorted folders: their
    number is checked before any image is read."""
    from mmseg_groupvit.utils.config_file import read_config
    for name in ('a', 'b', 'c'):
        (tmp_path / name).mkdir()
    options = {
        'test_dataloader.dataset.metainfo': None,
        'test_dataloader.dataset.type': 'CustomDataset',
        'test_dataloader.dataset.data_root': str(tmp_path),
        'test_dataloader.dataset.data_prefix': '',
        'test_dataloader.dataset.ann_file': '',
    }
    cfg = f'{REPO}/configs/classification/groupvit_voc-dominant-sample.py'
    with pytest.raises(
            ConfigCheckError,
            match='vocabulary has 20 classes and the test dataset 3'):
        read_config(cfg, options)


def test_a_zero_shot_test_cfg_is_checked_whatever_the_type_is_called():
    """A segmentor given as its class (lazy configs) or a subclass is
    checked before any checkpoint is fetched, as the named one is."""
    from groupvit_common.checks import check_config
    from mmseg_groupvit.models import GroupViTEncoderDecoder
    for model_type in (GroupViTEncoderDecoder, 'GroupViTAuxEncoderDecoder'):
        model = dict(ZERO_SHOT, type=model_type, test_cfg=dict(bg_thresh=2))
        with pytest.raises(
                ConfigValueError,
                match='model.test_cfg.bg_thresh must be a number in'):
            check_config(config(model), False)


def test_a_training_config_sets_up_training_with_dicts():
    from groupvit_common.checks import check_config
    model = dict(type='EncoderDecoder', decode_head=dict(num_classes=4))
    cfg = dict(model=model, train_dataloader=dict(dataset=dict()), train_cfg=5)
    with pytest.raises(ConfigCheckError, match='the config has no optim_'):
        check_config(cfg, test=False, train=True)
    cfg['optim_wrapper'] = dict()
    with pytest.raises(ConfigValueError, match='train_cfg must be a dict, '):
        check_config(cfg, test=False, train=True)
    cfg['train_cfg'] = dict()
    check_config(cfg, test=False, train=True)
    cfg['train_dataloader'] = dict(dataset=[])
    with pytest.raises(
            ConfigValueError,
            match=r'train_dataloader.dataset must be a dict, got \[\]'):
        check_config(cfg, test=False, train=True)
