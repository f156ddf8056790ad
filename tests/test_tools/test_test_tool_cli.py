# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/test.py's command line before any model: ``--help`` and a wrong
path answer without importing PyTorch or mmseg, and a file that is no
config, or a section replaced by None, is one ``error:`` line before any
checkpoint is looked for (offline: no download is tried)."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import PHOTOS, REPO, load_script

TEST_PY = osp.join(REPO, 'tools', 'test.py')
HEAVY = ('torch', 'mmseg', 'mmcv', 'mmseg_groupvit')


def imported_modules(*argv):
    """Run a tool with ``-X importtime``: its exit status, stdout, and the
    top-level names of the modules it imported."""
    proc = subprocess.run([sys.executable, '-X', 'importtime', *argv],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    names, other = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith('import time:'):
            names.add(line.rsplit('|', 1)[1].strip().split('.')[0])
        else:
            other.append(line)
    return proc.returncode, proc.stdout, '\n'.join(other), names


@pytest.mark.parametrize(
    'tool',
    ['tools/test.py', 'tools/demo.py', 'tools/deployment/pytorch2onnx.py'])
def test_help_imports_no_heavy_module(tool):
    code, out, _, names = imported_modules(tool, '--help')
    assert code == 0 and 'usage:' in out
    assert 'argparse' in names  # the measure sees imports
    assert not names & set(HEAVY), names & set(HEAVY)


@pytest.mark.parametrize('argv, message', [
    (['tools/test.py', 'nowhere.py'], 'error: config not found: nowhere.py'),
    (['tools/test.py', 'configs/groupvit_voc.py', 'nowhere.pth'
      ], 'error: checkpoint not found: nowhere.pth'),
    (['tools/test.py', 'configs/groupvit_voc.py', '--launcher', 'pytorch'
      ], 'error: --launcher pytorch needs the environment torchrun sets'),
    (['tools/demo.py', 'x.jpg', '--config', 'nowhere.py'
      ], 'error: config not found: nowhere.py'),
    ([
        'tools/deployment/pytorch2onnx.py', 'configs/groupvit_voc.py', 'a.pth',
        '--random-weights', '--out', 'x'
    ], 'error: checkpoint not found: a.pth'),
])
def test_a_wrong_path_is_one_line_without_heavy_imports(argv, message):
    env_names = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
    assert not any(name in os.environ for name in env_names)
    code, _, err, names = imported_modules(*argv)
    assert code == 1
    assert err.strip().splitlines() == [err.strip()
                                        ] and err.startswith(message), err
    assert not names & set(HEAVY), names & set(HEAVY)


def test_help_says_where_show_dir_pictures_go():
    _, out, _, _ = imported_modules('tools/test.py', '--help')
    text = ' '.join(out.split())
    assert 'SHOW_DIR/vis_data/vis_image/test_<image>_0.png' in text
    assert 'timestamp' not in text


def write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


@pytest.mark.parametrize('name, content, expected', [
    ('photo.py', open(osp.join(PHOTOS, 'groupvit_demo_voc.jpg'),
                      'rb').read(), 'it is not a text file (byte 0 is not '
     'UTF-8)'),
    ('empty.py', '', 'model must be a dict with a type, got None'),
    ('broken.py', 'model = dict(\n', "line 1: '(' was never closed"),
    ('list.json', '[1, 2]', 'a config is a dict of settings'),
])
def test_a_file_that_is_no_config_is_one_error_line(name, content, expected,
                                                    tmp_path):
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = write(tmp_path / name, content)
    with pytest.raises(SystemExit) as error:
        tool.main([config, '--work-dir', str(tmp_path / 'work')])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    assert expected in message, message
    assert not (tmp_path / 'work').exists()


LAUGHS = ''.join(f'{a}: &{a} [{", ".join([f"*{b}"] * 9)}]\n'
                 for b, a in zip('abcdef', 'bcdefg'))


@pytest.mark.parametrize('kind', ['code', 'billion laughs', 'base file'])
def test_a_yaml_config_is_data(kind, tmp_path):
    """mmengine reads YAML with PyYAML's full loader, which calls what a
    tag names; the package's safe handler builds data only and bounds what
    aliases expand to. The marker file the payload would write never
    exists."""
    marker = tmp_path / 'PWNED'
    payload = f'!!python/object/apply:os.system ["touch {marker}"]\n'
    config = dict(
        code=write(tmp_path / 'evil.yml', payload),
        **{
            'billion laughs':
            write(tmp_path / 'laughs.yaml', 'a: &a [1, 1, 1, 1, 1, 1, 1, 1, '
                  '1]\n' + LAUGHS),
            'base file':
            write(tmp_path / 'leaf.py',
                  f"_base_ = [{write(tmp_path / 'base.yml', payload)!r}]\n")
        })[kind]
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    with pytest.raises(SystemExit) as error:
        tool.main(
            [config, '--random-weights', '--work-dir',
             str(tmp_path / 'work')])
    message = str(error.value.code)
    assert message.startswith('error: cannot read the config'), message
    assert '\n' not in message
    assert dict(
        code='could not determine a constructor',
        **{
            'billion laughs': 'expands to more than 1,000,000 values',
            'base file': 'could not determine a constructor'
        })[kind] in message
    assert not marker.exists()


@pytest.mark.parametrize('option, expected', [
    ('model.test_cfg=None', 'model.test_cfg must be a dict, got None'),
    ('model.text_encoder=None', 'model.text_encoder must be a dict, got '
     'None'),
    ('test_dataloader=None', 'test_dataloader must be a dict, got None'),
    ('test_dataloader.dataset=None', 'test_dataloader.dataset must be a '
     'dict, got None'),
    ('test_evaluator=None', 'test_evaluator must be a dict or a non-empty '
     'list of dicts, got None'),
    ('test_evaluator=[]', 'test_evaluator must be a dict or a non-empty '
     'list of dicts, got []'),
    ('test_dataloader.dataset.pipeline=None',
     'test_dataloader.dataset.pipeline must be a list of dicts'),
    ('test_dataloader.dataset.pipeline=[]',
     'test_dataloader.dataset.pipeline must be a list of dicts'),
    ('model.test_cfg.bg_thresh=2', 'model.test_cfg.bg_thresh must be a number '
     'in [0, 1], got 2'),
    ('model.test_cfg.mode=sliding', "model.test_cfg.mode must be one of "
     "'whole', 'slide', got 'sliding'"),
    ('test_dataloader.dataset.type=PascalVOCDatset', "The dataset type "
     "'PascalVOCDatset' is not registered, so its classes cannot be read. "
     'Check its spelling'),
])
def test_a_bad_section_is_refused_before_the_checkpoint_is_fetched(
        option, expected, tmp_path, monkeypatch):
    """The shipped config's weights are a URL: offline, with an empty
    cache, fetching them would fail; the config's problem is said first."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    with pytest.raises(SystemExit) as error:
        tool.main([
            osp.join(REPO, 'configs', 'groupvit_voc.py'), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', option
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    assert expected in message, message
    assert not (tmp_path / 'torch').exists()


@pytest.mark.parametrize('given, expected', [(None, '1'), ('3', '3')])
def test_dist_test_sets_torchruns_thread_default(given, expected, tmp_path):
    """torchrun prints a notice when OMP_NUM_THREADS is unset and sets it to
    1: the script sets that default itself and keeps the user's value."""
    python = tmp_path / 'bin' / 'python'
    python.parent.mkdir()
    python.write_text(
        '#!/bin/sh\necho "OMP_NUM_THREADS=$OMP_NUM_THREADS $*"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    env['VENV'] = str(tmp_path)
    if given is not None:
        env['OMP_NUM_THREADS'] = given
    proc = subprocess.run(
        ['bash', 'tools/dist_test.sh', 'configs/groupvit_voc.py', '2'],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f'OMP_NUM_THREADS={expected} -m '
                                  f'torch.distributed.run'), proc.stdout
    assert '--nproc_per_node=2' in proc.stdout


@pytest.mark.parametrize('tool, argv', [
    ('tools/demo.py', ['PHOTO', '--random-weights', '--config']),
    ('tools/demo.py', ['PHOTO', '--classify', '--random-weights', '--config']),
    ('tools/deployment/pytorch2onnx.py', ['--random-weights', '--out', 'x']),
])
def test_every_tool_reads_a_config_the_same_way(tool, argv, tmp_path):
    """The demo (both modes) and the exporter read the config through the
    same reader: a JSON list is the same one line."""
    config = write(tmp_path / 'list.json', '[1, 2]')
    photo = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')
    argv = [photo if a == 'PHOTO' else a for a in argv]
    argv = argv + [config] if argv[-1] == '--config' else [config] + argv
    with pytest.raises(SystemExit) as error:
        load_script(tool).main(argv + ['--out', str(tmp_path / 'out')])
    assert str(error.value.code) == (
        f'error: cannot read the config {config}: AttributeError: \'list\' '
        f'object has no attribute \'get\'; a config is a dict of settings '
        f'(model, test_dataloader, ...).')
    assert not (tmp_path / 'out').exists()
