# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Checks of a test config made before anything is built: the dataloader's
settings and the output folders."""
import ast
import os

import pytest
from mmengine.config import Config

from groupvit_common.checks import check_test_dataloader
from groupvit_common.errors import (USER_ERRORS, ConfigCheckError,
                                    ConfigValueError, user_error_message)
from groupvit_common.files import check_out_dir
from mmseg_groupvit.evaluation import check_dataset_paths


def loader_cfg(**loader):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    ]
    base = dict(batch_size=1, dataset=dict(pipeline=pipeline))
    base.update(loader)
    return Config(dict(test_dataloader=base))


@pytest.mark.parametrize('change, message', [
    (dict(batch_size=0), 'test_dataloader.batch_size must be a positive'),
    (dict(batch_size='2'), 'test_dataloader.batch_size must be a positive'),
    ('scale=(0,0)', 'test_dataloader.dataset.pipeline.1.scale must be two '
     'positive integers (Resize: the target width and height), got (0, 0)'),
    ('scale=-5', 'test_dataloader.dataset.pipeline.1.scale must be a '
     'positive integer'),
    ('scale_factor=0', 'test_dataloader.dataset.pipeline.1.scale_factor '
     '(Resize) must be positive'),
])
def test_dataloader_settings_that_cannot_work(change, message):
    if isinstance(change, dict):
        cfg = loader_cfg(**change)
    else:
        cfg = loader_cfg()
        key, value = change.split('=')
        cfg.test_dataloader.dataset.pipeline[1][key] = ast.literal_eval(value)
    with pytest.raises(ConfigValueError) as info:
        check_test_dataloader(cfg)
    assert message in str(info.value)


def test_good_dataloader_settings_pass():
    check_test_dataloader(loader_cfg(batch_size=4))
    cfg = loader_cfg()
    cfg.test_dataloader.dataset.pipeline[1] = dict(
        type='Resize', scale=448, scale_factor=(0.5, 2.0))
    check_test_dataloader(cfg)


def test_data_root_as_a_list_is_named():
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_paths(dict(data_root=['a', 'b'], data_prefix={}))
    assert "data_root must be one folder (a string), got ['a', 'b']" in str(
        info.value)


def test_data_root_that_is_a_file_is_named(tmp_path):
    archive = tmp_path / 'VOC2012.tar'
    archive.write_text('x')
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_paths(dict(data_root=str(archive)))
    assert f"data_root '{archive}' is a file, not a folder" in str(info.value)
    assert 'data_root=/path/to/dataset' in str(info.value)


def test_out_dir_that_is_a_file_or_under_one(tmp_path):
    afile = tmp_path / 'results.txt'
    afile.write_text('x')
    with pytest.raises(ConfigCheckError, match='is a file, not a folder'):
        check_out_dir(str(afile), '--out')
    with pytest.raises(
            ConfigCheckError,
            match=f'lies under the file {afile}, not a folder'):
        check_out_dir(str(afile / 'a' / 'b'), '--work-dir')
    assert afile.read_text() == 'x'


def test_out_dir_is_created_and_written(tmp_path):
    check_out_dir(str(tmp_path / 'new' / 'deep'), '--out')
    assert (tmp_path / 'new' / 'deep').is_dir()
    assert os.listdir(tmp_path / 'new' / 'deep') == []


def test_unwritable_out_dir(tmp_path):
    folder = tmp_path / 'locked'
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:
        # Root writes anywhere but in /proc.
        folder = '/proc/groupvit_out'
    try:
        with pytest.raises(
                ConfigCheckError, match=f'--out {folder} cannot be written'):
            check_out_dir(str(folder), '--out')
    finally:
        (tmp_path / 'locked').chmod(0o700)


def test_build_prefixes_are_removed_from_messages():
    """mmengine's registry puts "class `Name` in module.py: " in front of a
    component's error once per nesting level; the tools print the
    component's own message."""
    error = ConfigValueError(
        'class `GroupViTEncoderDecoder` in mmseg_groupvit/models/segmentors/'
        'groupvit_encoder_decoder.py: class `GroupViTHead` in mmseg_groupvit/'
        'models/decode_heads/groupvit_head.py: model.decode_head.bg_thresh '
        'must be a number in [0, 1], got 2.')
    assert isinstance(error, USER_ERRORS)
    assert user_error_message(error) == (
        'model.decode_head.bg_thresh must be a number in [0, 1], got 2.')
