# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Checkpoints by URL and hub id, with no internet and no fixture: a server
on 127.0.0.1 started here, a small transformers GroupViT, and the cache
folders pointed at a temporary directory."""
import hashlib
import os
import os.path as osp
import socket
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.apis import init_groupvit
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import (HF_SMALL, REPO, hub_cache, randomise_hf,
                            release_name, serve_folder)

transformers = pytest.importorskip('transformers')

VOC = osp.join(REPO, 'configs', 'groupvit_voc.py')


@pytest.fixture(scope='module')
def published(tmp_path_factory):
    """A small transformers GroupViT folder and its conversion by the
    converter, served under a release-style name."""
    root = tmp_path_factory.mktemp('published')
    torch.manual_seed(0)
    model = transformers.GroupViTModel(
        transformers.GroupViTConfig(**HF_SMALL)).eval()
    randomise_hf(model, logit_scale=4.6)
    model.save_pretrained(str(root / 'hf'))
    (root / 'site').mkdir()
    result = convert_checkpoint(
        str(root / 'hf'), str(root / 'site' / 'small.pth'))
    path = release_name(str(root / 'site' / 'small.pth'), 'groupvit_small')
    os.remove(result['config'])  # only the weights are published
    with serve_folder(root / 'site') as (base, requests):
        yield dict(
            hf=str(root / 'hf'),
            file=path,
            url=f'{base}/{osp.basename(path)}',
            base=base,
            requests=requests,
            arch=result['arch'])


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_url_downloads_once_into_torch_hub_cache(published, torch_home):
    before = len(published['requests'])
    first = CheckpointLoader.load_checkpoint(published['url'])
    second = CheckpointLoader.load_checkpoint(published['url'])
    assert len(published['requests']) == before + 1
    source = torch.load(published['file'], weights_only=True)
    assert_same_tensors(first['state_dict'], source['state_dict'])
    assert_same_tensors(second['state_dict'], source['state_dict'])
    cached = torch_home / osp.basename(published['url'])
    assert os.listdir(torch_home) == [cached.name]
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert cached.name.endswith(f'-{digest[:8]}.pth')


def test_config_weights_and_architecture_applied(published, torch_home):
    """The shipped VOC config (released architecture) with load_from at the
    URL builds the small model and loads the published tensors."""
    cfg = Config.fromfile(VOC)
    cfg.load_from = published['url']
    model = init_groupvit(cfg)
    source = torch.load(published['file'], weights_only=True)['state_dict']
    assert_same_tensors(model.state_dict(), source)
    for part in ('image_encoder', 'text_encoder'):
        for key, value in published['arch'][part].items():
            assert model.cfg.model[part][key] == value, (part, key)


def test_contradicting_config_is_refused(published, torch_home):
    cfg = Config.fromfile(VOC)
    cfg.model.image_encoder.hidden_size = 384
    cfg.model.text_encoder.num_hidden_layers = 12
    with pytest.raises(CheckpointError) as error:
        init_groupvit(cfg, published['url'])
    message = str(error.value)
    assert 'image_encoder.hidden_size: config says 384, checkpoint says 64' \
        in message
    assert 'text_encoder.num_hidden_layers: config says 12, checkpoint ' \
           'says 2' in message


def test_file_placed_by_hand_is_verified(published, torch_home):
    torch_home.mkdir(parents=True)
    placed = torch_home / osp.basename(published['url'])
    placed.write_bytes(b'not the published file')
    with pytest.raises(CheckpointError, match='its name promises'):
        CheckpointLoader.load_checkpoint(published['url'])
    assert not placed.exists()


@pytest.fixture
def closed_port():
    """A port that refuses connections: bound here without listening, and
    held for the test, so that no other process can serve on it."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        yield s.getsockname()[1]


def test_offline_names_url_cache_and_what_to_do(torch_home, closed_port):
    url = f'http://127.0.0.1:{closed_port}/group_vit_x-879422e0.pth'
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint(url)
    message = str(error.value)
    assert message.startswith(f'cannot download {url}')
    assert str(torch_home / 'group_vit_x-879422e0.pth') in message
    assert f'curl -L -o {torch_home}' in message
    assert not torch_home.exists() or os.listdir(torch_home) == []


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline."""
    constants = pytest.importorskip('huggingface_hub.constants')
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    return tmp_path / 'hub'


def test_hub_id_from_offline_cache_equals_the_converter(published, hub):
    hub_cache(hub, 'nvidia/groupvit-gcc-yfcc', published['hf'])
    files = sorted(str(p) for p in hub.rglob('*'))
    checkpoint = CheckpointLoader.load_checkpoint(
        'hf://nvidia/groupvit-gcc-yfcc')
    source = torch.load(published['file'], weights_only=True)
    assert_same_tensors(checkpoint['state_dict'], source['state_dict'])
    assert checkpoint['meta']['groupvit_arch'] == published['arch']
    # Converted in memory: nothing written beside the cached files.
    assert sorted(str(p) for p in hub.rglob('*')) == files


def test_hub_id_missing_offline(hub):
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint('hf://nvidia/groupvit-gcc-redcaps')
    message = str(error.value)
    assert 'offline' in message
    assert str(hub / 'models--nvidia--groupvit-gcc-redcaps') in message


def test_hub_id_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)
    with pytest.raises(CheckpointError, match='pip install huggingface_hub'):
        CheckpointLoader.load_checkpoint('hf://nvidia/groupvit-gcc-yfcc')


def test_malformed_hub_id():
    with pytest.raises(CheckpointError, match='hf://OWNER/NAME'):
        CheckpointLoader.load_checkpoint('hf://groupvit')


def test_mmseg_inferencer_with_the_checkpoint_architecture(
        published, torch_home):
    """mmseg's own inferencer on a config made ready by resolve_load_from:
    the published tensors in a model of the checkpoint's architecture."""
    from mmseg.apis import MMSegInferencer

    from mmseg_groupvit.weights import resolve_load_from
    cfg = Config.fromfile(VOC)
    local = resolve_load_from(cfg, published['url'])
    assert cfg.load_from == local and osp.isfile(local)
    inferencer = MMSegInferencer(cfg, cfg.load_from, device='cpu')
    source = torch.load(published['file'], weights_only=True)['state_dict']
    assert_same_tensors(inferencer.model.state_dict(), source)
