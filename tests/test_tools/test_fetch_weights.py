# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The quick start's weight step, ``tools/fetch_weights.py``, end to end:
release-style names served from a server on 127.0.0.1, a good file taken
into the cache, a bad hash refused, offline one ``error:`` line with the
``curl`` command, a Ctrl-C that keeps nothing."""
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import (REPO, build_small_segmentor, load_script,
                            release_name, serve_folder, shell_signals)

FETCH = osp.join(REPO, 'tools', 'fetch_weights.py')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    """A small GroupViT checkpoint under a release-style name, and the
    same bytes under a name promising another hash."""
    folder = tmp_path_factory.mktemp('site')
    torch.save(
        dict(state_dict=build_small_segmentor().state_dict(), meta={}),
        folder / 'small.pth')
    path = release_name(str(folder / 'small.pth'), 'groupvit_small')
    shutil.copy(path, folder / 'groupvit_small-0badc0de.pth')
    with serve_folder(folder) as (base, _):
        yield base, osp.basename(path)


def run(args, torch_home, **kwargs):
    return subprocess.Popen([sys.executable, FETCH, *args],
                            preexec_fn=shell_signals,
                            cwd=REPO,
                            env=dict(
                                os.environ,
                                PYTHONPATH=REPO,
                                TORCH_HOME=str(torch_home)),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True,
                            **kwargs)


def cached(torch_home):
    return [p for p in torch_home.rglob('*') if p.is_file()]


def test_quickstart_runs_this_step():
    with open(osp.join(REPO, 'tools', 'quickstart.sh')) as f:
        assert 'tools/fetch_weights.py configs/groupvit_voc.py' in f.read()


def test_quickstart_refuses_an_old_python_before_making_anything(tmp_path):
    """A ``python3`` older than 3.11 (this fake fails the version check, as
    3.10 does) gets one error line, and no ``.venv`` is made."""
    fake = tmp_path / 'python3.10'
    fake.write_text('#!/bin/sh\nexit 1\n')
    fake.chmod(0o755)
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'quickstart.sh')],
        env=dict(os.environ, PYTHON=str(fake), VENV=str(tmp_path / 'venv')),
        capture_output=True,
        text=True)
    assert result.returncode == 1
    assert result.stderr.startswith('error: ') and result.stderr.count(
        '\n') == 1 and 'PYTHON=python3.11' in result.stderr
    assert not (tmp_path / 'venv').exists()
    # A missing command says the same in one line (no shell noise), and a
    # .venv made by an older Python is named before pip fails on it.
    (tmp_path / 'old' / 'bin').mkdir(parents=True)
    (tmp_path / 'old' / 'bin' / 'python').symlink_to(fake)
    for python, venv, fix in (('no-such-python', 'venv', 'PYTHON='),
                              ('python3', 'old', f'delete {tmp_path}/old')):
        result = subprocess.run(
            ['bash', osp.join(REPO, 'tools', 'quickstart.sh')],
            env=dict(os.environ, PYTHON=python, VENV=str(tmp_path / venv)),
            capture_output=True,
            text=True)
        assert result.returncode == 1 and result.stderr.startswith(
            'error: ') and result.stderr.count('\n') == 1, result.stderr
        assert fix in result.stderr


@pytest.mark.slow
def test_release_is_fetched_once_as_the_quick_start_does(site, tmp_path):
    """As quickstart.sh runs it, with a config whose load_from is the
    release: the cache file is printed, and a second run reads it."""
    base, name = site
    config = tmp_path / 'voc.py'
    config.write_text(f"_base_ = ['{REPO}/configs/groupvit_voc.py']\n"
                      f"load_from = '{base}/{name}'\n")
    out, err = run([str(config)], tmp_path / 'torch').communicate()
    path = out.strip().splitlines()[-1]
    assert [str(p) for p in cached(tmp_path / 'torch')] == [path], err
    assert torch.load(
        path, weights_only=True)['meta']['groupvit_source'] == f'{base}/{name}'
    fetch = load_script(FETCH, 'groupvit_fetch_weights')
    os.environ['TORCH_HOME'] = str(tmp_path / 'torch')
    try:
        assert fetch.main([f'{base}/{name}']) == path
    finally:
        del os.environ['TORCH_HOME']


@pytest.mark.parametrize('case', ['wrong_hash', 'offline', 'trickle'])
def test_failure_is_one_error_line_and_keeps_nothing(site, tmp_path, case,
                                                     monkeypatch, capsys):
    base, name = site
    with socket.socket() as closed:
        closed.bind(('127.0.0.1', 0))
        url = dict(
            wrong_hash=f'{base}/groupvit_small-0badc0de.pth',
            offline=f'http://127.0.0.1:{closed.getsockname()[1]}/'
            f'group_vit_gcc_yfcc_30e-879422e0.pth',
            trickle=f'{base}/trickle/{name}')[case]
        monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
        monkeypatch.setenv('GROUPVIT_DOWNLOAD_STALL_SECONDS', '1')
        fetch = load_script(FETCH, 'groupvit_fetch_weights')
        with pytest.raises(SystemExit) as error:
            fetch.main([url])
    # quickstart.sh: random weights when unavailable, stop when tampered
    assert error.value.code == (1 if case == 'wrong_hash' else 2)
    message = capsys.readouterr().err.strip()
    assert message.startswith('error: ') and '\n' not in message
    assert re.search(r'`curl -L -o \S+ ' + re.escape(url) + '`', message)
    assert dict(
        wrong_hash='not the 0badc0de its name promises',
        offline='cannot download',
        trickle='stalled: under 1024 bytes/s for 1 s')[case] in message
    assert cached(tmp_path / 'torch') == []


@pytest.mark.parametrize('config, part', [
    ('fcn_groupvit-gcc-yfcc_4xb4-20k_voc12aug-512x512.py', 'backbone'),
    ('groupvit-gcc-yfcc_fcn-aux_4xb4-20k_voc12aug-512x512.py', None),
])
def test_a_fine_tuning_config_gets_its_init_cfg_checkpoint(
        site, tmp_path, monkeypatch, capsys, config, part):
    """A fine-tuning config sets no load_from: its weights come through a
    Pretrained init_cfg (the backbone's, or the segmentor's), fetched into
    the cache the loader reads a URL from."""
    from mmseg_groupvit.weights.checkpoint_loader import cache_entry
    base, name = site
    url = f'{base}/{name}'
    init_cfg = f'dict(init_cfg=dict(checkpoint={url!r}))'
    path = tmp_path / 'finetune.py'
    path.write_text(
        f"_base_ = ['{REPO}/configs/finetune/{config}']\n"
        f'model = {f"dict({part}={init_cfg})" if part else init_cfg}\n')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    fetch = load_script(FETCH, 'groupvit_fetch_weights')
    cache = fetch.main([str(path)])
    assert capsys.readouterr().out.splitlines()[-1] == cache
    assert cache == cache_entry(url)
    assert cached(tmp_path / 'torch') == [tmp_path / 'torch' / cache]
    assert torch.load(
        cache, weights_only=True)['meta']['groupvit_source'] == url


def test_a_config_naming_no_weights_is_one_error_line(tmp_path, capsys):
    path = tmp_path / 'none.py'
    path.write_text("model = dict(type='EncoderDecoder', backbone=dict(\n"
                    "    init_cfg=dict(type='Kaiming')))\n")
    fetch = load_script(FETCH, 'groupvit_fetch_weights')
    with pytest.raises(SystemExit) as error:
        fetch.main([str(path)])
    assert error.value.code == 2
    assert capsys.readouterr().err.strip() == (
        'error: the config sets no load_from nor a Pretrained init_cfg '
        'checkpoint, or it is not a URL or hf://OWNER/NAME: a local file '
        'needs no fetching.')


def test_a_broken_config_is_one_error_line(tmp_path, capsys):
    path = tmp_path / 'broken.py'
    path.write_text('model = dict(\n')
    fetch = load_script(FETCH, 'groupvit_fetch_weights')
    with pytest.raises(SystemExit) as error:
        fetch.main([str(path)])
    assert error.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message == (f"error: cannot read the config {path}: line 1: '(' "
                       f"was never closed; fix the Python syntax. Or pass a "
                       f"URL or hf://OWNER/NAME.")


def test_a_missing_config_is_one_error_line(tmp_path, capsys):
    fetch = load_script(FETCH, 'groupvit_fetch_weights')
    with pytest.raises(SystemExit) as error:
        fetch.main([str(tmp_path / 'missing.py')])
    assert error.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f'error: config not found: {tmp_path / "missing.py"}. Pass a config '
        f'file (its load_from is fetched), a URL or hf://OWNER/NAME.')


@pytest.mark.slow
def test_ctrl_c_during_the_download_is_one_line(site, tmp_path):
    """The server sends half, then stalls; the user presses Ctrl-C."""
    base, name = site
    proc = run([f'{base}/stall/{name}'], tmp_path / 'torch')
    deadline = time.time() + 60
    while not any(p.suffix == '.partial' for p in cached(tmp_path / 'torch')):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert proc.returncode == 2 and 'Traceback' not in err, err
    assert len(errors) == 1 and 'was interrupted; nothing' in errors[0]
    assert cached(tmp_path / 'torch') == []
