# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The one rule of class counts, checked when a config is read: the
vocabulary (plus background) decides the model's classes, a configured
head count and the test dataset must agree."""
import pytest

from groupvit_common.checks import check_class_count, check_classes
from groupvit_common.errors import ConfigCheckError, ConfigValueError
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
