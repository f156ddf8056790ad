# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``python tools/test.py CONFIG`` with the config's weights named by URL or
hub id, on the reference fixture of the original code (skipped without it).

A server on 127.0.0.1, started here, serves the fixture's NVlabs checkpoint
in the release form (the model's tensors and its NVlabs config, as the
published files pickle it) under a release-style name carrying its SHA-256
prefix. The configs are the shipped ones with ``load_from`` pointed at it
and no architecture fields: the checkpoint's architecture must be applied,
and the label maps must be the original code's. The hub test builds a
Hugging Face cache from the fixture's transformers folder and runs with
``HF_HUB_OFFLINE=1``. (tests/test_weights/test_download.py covers the same
paths without the fixture.)
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import (CONTEXT_SAMPLE, REPO, VOC_SAMPLE, hub_cache,
                            load_script, release_name, serve_folder)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

TEST_PY = osp.join(REPO, 'tools', 'test.py')
# The fixture's two VOC val photos, in reference.npz order.
VOC_IDS = ('2007_000129', '2007_000033')


@pytest.fixture(scope='module')
def release(fixture_a, tmp_path_factory):
    """``(url, base, requests, file)`` of the fixture served as a
    release."""
    folder = tmp_path_factory.mktemp('release')
    checkpoint = torch.load(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'), weights_only=True)
    with open(osp.join(fixture_a, 'nvlabs_config.json')) as f:
        checkpoint['config'] = dict(model=json.load(f)['model'])
    torch.save(checkpoint, folder / 'release.pth')
    path = release_name(str(folder / 'release.pth'), 'group_vit_fixture_30e')
    with serve_folder(folder) as (base, requests):
        yield f'{base}/{osp.basename(path)}', base, requests, path


def cached_files(torch_home):
    return sorted(str(p) for p in torch_home.rglob('*') if p.is_file())


def leaf_config(path, base, url):
    """A shipped config with ``load_from`` at ``url``, nothing else."""
    path.write_text(f"_base_ = ['{osp.join(REPO, 'configs', base)}']\n"
                    f"load_from = '{url}'\n")
    return str(path)


def run_cli(args, env):
    proc = subprocess.run([sys.executable, TEST_PY, *args],
                          cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **env),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def voc_options(tmp_path, ids=VOC_IDS):
    split = tmp_path / 'val.txt'
    split.write_text('\n'.join(ids) + '\n')
    return [
        '--cfg-options', f'test_dataloader.dataset.data_root={VOC_SAMPLE}',
        f'test_dataloader.dataset.ann_file={split}'
    ]


def assert_reference_labels(pred_dir, fixture_a, ids=VOC_IDS):
    reference = np.load(osp.join(fixture_a, 'reference.npz'))
    for i, name in enumerate(ids):
        labels = np.asarray(Image.open(osp.join(pred_dir, name + '.png')))
        same = (labels == reference[f'img{i}_label']).mean()
        assert same >= 0.999, f'{name}: {same:.5f} of labels equal'


def test_url_downloads_once_and_reproduces_the_original(
        release, fixture_a, tmp_path):
    url, _, requests, source = release
    torch_home = tmp_path / 'torch'
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', url)
    log = run_cli([
        config, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(tmp_path / 'pred'), *voc_options(tmp_path)
    ], dict(TORCH_HOME=str(torch_home)))
    # The cache holds the release converted, recording where it came from.
    cached, = cached_files(torch_home)
    cached = torch.load(cached, weights_only=True)
    assert cached['meta']['groupvit_source'] == url
    original = torch.load(source, weights_only=True)['model']
    # Every tensor of the release is kept, the training-only
    # multi_label_logit_scale included (training can continue from it).
    assert len(cached['state_dict']) == len(original)
    assert 'multi_label_logit_scale' in original
    assert f'Architecture from the checkpoint {url} (where it differs' in log
    assert 'image_encoder.hidden_size=128' in log
    assert log.count('Architecture from the checkpoint') == 1
    assert_reference_labels(tmp_path / 'pred', fixture_a)
    with open(tmp_path / 'work' / 'results.json') as f:
        assert json.load(f)['checkpoint'] == url

    # Another dataset config, same URL: no second download, the
    # checkpoint's architecture again (a model of the config's default
    # architecture could not load these weights).
    downloads = len(requests)
    context = leaf_config(tmp_path / 'context.py', 'groupvit_context.py', url)
    split = tmp_path / 'context.txt'
    split.write_text('2008_000002\n')
    log = run_cli([
        context, '--work-dir',
        str(tmp_path / 'context_work'), '--cfg-options',
        f'test_dataloader.dataset.data_root={CONTEXT_SAMPLE}',
        f'test_dataloader.dataset.ann_file={split}'
    ], dict(TORCH_HOME=str(torch_home)))
    assert len(requests) == downloads
    assert 'image_encoder.num_attention_heads=4' in log
    with open(tmp_path / 'context_work' / 'results.json') as f:
        record = json.load(f)
    assert record['images'] == 1
    assert len(record['per_class']['classes']) == 60


@pytest.mark.parametrize('case', ['wrong_hash', 'truncated', 'missing'])
def test_bad_download_gives_one_error_and_leaves_nothing(
        case, release, tmp_path, monkeypatch):
    url, base, _, source = release
    bad = dict(
        wrong_hash=f'{base}/group_vit_fixture_30e-0badc0de.pth',
        truncated=f'{base}/truncated/{osp.basename(url)}',
        missing=f'{base}/nowhere-5dad7770.pth')[case]
    wrong = osp.join(osp.dirname(source), 'group_vit_fixture_30e-0badc0de.pth')
    if case == 'wrong_hash' and not osp.exists(wrong):
        # The same bytes under a name promising another hash.
        shutil.copy(source, wrong)
    expected = dict(
        wrong_hash='not the 0badc0de its name promises',
        truncated='stopped after',
        missing='HTTP 404')[case]
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    config = leaf_config(tmp_path / 'voc.py', 'groupvit_voc.py', bad)
    with pytest.raises(SystemExit) as error:
        tool.main([
            config, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert expected in message, message
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    assert bad in message and str(cache) in message and 'curl' in message
    assert cached_files(tmp_path / 'torch') == []


def test_a_release_without_a_head_count_takes_the_configs(
        fixture_a, tmp_path, monkeypatch):
    """The fixture's NVlabs file records no head count (4): served by URL
    and evaluated with the config tools/convert_weights.py writes for it,
    the config decides, and the labels are the original's."""
    site = tmp_path / 'site'
    site.mkdir()
    shutil.copy(osp.join(fixture_a, 'nvlabs_ckpt.pth'), site / 'bare.pth')
    load_script('tools/convert_weights.py').main([
        osp.join(fixture_a, 'nvlabs_ckpt.pth'),
        str(tmp_path / 'converted.pth'), '--arch-config',
        osp.join(fixture_a, 'nvlabs_config.json')
    ])
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    with serve_folder(site) as (base, _):
        config = tmp_path / 'leaf.py'
        config.write_text(f"_base_ = ['{tmp_path / 'converted.py'}']\n"
                          f"load_from = '{base}/bare.pth'\n")
        tool.main([
            str(config), '--work-dir',
            str(tmp_path / 'work'), '--out',
            str(tmp_path / 'pred'), *voc_options(tmp_path, VOC_IDS[:1])
        ])
    assert_reference_labels(tmp_path / 'pred', fixture_a, VOC_IDS[:1])


def test_hub_id_offline_from_the_cache(fixture_a, tmp_path):
    pytest.importorskip('huggingface_hub')
    hf_home = tmp_path / 'hf'
    hub_cache(hf_home / 'hub', 'nvidia/groupvit-gcc-yfcc',
              osp.join(fixture_a, 'hf'))
    env = dict(
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE='1',
        TORCH_HOME=str(tmp_path / 'torch'))
    log = run_cli([
        osp.join(REPO, 'configs', 'groupvit_voc.py'),
        'hf://nvidia/groupvit-gcc-yfcc', '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(tmp_path / 'pred'), *voc_options(tmp_path, VOC_IDS[:1])
    ], env)
    assert 'Architecture from the checkpoint hf://nvidia/groupvit-gcc-yfcc' \
        in log
    assert_reference_labels(tmp_path / 'pred', fixture_a, VOC_IDS[:1])


def test_demo_takes_the_release_file_without_a_config(release, fixture_a,
                                                      tmp_path):
    """tools/demo.py with the default config and a checkpoint of another
    architecture: the original's label map of the third photo."""
    reference = np.load(osp.join(fixture_a, 'reference.npz'))
    photo = osp.join(
        osp.dirname(osp.dirname(fixture_a)), str(reference['image_files'][2]))
    demo = load_script('tools/demo.py', 'groupvit_demo_tool')
    demo.main([
        photo, '--checkpoint', release[3], '--show', 'prediction', '--out',
        str(tmp_path)
    ])
    stem = osp.splitext(osp.basename(photo))[0]
    labels = np.asarray(Image.open(tmp_path / f'{stem}_prediction.png'))
    assert (labels == reference['img2_label']).mean() >= 0.999
