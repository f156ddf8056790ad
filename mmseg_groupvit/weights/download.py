# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A published checkpoint's bytes: a URL streamed to a file, an
``hf://owner/name[@revision]`` fetched into the Hugging Face hub cache."""
import http.client
import os
import os.path as osp
import re
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from groupvit_common.errors import CheckpointError, first_line
from .convert_checkpoint import HF_WEIGHT_FILES
from .safe_load import curl_command

URL_PREFIXES = ('http://', 'https://')
HUB_PREFIX = 'hf://'
# torch.hub's rule, searched in the file name of the URL's path.
HASH_REGEX = re.compile(r'-([a-f0-9]*)\.')
#: The largest body, and the seconds under MIN_RATE bytes/s after which a
#: transfer is given up (as curl's ``--speed-limit 1024 --speed-time 60``).
LIMITS = dict(
    GROUPVIT_DOWNLOAD_MAX_BYTES=2 << 30, GROUPVIT_DOWNLOAD_STALL_SECONDS=60)
MIN_RATE = 1024


def is_remote(source) -> bool:
    """Whether ``source`` is a URL or a hub id."""
    return isinstance(source, str) and source.startswith(URL_PREFIXES +
                                                         (HUB_PREFIX, ))


def expected_hash(url: str) -> Optional[str]:
    """The SHA-256 prefix in a name, as torch.hub reads it (None or '')."""
    match = HASH_REGEX.search(osp.basename(urllib.parse.urlsplit(url).path))
    return match.group(1) if match else None


def by_hand(url: str, dst: str) -> str:
    return (f'To place it by hand, download it where you have access, '
            f'e.g. `{curl_command(url, dst)}`, or pass a local file.')


def download_url(url: str, entry: str) -> str:
    """Stream ``url`` into a temporary file beside the cache file
    ``entry`` (returned, for the caller to check and delete); nothing is
    left on failure."""
    request = urllib.request.Request(
        url, headers={'Accept-Encoding': 'identity'})
    os.makedirs(osp.dirname(entry), exist_ok=True)
    # Nothing between the file's creation and the try (Ctrl-C would leave it)
    f = tempfile.NamedTemporaryFile(
        dir=osp.dirname(entry),
        prefix=osp.basename(entry) + '.',
        suffix='.partial',
        delete=False)
    try:
        max_bytes, stall = (_limit(name) for name in LIMITS)
        with f, urllib.request.urlopen(request, timeout=stall) as response:
            encoding = response.headers.get('Content-Encoding', 'identity')
            if encoding != 'identity':
                raise CheckpointError(
                    f'the server sent {url} {encoding}-encoded, not the file '
                    f'itself; nothing was kept. ' + by_hand(url, entry))
            length = response.headers.get('Content-Length')
            try:
                _copy_body(response, f, max_bytes, stall)
            except http.client.IncompleteRead:
                length = length or 'the announced'
            received = f.tell()
        if length is not None and str(received) != length:
            raise CheckpointError(
                f'the download of {url} stopped after {received} of {length} '
                f'bytes; nothing was kept in {osp.dirname(entry)}. Run '
                f'again. ' + by_hand(url, entry))
        return f.name
    except BaseException as e:
        os.remove(f.name)
        if isinstance(e, CheckpointError) or not isinstance(
                e, (_Refused, KeyboardInterrupt, OSError, ValueError,
                    http.client.HTTPException)):
            raise
        raise CheckpointError(_failure(url, entry, e)) from None


def _failure(url: str, entry: str, e: BaseException) -> str:
    """Why a download failed, that nothing was kept, and the fix."""
    kept = f'nothing was kept in {osp.dirname(entry)}.'
    if isinstance(e, _Refused):
        return f'the download of {url} {e}; {kept} ' + by_hand(url, entry)
    if isinstance(e, KeyboardInterrupt):
        return (f'the download of {url} was interrupted; {kept} Run again to '
                f'download it.')
    reason = first_line(getattr(e, 'reason', None) or e)
    if isinstance(e, urllib.error.HTTPError):
        if 300 <= e.code < 400:  # a loop, or to a scheme not followed
            return (f'cannot download {url}: its redirects cannot be '
                    f'followed (HTTP {e.code}: {reason}); check the URL. ' +
                    by_hand(url, entry))
        reason = f'HTTP {e.code} {reason}'
    return (f'cannot download {url} ({reason}); offline or the server '
            f'failed. The checkpoint is looked for at {entry}. ' +
            by_hand(url, entry))


class _Refused(Exception):
    """A transfer given up (too large or too slow)."""


def _limit(name: str) -> int:
    value = os.environ.get(name, str(LIMITS[name]))
    if not value.isdigit() or int(value) < 1:
        raise CheckpointError(f'{name}={value!r}: give a whole number above 0 '
                              f'(default {LIMITS[name]}).')
    return int(value)


def _copy_body(response, f, max_bytes: int, stall: int) -> None:
    """Copy at most ``max_bytes``, at least :data:`MIN_RATE` bytes/s over
    every ``stall`` seconds."""
    announced = response.headers.get('Content-Length', '')
    if announced.isdigit() and int(announced) > max_bytes:
        raise _Refused(f'was refused: the server announces {announced} '
                       f'bytes, over GROUPVIT_DOWNLOAD_MAX_BYTES={max_bytes}')
    since, window = time.monotonic(), 0
    while True:
        try:
            chunk = response.read1(1 << 20)
        except TimeoutError:  # no byte for `stall` seconds
            chunk = None
        if chunk == b'':
            return
        if chunk:
            f.write(chunk)
            window += len(chunk)
        if f.tell() > max_bytes:
            raise _Refused(f'was stopped: the server sent more than '
                           f'GROUPVIT_DOWNLOAD_MAX_BYTES={max_bytes} bytes')
        elapsed = time.monotonic() - since
        if chunk is None or elapsed >= stall:
            if chunk is None or window < MIN_RATE * elapsed:
                raise _Refused(
                    f'stalled: under {MIN_RATE} bytes/s for {stall} s '
                    f'({f.tell()} bytes received; on a slow link, raise '
                    f'GROUPVIT_DOWNLOAD_STALL_SECONDS={stall})')
            since, window = time.monotonic(), 0


def download_hub(source: str) -> str:
    """The weights file (``config.json`` beside it) of a hub id in the hub
    cache, fetched unless there (offline: refused at once)."""
    repo_id, _, revision = source[len(HUB_PREFIX):].strip('/').partition('@')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise CheckpointError(
            f'{source} is not a hub id: write hf://OWNER/NAME, e.g. '
            f'hf://nvidia/groupvit-gcc-yfcc (optionally @REVISION).')
    try:
        from huggingface_hub import constants, hf_hub_download
    except ImportError:
        raise CheckpointError(
            f'{source} needs the package huggingface_hub: '
            f'`pip install huggingface_hub`, or pass a local transformers '
            f'folder or the NVlabs .pth.') from None
    folder = osp.join(constants.HF_HUB_CACHE,
                      'models--' + repo_id.replace('/', '--'))
    hand = (f'The hub cache is {folder}. Fill it on a machine with access, '
            f'e.g. `hf download {repo_id} config.json '
            f'{HF_WEIGHT_FILES[0]}`, and copy it here, or pass the files\' '
            f'folder as a local checkpoint.')
    errors = []

    def get(local_only: bool) -> Optional[str]:
        for name in HF_WEIGHT_FILES:
            try:
                for file in ('config.json', name):
                    path = hf_hub_download(
                        repo_id,
                        file,
                        revision=revision or None,
                        local_files_only=local_only)
                return path
            except Exception as e:  # not cached, no such repo or file
                errors.append(e)

    path = get(local_only=True)
    if path is not None:
        return path
    offline = constants.is_offline_mode()
    if not (offline or urllib.request.getproxies().get('https')):
        parts = urllib.parse.urlsplit(constants.ENDPOINT)
        try:  # does the hub answer in 3 s?
            socket.create_connection((parts.hostname, parts.port or 443),
                                     timeout=3).close()
        except OSError:
            offline = True
    path = None if offline else get(local_only=False)
    if path is not None:
        return path
    error = errors[0]
    kind = ('offline' + ' (HF_HUB_OFFLINE)' * constants.is_offline_mode()
            if offline else 'the hub could not be reached or refused')
    raise CheckpointError(f'cannot get {source}: {kind} '
                          f'({type(error).__name__}: {first_line(error)}). ' +
                          hand)
