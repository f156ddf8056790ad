# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The options the tools share, read before any heavy import: what a
command line gets wrong is one message, and ``--random-weights`` is the
only way to random weights."""
import argparse

import pytest

from groupvit_common.tool_options import (RANDOM_BANNER, check_paths,
                                          runner_options, text_options,
                                          weight_options, weights_label)


def test_a_good_command_line_has_no_problem(tmp_path, monkeypatch):
    config = tmp_path / 'c.py'
    config.write_text('')
    checkpoint = tmp_path / 'w.pth'
    checkpoint.write_bytes(b'')
    assert check_paths(str(config)) is None
    assert check_paths(str(config), str(checkpoint)) is None
    assert check_paths(str(config), random_weights=True) is None
    # Remote ones are checked when fetched.
    assert check_paths(str(config), 'hf://nvidia/groupvit-gcc-yfcc') is None
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.setenv(name, '0')
    assert check_paths(str(config), launcher='pytorch') is None


@pytest.mark.parametrize('case, expected', [
    ('config', 'config not found: {tmp}/missing.py. Pass one of'),
    ('checkpoint', 'checkpoint not found: {tmp}/missing.pth. Give a '
     'checkpoint file or folder, a URL or hf://OWNER/NAME (see '
     'docs/weights.md), or leave --checkpoint out for the config\'s '
     'weights.'),
    ('both', 'give --checkpoint or --random-weights, not both.'),
    ('launcher', '--launcher pytorch needs the environment torchrun sets '
     '(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set).'),
])
def test_each_problem_is_one_message(case, expected, tmp_path, monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / 'c.py'
    config.write_text('')
    checkpoint = tmp_path / 'w.pth'
    checkpoint.write_bytes(b'')
    kwargs = dict(
        config=str(tmp_path /
                   'missing.py') if case == 'config' else str(config),
        checkpoint=str(tmp_path / 'missing.pth')
        if case == 'checkpoint' else str(checkpoint),
        random_weights=case == 'both',
        launcher='pytorch' if case == 'launcher' else 'none',
        checkpoint_option='--checkpoint')
    problem = check_paths(**kwargs)
    assert expected.format(tmp=tmp_path) in problem
    assert '\n' not in problem


def test_parent_parsers_give_the_shared_options():
    import argparse
    parser = argparse.ArgumentParser(
        parents=[runner_options(), weight_options()])
    args = parser.parse_args([
        '--work-dir', 'w', '--cfg-options', 'a.b=1', 'c=[1,2]', 'd=(448, 448)',
        '--launcher', 'pytorch', '--random-weights', '--seed', '7', '--verbose'
    ])
    assert (args.work_dir, args.launcher, args.seed) == ('w', 'pytorch', 7)
    # A space after a separator is read as mmengine reads it.
    assert args.cfg_options == {'a.b': 1, 'c': [1, 2], 'd': (448, 448)}
    assert args.random_weights and args.verbose
    defaults = parser.parse_args([])
    assert not defaults.random_weights and defaults.seed == 0
    assert defaults.launcher == 'none' and defaults.cfg_options is None


def test_weights_are_named_or_said_random():
    assert weights_label('a.pth', 3) == 'a.pth'
    assert weights_label(None, 3) == 'random (seed 3)'
    assert RANDOM_BANNER == 'RANDOM WEIGHTS: not a real prediction.'


def test_text_options_take_one_vocabulary_source(capsys):
    import argparse
    parser = argparse.ArgumentParser(parents=[text_options()])
    args = parser.parse_args([
        '--vocab', 'cat,dog|puppy', '--extra-classes', 'grass', '--templates',
        'a {}.', 'art of the {}.', '--bg-thresh', '0.5'
    ])
    assert (args.vocab, args.vocab_file,
            args.extra_classes) == ('cat,dog|puppy', None, 'grass')
    assert args.templates == ['a {}.', 'art of the {}.']
    assert args.bg_thresh == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(['--vocab', 'cat', '--vocab-file', 'v.txt'])
    assert 'not allowed with argument' in capsys.readouterr().err
    without = argparse.ArgumentParser(
        parents=[text_options(extra_classes=False)])
    with pytest.raises(SystemExit):
        without.parse_args(['--extra-classes', 'grass'])


@pytest.mark.parametrize(
    'seed', ['-1', str(2**32), '99999999999999999999', 'abc'])
def test_a_seed_numpy_cannot_take_is_a_usage_error(seed, capsys):
    parser = argparse.ArgumentParser(parents=[weight_options()])
    assert parser.parse_args(['--seed', str(2**32 - 1)]).seed == 2**32 - 1
    with pytest.raises(SystemExit):
        parser.parse_args(['--seed', seed])
    assert f"argument --seed: '{seed}' is not a seed" in capsys.readouterr(
    ).err


def test_a_missing_training_config_names_the_training_configs(tmp_path):
    problem = check_paths(str(tmp_path / 'missing.py'), tool='tools/train.py')
    assert problem == (f'config not found: {tmp_path / "missing.py"}. Pass '
                       f'one of configs/finetune/*.py, configs/pretrain/*.py '
                       f'or your own config file.')
