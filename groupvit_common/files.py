# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Data files read with bounds and without running code, and work dir files
written without following symbolic links."""
import contextlib
import errno
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import warnings
import zlib
from typing import Any, Optional, Tuple, Union

from .errors import (ConfigCheckError, DataFileError, ImageLoadError,
                     LabelMapError)

#: Default bound of a text or JSON file.
MAX_TEXT_BYTES = 64 << 20
#: Deepest JSON nesting accepted (the project's files nest 5 levels).
MAX_JSON_DEPTH = 32
#: Most pixels an image header may state (2**27 decode to 384 MiB of RGB).
MAX_IMAGE_PIXELS = 1 << 27
#: Most bytes of an image file (MAX_IMAGE_PIXELS of 16-bit RGBA, stored raw).
MAX_IMAGE_BYTES = 1 << 30
#: Most elongated image accepted (long side / short side).
MAX_IMAGE_ASPECT = 64
#: Most entries :func:`refuse_links` looks at.
MAX_WALK_ENTRIES = 100_000
_KINDS = {
    stat.S_IFDIR: 'a folder',
    stat.S_IFIFO: 'a FIFO (named pipe)',
    stat.S_IFCHR: 'a device',
    stat.S_IFBLK: 'a device',
    stat.S_IFSOCK: 'a socket'
}
_WORK_DIR = ('the tool writes only files of its own in a work dir. Remove it, '
             'or use a fresh work dir.')


def file_kind(mode: int) -> str:
    """What a non-regular file is (``'a folder'``, ...) by its ``st_mode``."""
    return _KINDS.get(stat.S_IFMT(mode), 'not a regular file')


def read_bytes(path: str, limit: int, what: str = 'file') -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (a FIFO is
    refused unopened); ``what`` names the file in messages."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise DataFileError(f'the {what} {path} is '
                                f'{file_kind(info.st_mode)}, not a file. Name '
                                f'a regular file.')
        if info.st_size <= limit:  # a larger one is refused unread
            with open(path, 'rb') as f:
                data = f.read(limit + 1)
    except FileNotFoundError:
        raise DataFileError(f'{what} not found: {path}.') from None
    except OSError as e:
        raise DataFileError(
            f'cannot read the {what} {path}: {e.strerror}.') from None
    if info.st_size > limit or len(data) > limit:
        raise DataFileError(
            f'the {what} {path} is larger than {limit:,} bytes, more than '
            f'such a file can need; it is not a {what}, or it was damaged.')
    return data


def read_text(path: str,
              limit: int = MAX_TEXT_BYTES,
              what: str = 'text file') -> str:
    """A UTF-8 text file (a BOM dropped), bounded as :func:`read_bytes`."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise DataFileError(
            f'the {what} {path} is not UTF-8 text (byte {e.start}); save it '
            f'as UTF-8.') from None


def read_json(path: str,
              limit: int = MAX_TEXT_BYTES,
              what: str = 'JSON file') -> Any:
    """A JSON file of at most ``limit`` bytes and :data:`MAX_JSON_DEPTH`
    levels, without ``NaN`` or ``Infinity``."""
    text = read_text(path, limit, what)

    def refuse_constant(name):
        raise ValueError(f'{name} is not a JSON number')

    try:
        value = json.loads(text, parse_constant=refuse_constant)
        deep = _too_deep(value, MAX_JSON_DEPTH)
    except RecursionError:
        deep = True
    except ValueError as e:
        raise DataFileError(
            f'the {what} {path} is not valid JSON ({e}).') from None
    if deep:
        raise DataFileError(f'the {what} {path} nests deeper than '
                            f'{MAX_JSON_DEPTH} levels, which no file of this '
                            f'project does; it was damaged or crafted.')
    return value


def _too_deep(value: Any, levels: int) -> bool:
    """Whether ``value`` nests dicts and lists over ``levels`` deep."""
    if not isinstance(value, (dict, list)):
        return False
    children = value.values() if isinstance(value, dict) else value
    return levels < 1 or any(_too_deep(c, levels - 1) for c in children)


def read_gzip(path: str,
              limit: int,
              what: str = 'gzip file',
              data: Optional[bytes] = None) -> bytes:
    """The content of a gzip file of text (``data``: its bytes, if already
    read), refused as soon as it passes ``limit`` bytes decompressed."""
    if data is None:
        # Deflate's worst case adds about 0.03 % plus the gzip header.
        data = read_bytes(path, limit + limit // 100 + 1024, what)
    if not data.startswith(b'\x1f\x8b'):
        kind = 'a pickle' if data[:1] == b'\x80' else 'not gzip data'
        raise DataFileError(f'the {what} {path} is {kind}; it must be the '
                            f'gzip file it replaces.')
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = stream.decompress(data, limit + 1)
    except zlib.error as e:
        raise DataFileError(f'the {what} {path} is damaged ({e}).') from None
    if len(out) > limit:
        raise DataFileError(
            f'the {what} {path} expands to more than {limit:,} bytes, more '
            f'than such a file can need; it was damaged or crafted.')
    if out[:1] == b'\x80':
        raise DataFileError(f'the {what} {path} is a gzipped pickle; it must '
                            f'be the gzip file it replaces, which holds '
                            f'text.')
    if not stream.eof or stream.unused_data:
        raise DataFileError(
            f'the {what} {path} is truncated or has data after its end; '
            f'copy it again.')
    return out


def check_image(
    content: Union[str, bytes],
    source: str,
    max_aspect: Optional[float] = MAX_IMAGE_ASPECT
) -> Optional[Tuple[int, int]]:
    """Refuse an image (a path or its bytes) whose header states over
    :data:`MAX_IMAGE_PIXELS`, more elongation than ``max_aspect`` or nothing;
    its ``(width, height)``, None for a header Pillow cannot read."""
    from PIL import Image
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as img:
                width, height = img.size
        except Image.DecompressionBombError as e:  # Pillow's bound, above ours
            found = re.search(r'\((\d+) pixels\)', str(e))
            # Over Pillow's bound is over ours, whatever its message says.
            width, height = int(
                found.group(1)) if found else MAX_IMAGE_PIXELS + 1, 1
            max_aspect = None
        except Exception:
            return None
    if width < 1 or height < 1:
        raise ImageLoadError(f'{source} states an empty image ({width}x'
                             f'{height}).')
    if width * height > MAX_IMAGE_PIXELS:
        shape = f'{width}x{height}' if height > 1 else f'{width:,}'
        raise ImageLoadError(
            f'{source} is {shape} pixels, more than the {MAX_IMAGE_PIXELS:,} '
            f'accepted (decoded, they would take '
            f'{width * height * 3 / 2**30:.1f} GiB). Downscale it first.')
    if max_aspect is not None and max(
            width, height) > max_aspect * min(width, height):
        raise ImageLoadError(
            f'{source} is {width}x{height} pixels, more elongated than '
            f'{max_aspect}:1; crop it into less elongated pieces first.')
    return width, height


def image_mode(picture) -> str:
    """The mode of an open Pillow ``picture``, the one rule of which pixels
    load: ``'I;16'`` for 16-bit gray, which Pillow may open as 32-bit
    ``'I'`` (PNG and Netpbm hold 16 bits a sample at most), so that ``'I'``
    and ``'F'`` are 32-bit integers and floats, which decoders clip."""
    if picture.mode == 'I' and picture.format in ('PNG', 'PPM'):
        return 'I;16'
    return picture.mode


def read_label_map(path: str):
    """The pixels of a label map file (an array), its header first checked
    by :func:`check_image`; a file that does not decode is a
    ``DataFileError``."""
    import numpy as np
    from PIL import Image
    check_image(path, f'label map {path}')
    try:
        with Image.open(path) as picture:
            return np.array(picture)
    except (OSError, ValueError) as e:
        raise DataFileError(f'cannot decode the label map {path} ({e}); it '
                            f'is damaged: copy it again.') from None


def check_label_channels(labels, path: str) -> None:
    """Refuse a decoded label map (an array) of several channels."""
    if labels.ndim > 2:
        raise LabelMapError(
            f'Label map {path} has {labels.shape[2]} channels (a colour '
            f'picture of the labels?): label maps must be single-channel '
            f'index maps, each pixel the index of its class (grayscale or '
            f'palette PNG). Convert the colours to class indices first.')


_WRITE_FLAGS = {
    'w': os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    'a': os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    'r+b': os.O_RDWR,
    'a+': os.O_RDWR | os.O_CREAT | os.O_APPEND
}
_FOLDER = os.O_RDONLY | os.O_DIRECTORY


def open_work_file(work_dir: str, name: str, mode: str = 'w'):
    """Open ``work_dir/name`` (folders made as needed) for writing in
    ``mode`` (``'w'``, ``'a'``, ``'r+b'``, ``'a+'``) without following a
    symbolic link below ``work_dir``."""
    parts = [part for part in name.split('/') if part]
    path = os.path.join(work_dir, *parts)
    folder, done = None, path
    try:
        os.makedirs(work_dir, exist_ok=True)
        folder = os.open(work_dir, _FOLDER)
        done = work_dir
        for part in parts[:-1]:
            done = os.path.join(done, part)
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=folder)
            inner = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        done = path
        # Non-blocking: opening a FIFO must not wait for a reader.
        flags = _WRITE_FLAGS[mode] | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, 0o644, dir_fd=folder)
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            os.close(fd)
            raise DataFileError(
                f'{path} is {file_kind(kind)}, not a file: {_WORK_DIR}')
        os.set_blocking(fd, True)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise DataFileError(f'{done} is a symbolic link (or not a '
                                f'folder): {_WORK_DIR}') from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing only
            raise DataFileError(f'{path} is a FIFO (named pipe), not a file: '
                                f'{_WORK_DIR}') from None
        raise DataFileError(f'cannot write {path}: {e.strerror}.') from None
    finally:
        if folder is not None:
            os.close(folder)
    return os.fdopen(fd, mode, encoding=None if 'b' in mode else 'utf-8')


def refuse_links(folder: str, option: str) -> None:
    """Refuse ``folder`` (of the command-line ``option``) if a symbolic link
    lies below it or it holds over :data:`MAX_WALK_ENTRIES` entries."""
    todo, seen = [folder], 0
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise DataFileError(
                f'cannot read {option} {folder}: {e.strerror}.') from None
        for entry in entries:
            seen += 1
            if seen > MAX_WALK_ENTRIES:
                raise DataFileError(
                    f'{option} {folder} holds more than {MAX_WALK_ENTRIES:,} '
                    f'files, more than a run writes; use a fresh folder.')
            if entry.is_symlink():
                raise DataFileError(
                    f'{entry.path} is a symbolic link in {option} {folder}: '
                    f'the tool writes only files of its own there. Remove '
                    f'it, or use a fresh folder.')
            if entry.is_dir(follow_symlinks=False):
                todo.append(entry.path)


def file_sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def check_out_dir(path: str, option: str) -> None:
    """Create the folder of ``option`` (``--out``) and check that a file
    can be written there (``ConfigCheckError``) and that no symbolic link
    lies in it (``DataFileError``)."""
    existing = os.path.abspath(path)  # or its nearest ancestor that exists
    while not os.path.lexists(existing) and os.path.dirname(
            existing) != existing:
        existing = os.path.dirname(existing)
    if os.path.exists(existing) and not os.path.isdir(existing):
        where = ('is a file' if existing == os.path.abspath(path) else
                 f'lies under the file {existing}')
        raise ConfigCheckError(
            f'{option} {path} {where}, not a folder. Give a folder path (it '
            f'is created if missing).')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigCheckError(
            f'{option} {path} cannot be written ({e.strerror or e}). Give a '
            f'folder you can write to.') from None
    refuse_links(path, option)
