# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Checkpoints by URL and hub id, with no internet and no fixture: a server
on 127.0.0.1 started here (tests/conftest.py; it also fails the ways
servers and networks fail), a small transformers GroupViT, and the cache
folders pointed at a temporary directory."""
import hashlib
import os
import os.path as osp
import shlex
import shutil
import socket
import sys
import time
import zipfile

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.apis import init_groupvit
from mmseg_groupvit.weights import checkpoint_loader, download
from mmseg_groupvit.weights.checkpoint_loader import cache_entry
from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import (HF_SMALL, REPO, VOC_SAMPLE, hub_cache,
                            randomise_hf, release_name, run_main, serve_folder)

transformers = pytest.importorskip('transformers')

VOC = osp.join(REPO, 'configs', 'groupvit_voc.py')


@pytest.fixture(scope='module')
def published(tmp_path_factory):
    """A small transformers GroupViT folder and its conversion by the
    converter, served under a release-style name; ``other`` is a second
    checkpoint of the same model with other weights."""
    root = tmp_path_factory.mktemp('published')
    torch.manual_seed(0)
    model = transformers.GroupViTModel(
        transformers.GroupViTConfig(**HF_SMALL)).eval()
    randomise_hf(model, logit_scale=4.6)
    model.save_pretrained(str(root / 'hf'))
    site = root / 'site'
    site.mkdir()
    result = convert_checkpoint(str(root / 'hf'), str(site / 'small.pth'))
    os.remove(result['config'])  # only the weights are published
    other = torch.load(site / 'small.pth', weights_only=True)
    other['state_dict']['decode_head.logit_scale'] += 1
    torch.save(other, site / 'other.pth')
    shutil.copy(site / 'small.pth', site / 'plain.pth')  # no hash in it
    path = release_name(str(site / 'small.pth'), 'groupvit_small')
    with serve_folder(site) as (base, requests):
        yield dict(
            hf=str(root / 'hf'),
            site=site,
            file=path,
            name=osp.basename(path),
            url=f'{base}/{osp.basename(path)}',
            base=base,
            requests=requests,
            arch=result['arch'])


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


def tensors_of(path):
    return torch.load(path, weights_only=True)['state_dict']


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def cached_files(torch_home):
    return sorted(p.name for p in torch_home.rglob('*') if p.is_file())


def test_url_downloads_once_into_its_cache_file(published, torch_home):
    before = len(published['requests'])
    first = CheckpointLoader.load_checkpoint(published['url'])
    second = CheckpointLoader.load_checkpoint(published['url'])
    assert len(published['requests']) == before + 1
    source = tensors_of(published['file'])
    assert_same_tensors(first['state_dict'], source)
    assert_same_tensors(second['state_dict'], source)
    entry = cache_entry(published['url'])
    assert cached_files(torch_home) == [osp.basename(entry)]
    # The cache file is a plain converted checkpoint recording its source.
    cached = torch.load(entry, weights_only=True)
    assert cached['meta']['groupvit_source'] == published['url']
    assert cached['meta']['groupvit_arch'] == published['arch']
    assert_same_tensors(cached['state_dict'], source)


def test_two_urls_with_one_file_name_keep_their_own_weights(
        published, torch_home):
    for folder, name in (('a', published['name']), ('b', 'other.pth')):
        os.makedirs(published['site'] / folder, exist_ok=True)
        shutil.copy(published['site'] / name,
                    published['site'] / folder / 'same.pth')
    for folder, name in (('a', published['name']), ('b', 'other.pth'), ('a',
                                                                        None)):
        loaded = CheckpointLoader.load_checkpoint(
            f'{published["base"]}/{folder}/same.pth')
        expected = published['site'] / (name or published['name'])
        assert_same_tensors(loaded['state_dict'], tensors_of(expected))


def test_config_weights_and_architecture_applied(published, torch_home):
    """The shipped VOC config (released architecture) with load_from at the
    URL builds the small model and loads the published tensors."""
    cfg = Config.fromfile(VOC)
    cfg.load_from = published['url']
    model = init_groupvit(cfg)
    assert_same_tensors(model.state_dict(), tensors_of(published['file']))
    for part in ('image_encoder', 'text_encoder'):
        for key, value in published['arch'][part].items():
            assert model.cfg.model[part][key] == value, (part, key)


def test_contradicting_config_is_refused(published, torch_home):
    cfg = Config.fromfile(VOC)
    cfg.model.image_encoder.hidden_size = 384
    cfg.model.text_encoder.num_hidden_layers = 12
    # The head count leaves no trace in the shapes: only the recorded
    # value can catch a config that contradicts it.
    cfg.model.image_encoder.num_attention_heads = 2
    with pytest.raises(CheckpointError) as error:
        init_groupvit(cfg, published['url'])
    message = str(error.value)
    assert 'image_encoder.hidden_size: config says 384, checkpoint says 64' \
        in message
    assert 'text_encoder.num_hidden_layers: config says 12, checkpoint ' \
           'says 2' in message
    assert 'image_encoder.num_attention_heads: config says 2, checkpoint ' \
           'says 4' in message


def test_file_placed_by_hand_is_verified(published, torch_home):
    entry = cache_entry(published['url'])
    os.makedirs(osp.dirname(entry))
    # Another checkpoint: refused (its SHA-256 is not the name's), deleted.
    shutil.copy(published['site'] / 'other.pth', entry)
    with pytest.raises(CheckpointError, match='its name promises'):
        CheckpointLoader.load_checkpoint(published['url'])
    assert not osp.exists(entry)
    # The published file, placed by hand: taken (converted in place).
    shutil.copy(published['file'], entry)
    before = len(published['requests'])
    loaded = CheckpointLoader.load_checkpoint(published['url'])
    assert len(published['requests']) == before
    assert_same_tensors(loaded['state_dict'], tensors_of(published['file']))
    # Damaged bytes: downloaded again, never a run that is stuck.
    with open(entry, 'wb') as f:
        f.write(b'not a checkpoint')
    loaded = CheckpointLoader.load_checkpoint(published['url'])
    assert len(published['requests']) == before + 1
    assert_same_tensors(loaded['state_dict'], tensors_of(published['file']))


def test_the_bytes_checked_are_the_bytes_loaded(published, torch_home,
                                                monkeypatch):
    """A file swapped between its hash check and its load: the checked
    bytes are loaded (reading the file again would load the other one)."""
    entry = cache_entry(published['url'])
    os.makedirs(osp.dirname(entry))
    shutil.copy(published['file'], entry)
    swapped = (published['site'] / 'other.pth').read_bytes()
    sha256 = hashlib.sha256

    class SwapAfterHashing:

        def __init__(self, data=b''):
            self.hash, self.size = sha256(data), len(data)

        def update(self, data):
            self.hash.update(data)
            self.size += len(data)

        def hexdigest(self):
            if self.size > len(swapped) // 2:  # a checkpoint, not a name
                with open(entry, 'wb') as f:
                    f.write(swapped)
            return self.hash.hexdigest()

    monkeypatch.setattr(hashlib, 'sha256', SwapAfterHashing)
    loaded = CheckpointLoader.load_checkpoint(published['url'])
    monkeypatch.undo()
    assert_same_tensors(loaded['state_dict'], tensors_of(published['file']))


@pytest.mark.parametrize('name', [
    'group_vit-gcc-yfcc_30e-879422e0.pth',
    'group_vit_gcc_redcap_30e-3dd09a76.pth', 'resnet18-5c106cde.pth',
    'a-abc.b-12345678.pth', 'vit-base-patch16-224.pth', 'model-.pth',
    'x-879422e0-v2.pth', 'x-879422e0.v2.pth', 'm-ABCDEF12.pth',
    'm-12345678.tar.gz', 'plain.pth', 'm-' + '0a' * 33 + '.pth'
])
def test_the_hash_in_a_name_is_read_as_torch_hub_reads_it(name):
    """torch.hub searches its HASH_REGEX in the file name of the URL's
    path (a query or fragment is not part of it)."""
    match = torch.hub.HASH_REGEX.search(name)
    url = f'https://host/v1.0-{"a" * 8}.d/{name}?x=-12345678.pth#-87654321.'
    assert download.expected_hash(url) == (match and match.group(1))


def test_the_first_hash_like_part_is_the_hash():
    # Hand-read: torch.hub takes the first '-HEX.', not the last '-'.
    assert download.expected_hash('http://h/a-abc.b-12345678.pth') == 'abc'
    assert download.expected_hash('http://h/x-879422e0-v2.pth') is None


@pytest.mark.parametrize('case, expected',
                         [('wrong_hash', 'not the 0badc0de its name promises'),
                          ('truncated', 'stopped after'),
                          ('chunked', 'stopped after'),
                          ('nolength', 'probably truncated or corrupt'),
                          ('lying', 'probably truncated or corrupt'),
                          ('gzip', 'gzip-encoded'), ('missing', 'HTTP 404'),
                          ('loop', 'redirects cannot be followed (HTTP 302: '
                           'The HTTP server returned a redirect error that '
                           'would lead to an infinite loop)'),
                          ('elsewhere', 'redirects cannot be followed (HTTP '
                           '302: Found - Redirection to url \'file:///etc/'
                           'hostname\' is not allowed)')])
def test_bad_download_is_one_line_and_leaves_nothing(published, torch_home,
                                                     case, expected):
    name = published['name']
    shutil.copy(published['file'],
                published['site'] / 'groupvit_small-0badc0de.pth')
    url = dict(
        wrong_hash='groupvit_small-0badc0de.pth',
        nolength='nolength/plain.pth',  # no hash in the name to check
        lying='lying/plain.pth',
        missing='nowhere-5dad7770.pth').get(case, f'{case}/{name}')
    url = f'{published["base"]}/{url}'
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint(url)
    message = str(error.value)
    assert expected in message and '\n' not in message, message
    assert cached_files(torch_home) == []


def test_a_redirect_loop_is_one_error_line_from_the_cli(published, torch_home):
    url = f'{published["base"]}/loop/{published["name"]}'
    code, out = run_main(
        osp.join(REPO, 'tools', 'test.py'), [
            VOC, url, '--cfg-options',
            f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
        ])
    assert code == (f'error: cannot download {url}: its redirects cannot be '
                    f'followed (HTTP 302: The HTTP server returned a redirect '
                    f'error that would lead to an infinite loop); check the '
                    f'URL. ' + download.by_hand(url, cache_entry(url))), out
    assert 'Traceback' not in out


class _Exec:
    """Pickles as ``exec(...)``: refused by the safe loader if it parses
    the file."""

    def __reduce__(self):
        return exec, ('raise SystemExit', )


def test_the_hash_is_checked_before_anything_parses_the_bytes(
        published, torch_home, monkeypatch):
    """A hostile pickle served under a name whose SHA-256 it does not
    have: refused by the hash, before the zip or pickle is read."""
    torch.save(dict(meta=_Exec()), published['site'] / 'evil-0badc0de.pth')
    monkeypatch.setattr(zipfile, 'ZipFile', None)
    monkeypatch.setattr(torch, 'load', None)
    with pytest.raises(checkpoint_loader.WrongHash, match='its name promises'):
        CheckpointLoader.load_checkpoint(
            f'{published["base"]}/evil-0badc0de.pth')
    assert cached_files(torch_home) == []


@pytest.mark.parametrize('case', ['hostile', 'incomplete'])
def test_a_refused_download_is_named_by_its_url(published, torch_home, case):
    """The temporary file a download went to is deleted when it is refused:
    the message names the URL, and trusting it means a file of your own
    (``--trust-pickle`` takes no URL)."""
    path = published['site'] / f'{case}.pth'
    if case == 'hostile':
        torch.save(dict(meta=_Exec()), path)
    else:  # NVlabs keys without the text encoder
        state = tensors_of(published['file'])
        torch.save(
            dict(
                model={
                    'img_encoder.' + k[len('image_encoder.'):]: v
                    for k, v in state.items() if k.startswith('image_encoder.')
                }), path)
    url = f'{published["base"]}/{case}.pth'
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint(url)
    message = str(error.value)
    assert message.startswith(f'{url} ') and '.partial' not in message
    assert osp.dirname(cache_entry(url)) not in message
    if case == 'hostile':
        assert 'builtins.exec' in message or 'function exec' in message
        assert (f'download it (`curl -L -o FILE {url}`) and convert it once '
                f'with `tools/convert_weights.py --trust-pickle FILE '
                f'OUT.pth`') in message
    else:
        assert 'no text_encoder.* tensors' in message
    assert cached_files(torch_home) == []


def test_a_failed_download_is_fetched_again(published, torch_home):
    url = f'{published["base"]}/once/plain.pth'
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        CheckpointLoader.load_checkpoint(url)
    loaded = CheckpointLoader.load_checkpoint(url)
    assert_same_tensors(loaded['state_dict'], tensors_of(published['file']))


def test_a_long_file_name_is_cached_under_a_short_one(published, torch_home):
    url = f'{published["base"]}/named/plain.pth/{"x" * 300}.pth'
    loaded = CheckpointLoader.load_checkpoint(url)
    assert_same_tensors(loaded['state_dict'], tensors_of(published['file']))
    assert len(osp.basename(cache_entry(url))) < 120


def test_ctrl_c_during_a_download_keeps_nothing(published, torch_home,
                                                monkeypatch):
    copy = download._copy_body

    def interrupted(source, target, *limits):
        target.write(source.read(100))
        raise KeyboardInterrupt

    monkeypatch.setattr(download, '_copy_body', interrupted)
    with pytest.raises(CheckpointError, match='was interrupted; nothing'):
        CheckpointLoader.load_checkpoint(published['url'])
    assert cached_files(torch_home) == []
    monkeypatch.setattr(download, '_copy_body', copy)
    CheckpointLoader.load_checkpoint(published['url'])


@pytest.mark.parametrize(
    'case, limits, expected',
    [('endless', dict(MAX_BYTES=10**6), 'was stopped: the server sent more '
      'than GROUPVIT_DOWNLOAD_MAX_BYTES=1000000 bytes'),
     ('named', dict(MAX_BYTES=1000), 'was refused: the server announces '),
     ('trickle', dict(STALL_SECONDS=1), 'stalled: under 1024 bytes/s for 1 '
      's ('),
     ('stall', dict(STALL_SECONDS=1), 'stalled: under 1024 bytes/s for 1 s '
      '(')],
    ids=['endless', 'announced_too_large', 'trickle', 'no_byte'])
def test_an_endless_or_stalled_download_is_given_up(published, torch_home,
                                                    monkeypatch, case, limits,
                                                    expected):
    """A server sending zeros for ever, announcing more than the cap, one
    byte every 0.1 s, or half the file and then nothing."""
    for name, value in limits.items():
        monkeypatch.setenv(f'GROUPVIT_DOWNLOAD_{name}', str(value))
    url = f'{published["base"]}/{case}/{published["name"]}'
    start = time.monotonic()
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint(url)
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert message.startswith(f'the download of {url} {expected}'), message
    assert f'curl -L -o {cache_entry(url)} {url}' in message
    assert '\n' not in message
    assert cached_files(torch_home) == []


def test_a_limit_that_is_not_a_number(published, torch_home, monkeypatch):
    monkeypatch.setenv('GROUPVIT_DOWNLOAD_MAX_BYTES', '2GB')
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint(published['url'])
    assert str(error.value) == (
        "GROUPVIT_DOWNLOAD_MAX_BYTES='2GB': give a whole number above 0 "
        "(default 2147483648).")
    assert cached_files(torch_home) == []


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
    assert f'looked for at {cache_entry(url)}' in message
    assert f'curl -L -o {cache_entry(url)} {url}' in message
    assert cached_files(torch_home) == []


def test_the_curl_command_given_runs_as_written(tmp_path, monkeypatch,
                                                closed_port):
    """A URL with a query (``&`` would end the command in a shell) and a
    cache folder with a space: the shell reads the command given back into
    the URL and the cache file."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'my torch'))
    url = f'http://127.0.0.1:{closed_port}/weights.pth?a=1&b=2'
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint(url)
    command = str(error.value).split('`')[1]
    assert shlex.split(command) == ['curl', '-L', '-o', cache_entry(url), url]


@pytest.fixture
def hub(tmp_path, monkeypatch, torch_home):
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
    assert_same_tensors(checkpoint['state_dict'],
                        tensors_of(published['file']))
    assert checkpoint['meta']['groupvit_arch'] == published['arch']
    # Nothing written beside the hub's files: the converted file is ours.
    assert sorted(str(p) for p in hub.rglob('*')) == files
    assert osp.isfile(cache_entry('hf://nvidia/groupvit-gcc-yfcc'))


def test_hub_id_missing_offline_names_the_command_that_exists(hub):
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader.load_checkpoint('hf://nvidia/groupvit-gcc-redcaps')
    message = str(error.value)
    assert 'offline (HF_HUB_OFFLINE)' in message
    assert str(hub / 'models--nvidia--groupvit-gcc-redcaps') in message
    # The installed huggingface_hub ships `hf`, not `huggingface-cli`.
    assert osp.isfile(osp.join(osp.dirname(sys.executable), 'hf'))
    assert '`hf download nvidia/groupvit-gcc-redcaps config.json' in message


def test_hub_unreachable_fails_at_once(hub, monkeypatch, closed_port):
    """Without HF_HUB_OFFLINE, a hub that cannot be reached is not asked
    again and again: the cache is looked at, then the error."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(constants, 'ENDPOINT',
                        f'http://127.0.0.1:{closed_port}')
    asked = []
    monkeypatch.setattr('huggingface_hub.hf_hub_download',
                        lambda *a, **kw: asked.append(kw) or 1 / 0)
    with pytest.raises(CheckpointError, match='cannot get hf://a/b: offline'):
        CheckpointLoader.load_checkpoint('hf://a/b')
    assert asked and all(kw['local_files_only'] for kw in asked)


def test_hub_id_without_huggingface_hub(monkeypatch, torch_home):
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)
    with pytest.raises(CheckpointError, match='pip install huggingface_hub'):
        CheckpointLoader.load_checkpoint('hf://nvidia/groupvit-gcc-yfcc')


def test_malformed_hub_id(torch_home):
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
    assert cfg.load_from == local == cache_entry(published['url'])
    inferencer = MMSegInferencer(cfg, cfg.load_from, device='cpu')
    assert_same_tensors(inferencer.model.state_dict(),
                        tensors_of(published['file']))
    assert checkpoint_loader._READ_AHEAD == {}  # handed over, not kept
