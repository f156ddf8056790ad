# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmengine's loader of paths, URLs and ``hf://`` ids, the download cache
(:func:`fetch`) and the checkpoint's architecture set in the model config."""
import hashlib
import os
import os.path as osp
import re
import textwrap
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from groupvit_common.checks import is_int
from groupvit_common.errors import CheckpointError
from .arch import (HEADS, PARTS, arch_diff, canonical, check_arch, infer_arch,
                   released_arch)
from .convert_checkpoint import (recorded_arch, save_checkpoint,
                                 to_mmseg_checkpoint, weights_file)
from .download import (HUB_PREFIX, URL_PREFIXES, by_hand, download_hub,
                       download_url, expected_hash, is_remote)
from .safe_load import read_file


class WrongHash(CheckpointError):
    """A file whose SHA-256 is not the one its name promises."""


# The checkpoint last read (for its architecture), for the model's load of
# the same unchanged file: (real path, mtime, size) -> checkpoint.
_READ_AHEAD: Dict[Tuple, dict] = {}


def _file_key(path: str) -> Optional[Tuple]:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return osp.realpath(path), stat.st_mtime_ns, stat.st_size


def _keep(path: str, checkpoint) -> None:
    _READ_AHEAD.clear()
    _READ_AHEAD[_file_key(path)] = checkpoint


@CheckpointLoader.register_scheme(
    prefixes=('', HUB_PREFIX) + URL_PREFIXES, force=True)
def load_checkpoint(filename: str, map_location=None, model_dir=None):
    """mmengine's loader of a file, transformers folder, URL or hub id:
    read safely, a published one converted (tensors on CPU)."""
    filename = fetch(filename) if is_remote(filename) else osp.expanduser(
        filename)
    ahead = _READ_AHEAD.pop(_file_key(filename), None)
    if ahead is not None:
        return ahead
    path = weights_file(filename)
    return to_mmseg_checkpoint(read_file(path), path)


def cache_entry(source: str) -> str:
    """The cache file of a URL or hub id: its name and a hash of it."""
    name = source.split('?')[0].rstrip('/').rsplit('/', 1)[-1]
    name = re.sub(r'[^\w.-]', '_', osp.splitext(name)[0])[-80:].lstrip('.')
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'groupvit',
                    f'{name or "checkpoint"}-{key}.pth')


def fetch(source: str) -> str:
    """The cache file of a URL or hub id, made once (by local rank 0 in a
    distributed run, as mmengine's ``load_from_http``)."""
    entry = cache_entry(source)
    rank, world_size = get_dist_info()
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    error = None
    if local_rank == 0 or world_size == 1:
        try:
            _fetch_once(source, entry)
        except CheckpointError as e:
            error = e
    if world_size > 1:
        torch.distributed.barrier()
        if local_rank != 0 and error is None:
            _fetch_once(source, entry)
    if error is not None:
        raise error
    return entry


def _fetch_once(source: str, entry: str) -> None:
    if osp.isfile(entry):
        try:
            return _adopt(source, entry, entry)
        except WrongHash:
            raise
        except CheckpointError:
            os.remove(entry)  # unreadable: fetched again
    if source.startswith(HUB_PREFIX):
        return _adopt(source, download_hub(source), entry)
    print(f'Downloading {source} to {entry}', flush=True)
    download = download_url(source, entry)
    try:
        _adopt(source, download, entry)
    finally:
        if osp.exists(download):
            os.remove(download)


def _adopt(source: str, path: str, entry: str) -> None:
    """Read ``path`` once, its SHA-256 checked against the name of
    ``source`` before it is parsed (after, for an ``entry`` converted
    already); write it converted to ``entry``."""
    prefix = source.startswith(URL_PREFIXES) and expected_hash(source) or ''
    unverified = []

    def check(digest: str) -> None:
        if digest.startswith(prefix):
            return
        unverified.append(
            f'the checkpoint from {source} has SHA-256 '
            f'{digest[:len(prefix)]}..., not the {prefix} its name promises '
            f'(as torch.hub reads names: -HEX. is a SHA-256 prefix): the '
            f'download is damaged or not the published file; it was deleted '
            f'from {osp.dirname(entry)}. ' + by_hand(source, entry))
        if path != entry:
            raise WrongHash(unverified[0])

    # A URL's download is a temporary file: errors name the URL.
    url = source if path != entry and source.startswith(URL_PREFIXES) else None
    checkpoint = read_file(path, check_digest=check, url=url)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if path == entry and isinstance(
            meta, dict) and meta.get('groupvit_source') == source:
        return _keep(entry, checkpoint)
    if unverified:  # placed by hand
        os.remove(entry)
        raise WrongHash(unverified[0])
    checkpoint = to_mmseg_checkpoint(checkpoint, path, url)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} holds a {type(checkpoint).__name__}'
                              f', not a checkpoint.')
    meta = checkpoint.get('meta')
    checkpoint['meta'] = dict(
        meta if isinstance(meta, dict) else {}, groupvit_source=source)
    save_checkpoint(checkpoint, entry)
    _keep(entry, checkpoint)


def checkpoint_arch(checkpoint,
                    source: str = 'the checkpoint') -> Optional[dict]:
    """The architecture ``source`` records, else its tensor shapes tell,
    passed by :func:`check_arch`; None without a GroupViT."""
    if not isinstance(checkpoint, dict):
        return None
    arch = recorded_arch(checkpoint.get('meta'), source)
    if arch is not None:
        return arch
    try:
        arch = infer_arch(checkpoint.get('state_dict', checkpoint))
    except (KeyError, IndexError, AttributeError, TypeError):
        return None
    if set(arch) != set(PARTS):
        return None
    check_arch(arch, source)
    return arch


def _groupvit_models(model_cfg) -> list:
    """The GroupViT configs in ``model_cfg`` (a TTA wrapper's ``module``)."""
    found = []
    while isinstance(model_cfg, dict):
        if all(isinstance(model_cfg.get(p), dict) for p in PARTS):
            found.append(model_cfg)
        model_cfg = model_cfg.get('module')
    return found


def merge_arch(model_cfg: dict,
               arch: dict,
               source: str = 'the checkpoint') -> List[str]:
    """Fill ``model_cfg``'s encoder fields with ``arch`` (in place),
    refusing fields the config sets otherwise.

    Returns:
        list[str]: ``part.field`` of the fields set.
    """
    explicit = {
        part: {
            k: v
            for k, v in model_cfg[part].items() if k in arch.get(part, {})
        }
        for part in PARTS
    }
    conflicts = arch_diff(
        explicit, arch, says=('config says', 'checkpoint says'))
    if conflicts:
        raise CheckpointError(
            f'the config contradicts the architecture recorded in '
            f'{source}:\n  ' + '\n  '.join(conflicts) +
            '\nRemove these fields from the config (the checkpoint\'s '
            'architecture is applied), or use the checkpoint that matches '
            'the config.')
    applied = []
    for part in PARTS:
        for key, value in arch.get(part, {}).items():
            if key not in model_cfg[part]:
                model_cfg[part][key] = value
                applied.append(f'{part}.{key}')
    return applied


def resolve_load_from(cfg, checkpoint: Optional[str] = None) -> str:
    """Make ``cfg`` ready to load ``checkpoint`` (a path, transformers
    folder, URL or hub id; else ``cfg.load_from``), in place: fetched if
    remote, its architecture set in the model config and logged where it
    differs from the defaults, ``cfg.load_from`` the local file.

    Returns:
        str: The local file.
    """
    source = checkpoint or cfg.get('load_from')
    if not source:
        raise CheckpointError(
            'no checkpoint: the config sets no load_from. Pass CHECKPOINT (a '
            'file, a transformers folder, a URL or hf://OWNER/NAME), or set '
            'load_from in the config.')
    local = fetch(source) if is_remote(source) else osp.expanduser(source)
    if not osp.exists(local):
        raise CheckpointError(
            f'checkpoint not found: {source}. Check the path, give the '
            f'published weights (a URL, hf://nvidia/groupvit-gcc-yfcc, the '
            f'NVlabs .pth or a transformers folder; see README, '
            f'"Checkpoints"), or leave CHECKPOINT out to use the config\'s.')
    cfg.load_from = local
    models = _groupvit_models(cfg.get('model'))
    main = get_dist_info()[0] == 0 and os.environ.get('RANK', '0') == '0'
    if is_remote(source) and main:
        print_log(f'Weights {source}: {local}', logger='current')
    arch = None
    if models:
        loaded = load_checkpoint(local)
        _keep(local, loaded)
        arch = checkpoint_arch(loaded, source)
    if arch is None:
        return local
    for model_cfg in models:
        applied = merge_arch(model_cfg, arch, source)
    if not main:
        return local
    released = released_arch()
    changed = [
        f'{p}.{k}={v!r}'.replace(' ', '')
        for p, values in canonical(arch).items() for k, v in values.items()
        if f'{p}.{k}' in applied and v != released[p].get(k)
    ]
    if changed:
        print_log(
            f'Architecture from the checkpoint {source} (where it differs '
            f'from the config\'s defaults):\n' +
            textwrap.indent(textwrap.fill(', '.join(changed), 77), '  '),
            logger='current')
    for part in PARTS:
        if HEADS in arch.get(part, {}):
            continue
        given = HEADS in models[0][part]
        heads = models[0][part][HEADS] if given else released[part][HEADS]
        width = models[0][part].get('hidden_size')
        if is_int(width) and is_int(heads) and heads > 0 and width % heads:
            whose = 'the config\'s' if given else 'the default'
            raise CheckpointError(
                f'{source} does not record {part}.{HEADS}, and {whose} '
                f'{heads} does not divide its width {width}. Set '
                f'model.{part}.{HEADS} in the config to the value the model '
                f'was trained with (e.g. --cfg-options '
                f'model.{part}.{HEADS}=N).')
        if not given:
            print_log(
                f'{source} does not record {part}.{HEADS}; the config\'s '
                f'default {heads} is used. Set it in the config if the model '
                f'was trained with another value.',
                logger='current',
                level=30)
    return local
