# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Published checkpoints by URL or hub id, downloaded once and checked.

- ``http(s)://.../name-<hex>.pth``: downloaded into torch hub's checkpoint
  folder (``$TORCH_HOME/hub/checkpoints``, where mmengine and torchvision
  put theirs). A name that carries a hash (the release names do) is
  verified against the SHA-256 of the bytes, like
  ``torch.hub.load_state_dict_from_url(check_hash=True)``; a file in the
  cache is verified too, so a copy placed by hand is checked. The bytes go
  to a temporary name first and are renamed only when complete and
  verified, so a partial download never stays as a valid file.
- ``hf://owner/name[@revision]``: the transformers weights of a Hugging
  Face model, through ``huggingface_hub`` and its cache (``HF_HOME``,
  ``HF_HUB_OFFLINE`` honoured); an optional dependency.

What comes back is a local file; :mod:`.checkpoint_loader` reads it with
the safe loader and converts it, like any other checkpoint.
"""
import hashlib
import os
import os.path as osp
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from typing import Optional

import torch
from mmengine.dist import get_dist_info

from groupvit_common.errors import CheckpointError
from .io import HF_WEIGHT_FILES

URL_PREFIXES = ('http://', 'https://')
HUB_PREFIX = 'hf://'
# torch.hub's rule: the hash is what follows the last '-' of the name.
HASH_REGEX = re.compile(r'-([a-f0-9]{6,64})\.')
_CHUNK = 1 << 20


def is_remote(source: str) -> bool:
    """Whether ``source`` is a URL or a hub id rather than a local path."""
    return isinstance(source, str) and source.startswith(URL_PREFIXES +
                                                         (HUB_PREFIX, ))


def cache_dir() -> str:
    """torch hub's checkpoint folder, where downloads go."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def expected_hash(url: str) -> Optional[str]:
    """The SHA-256 prefix a release-style name carries, or None."""
    match = HASH_REGEX.search(osp.basename(url.split('?')[0]))
    return match.group(1) if match else None


def sha256(path: str) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(url: str, dst: str) -> str:
    return (f'To place it by hand, download it where you have access, '
            f'e.g. `curl -L -o {dst} {url}`, or pass a local file.')


def _check_hash(path: str, url: str, dst: str) -> None:
    """Refuse (and delete) ``path`` when its SHA-256 does not start with the
    hash in the URL's name."""
    prefix = expected_hash(url)
    if prefix is None:
        return
    digest = sha256(path)
    if not digest.startswith(prefix):
        os.remove(path)
        raise CheckpointError(
            f'the checkpoint from {url} has SHA-256 '
            f'{digest[:len(prefix)]}..., not the {prefix} its name '
            f'promises: the download is damaged or not the published file; '
            f'it was deleted from {dst}. ' + _by_hand(url, dst))


def _fetch(url: str, dst: str) -> None:
    """Stream ``url`` to a temporary file beside ``dst`` and rename it to
    ``dst`` once complete (length as announced) and verified."""
    os.makedirs(osp.dirname(dst), exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(
        dir=osp.dirname(dst),
        prefix=osp.basename(dst) + '.',
        suffix='.partial',
        delete=False)
    try:
        with tmp, urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get('Content-Length')
            shutil.copyfileobj(response, tmp, _CHUNK)
            received = tmp.tell()
        if length is not None and received != int(length):
            raise CheckpointError(
                f'the download of {url} stopped after {received} of '
                f'{length} bytes; nothing was kept in {osp.dirname(dst)}. '
                f'Run again. ' + _by_hand(url, dst))
        _check_hash(tmp.name, url, dst)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp.name, 0o666 & ~umask)  # as a plainly written file
        os.replace(tmp.name, dst)
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        reason = getattr(e, 'reason', None) or e
        if isinstance(e, urllib.error.HTTPError):
            reason = f'HTTP {e.code} {e.reason}'
        raise CheckpointError(
            f'cannot download {url} ({reason}); offline or the server '
            f'failed. The checkpoint is looked for at {dst}. ' +
            _by_hand(url, dst)) from None
    finally:
        if osp.exists(tmp.name):
            os.remove(tmp.name)


def download_url(url: str, model_dir: Optional[str] = None) -> str:
    """The local copy of a checkpoint URL, downloaded (once) if needed.

    In a distributed run only local rank 0 downloads; the other processes
    wait for it (the pattern of mmengine's ``load_from_http``).

    Args:
        url (str): ``http(s)://`` address of a checkpoint.
        model_dir (str, optional): Cache folder; torch hub's checkpoint
            folder when None.

    Returns:
        str: Path of the verified file in the cache.

    Raises:
        CheckpointError: Download failed, truncated or wrong hash: the URL,
            the cache path and how to place the file by hand.
    """
    name = osp.basename(url.split('?')[0])
    dst = osp.join(model_dir or cache_dir(), name)
    rank, world_size = get_dist_info()
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    error = None
    if local_rank == 0 or world_size == 1:
        try:
            _download_once(url, dst)
        except CheckpointError as e:
            error = e
    if world_size > 1:
        torch.distributed.barrier()
        if local_rank != 0 and error is None:
            _download_once(url, dst)
    if error is not None:
        raise error
    return dst


def _download_once(url: str, dst: str) -> None:
    if osp.isfile(dst):
        _check_hash(dst, url, dst)
        return
    print(f'Downloading {url} to {dst}', flush=True)
    _fetch(url, dst)


def parse_hub_id(source: str):
    """``hf://owner/name[@revision]`` -> ``(repo_id, revision)``."""
    body = source[len(HUB_PREFIX):].strip('/')
    repo_id, _, revision = body.partition('@')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise CheckpointError(
            f'{source} is not a hub id: write hf://OWNER/NAME, e.g. '
            f'hf://nvidia/groupvit-gcc-yfcc (optionally @REVISION).')
    return repo_id, revision or None


def download_hub(source: str) -> str:
    """The cached weights file of a Hugging Face model (its
    ``config.json`` beside it), fetched into the hub cache if needed.

    Args:
        source (str): ``hf://owner/name[@revision]``.

    Returns:
        str: Path of ``model.safetensors`` or ``pytorch_model.bin`` in the
        hub cache's snapshot folder.
    """
    repo_id, revision = parse_hub_id(source)
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError
    except ImportError:
        raise CheckpointError(
            f'{source} needs the package huggingface_hub: '
            f'`pip install huggingface_hub`, or pass a local transformers '
            f'folder or the NVlabs .pth.') from None
    folder = osp.join(constants.HF_HUB_CACHE,
                      'models--' + repo_id.replace('/', '--'))
    weights = ' or '.join(HF_WEIGHT_FILES)
    hand = (f'Download the model (config.json and {weights}) on a '
            f'machine with access, e.g. `huggingface-cli download '
            f'{repo_id}`, and copy the hub cache folder {folder}, or pass the '
            f'files\' folder as a local checkpoint.')
    try:
        hf_hub_download(repo_id, 'config.json', revision=revision)
        for name in HF_WEIGHT_FILES:
            try:
                return hf_hub_download(repo_id, name, revision=revision)
            except EntryNotFoundError:
                continue
    except Exception as e:  # offline, no such repo, server errors
        kind = 'offline (HF_HUB_OFFLINE)' if constants.is_offline_mode() else \
            'the hub could not be reached or refused'
        raise CheckpointError(
            f'cannot get {source}: {kind} ({type(e).__name__}: '
            f'{str(e).split(". ")[0].rstrip(".")}). The hub cache is '
            f'{folder}. ' + hand) from None
    raise CheckpointError(
        f'{source} has none of {", ".join(HF_WEIGHT_FILES)} in the hub cache '
        f'{folder}. ' + hand)


def resolve_checkpoint(source: str) -> str:
    """A local file for a checkpoint given as a path, a transformers
    folder, a URL or a hub id (downloading into the cache if needed).

    Returns:
        str: The file to read; for a transformers folder its weights file
        (``config.json`` is read beside it).
    """
    if source.startswith(URL_PREFIXES):
        return download_url(source)
    if source.startswith(HUB_PREFIX):
        return download_hub(source)
    path = osp.expanduser(source)
    if osp.isdir(path):
        for name in HF_WEIGHT_FILES:
            if osp.isfile(osp.join(path, name)):
                return osp.join(path, name)
    return path
