# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The one way a data file is read: with bounds, and without running code.

Every file a command reads may come from anyone: a vocabulary, a
``deploy.json``, a tokenizer table, progress records, an image. A small
file must not claim the machine's memory or time, so each reader here
bounds what the file can claim (its bytes, the nesting of its JSON, its
size once decompressed, its pixels as the header states them, checked
before anything is decoded) and refuses anything else with one
:class:`~.errors.DataFileError` naming the file, the problem and the fix.
Nothing here unpickles or evaluates: JSON, text and image headers only.

Checkpoints are read by :mod:`mmseg_groupvit.weights`, which needs PyTorch;
its byte reading goes through :func:`read_bytes` too.

What a command writes into its work dir goes through
:func:`open_work_file`, which follows no symbolic link there: a link
planted in a shared work dir must not make the tool overwrite a file
elsewhere.
"""
import errno
import hashlib
import io
import json
import os
import re
import stat
import warnings
import zlib
from typing import Any, Optional, Tuple, Union

from .errors import DataFileError, ImageLoadError

__all__ = [
    'MAX_IMAGE_PIXELS', 'MAX_IMAGE_ASPECT', 'read_bytes', 'read_text',
    'read_json', 'read_gzip', 'check_image', 'check_json_depth', 'file_kind',
    'open_work_file', 'refuse_links', 'file_sha256'
]

MiB = 1 << 20
#: Default bound of a text or JSON file (vocabularies, deploy.json,
#: config.json, progress records).
MAX_TEXT_BYTES = 64 * MiB
#: Deepest JSON nesting accepted (the project's files nest 5 levels).
MAX_JSON_DEPTH = 32
#: Most pixels an image may state in its header: 2**27 (134 MP, e.g.
#: 11585 x 11585) decode to 384 MiB of RGB; more is refused before any
#: pixel is decoded (Pillow's own bound, twice its MAX_IMAGE_PIXELS, is
#: higher).
MAX_IMAGE_PIXELS = 1 << 27
#: Most elongated image accepted (long side / short side).
MAX_IMAGE_ASPECT = 64


def file_kind(mode: int) -> str:
    """What a path that is not a regular file is, from its ``st_mode``
    (``'a FIFO (named pipe)'``, ``'a device'``, ...), for messages."""
    if stat.S_ISDIR(mode):
        return 'a folder'
    if stat.S_ISFIFO(mode):
        return 'a FIFO (named pipe)'
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return 'a device'
    if stat.S_ISSOCK(mode):
        return 'a socket'
    return 'not a regular file'


def read_bytes(path: str, limit: int, what: str = 'file') -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    A FIFO, a device (``/dev/zero``), a socket or a folder is named as such
    before it is opened (opening a FIFO would wait for a writer).

    Args:
        path (str): The file.
        limit (int): Most bytes accepted.
        what (str): What the file is, for the message (``'vocabulary
            file'``).

    Returns:
        bytes: The whole file.

    Raises:
        DataFileError: Missing, not a regular file, unreadable or larger
            than ``limit``.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataFileError(f'{what} not found: {path}.') from None
    except OSError as e:
        raise DataFileError(
            f'cannot read the {what} {path}: {e.strerror}.') from None
    if not stat.S_ISREG(info.st_mode):
        raise DataFileError(f'the {what} {path} is {file_kind(info.st_mode)}'
                            f', not a file. Name a regular file.')
    data = b''
    # A file that states more bytes is refused before any is read.
    if info.st_size <= limit:
        try:
            with open(path, 'rb') as f:
                data = f.read(limit + 1)
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
    """A UTF-8 text file of at most ``limit`` bytes (a BOM is dropped).

    Raises:
        DataFileError: As :func:`read_bytes`, or not UTF-8 text.
    """
    data = read_bytes(path, limit, what)
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise DataFileError(
            f'the {what} {path} is not UTF-8 text (byte {e.start}); save it '
            f'as UTF-8.') from None


def check_json_depth(value: Any,
                     source: str,
                     max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Return ``value`` if its lists and objects nest at most ``max_depth``
    deep (checked without recursion).

    Raises:
        DataFileError: Nested deeper, naming ``source``.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(
            item, dict) else (item if isinstance(item, list) else ())
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > max_depth:
                    raise DataFileError(
                        f'{source} nests deeper than {max_depth} levels, '
                        f'which no file of this project does; it was '
                        f'damaged or crafted.')
                stack.append((child, depth + 1))
    return value


def read_json(path: str,
              limit: int = MAX_TEXT_BYTES,
              what: str = 'JSON file',
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON file of at most ``limit`` bytes and ``max_depth`` levels.

    Numbers that JSON does not have (``NaN``, ``Infinity``) are refused.

    Raises:
        DataFileError: As :func:`read_text`, broken JSON, non-standard
            numbers or nesting too deep.
    """
    text = read_text(path, limit, what)

    def refuse_constant(name):
        raise ValueError(f'{name} is not a JSON number')

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except RecursionError:
        raise DataFileError(
            f'the {what} {path} nests deeper than {max_depth} levels, which '
            f'no file of this project does; it was damaged or crafted.'
        ) from None
    except ValueError as e:
        raise DataFileError(
            f'the {what} {path} is not valid JSON ({e}).') from None
    return check_json_depth(value, f'the {what} {path}', max_depth)


def read_gzip(path: str, limit: int, what: str = 'gzip file') -> bytes:
    """The decompressed content of a gzip file, refused as soon as it
    passes ``limit`` bytes (a small file can expand a thousandfold).

    Raises:
        DataFileError: As :func:`read_bytes`, not gzip, damaged, or larger
            than ``limit`` once decompressed.
    """
    # Deflate's worst case adds about 0.03 % plus the gzip header.
    data = read_bytes(path, limit + limit // 100 + 1024, what)
    if not data.startswith(b'\x1f\x8b'):
        kind = 'a pickle' if data[:1] == b'\x80' else 'not gzip data'
        raise DataFileError(f'the {what} {path} is {kind}; it must be the '
                            f'gzip file it replaces.')
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        # At most limit + 1 bytes are ever expanded.
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
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_aspect: Optional[float] = MAX_IMAGE_ASPECT
) -> Optional[Tuple[int, int]]:
    """Refuse an image by the size its header states, before any pixel is
    decoded.

    Args:
        content (str | bytes): A path or the encoded bytes.
        source (str): The file, for the message.
        max_pixels (int): Most pixels accepted.
        max_aspect (float, optional): Most elongated shape accepted (long
            side / short side); None for no bound.

    Returns:
        tuple[int, int] | None: ``(width, height)``; None when Pillow
        cannot read the header (the decoder then decides).

    Raises:
        ImageLoadError: Too many pixels (a decompression bomb: a small file
            that decodes to gigabytes), too elongated, or empty.
    """
    from PIL import Image
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as img:
                width, height = img.size
        except Image.DecompressionBombError as e:
            # Pillow's own bound (2 x its MAX_IMAGE_PIXELS) is above ours.
            found = re.search(r'\((\d+) pixels\)', str(e))
            width, height = int(found.group(1)) if found else max_pixels, 1
            max_aspect = None
        except Exception:  # not an image Pillow knows: the decoder decides
            return None
    if width < 1 or height < 1:
        raise ImageLoadError(f'{source} states an empty image ({width}x'
                             f'{height}).')
    if width * height > max_pixels:
        shape = f'{width}x{height}' if height > 1 else f'{width:,}'
        raise ImageLoadError(
            f'{source} is {shape} pixels, more than the {max_pixels:,} '
            f'accepted (decoded, they would take '
            f'{width * height * 3 / 2**30:.1f} GiB). Downscale it first.')
    if max_aspect is not None and max(
            width, height) > max_aspect * min(width, height):
        raise ImageLoadError(
            f'{source} is {width}x{height} pixels, more elongated than '
            f'{max_aspect}:1; crop it into less elongated pieces first.')
    return width, height


#: ``open_work_file`` modes: the flags of ``os.open``.
_WRITE_FLAGS = {
    'w': os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    'a': os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    'r+b': os.O_RDWR,
    'a+': os.O_RDWR | os.O_CREAT | os.O_APPEND,
}


def open_work_file(work_dir: str, name: str, mode: str = 'w'):
    """Open ``work_dir/name`` for writing without following a symbolic
    link below ``work_dir`` (the work dir itself may be one: the user named
    it). The work dir and the folders of ``name`` are created if
    missing.

    Args:
        work_dir (str): The folder the command writes in.
        name (str): The file, relative to ``work_dir`` (``'progress/
            meta.json'``).
        mode (str): ``'w'``, ``'a'``, ``'r+b'`` (no creation) or ``'a+'``.

    Returns:
        file: Text mode (UTF-8) unless ``mode`` has ``b``.

    Raises:
        DataFileError: The file or one of its folders is a symbolic link
            (or not a folder), or cannot be opened.
    """
    parts = [part for part in name.split('/') if part]
    path = os.path.join(work_dir, *parts)
    folder, done = None, path
    try:
        os.makedirs(work_dir, exist_ok=True)
        folder = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)
        done = work_dir
        for part in parts[:-1]:
            done = os.path.join(done, part)
            try:
                os.mkdir(part, 0o755, dir_fd=folder)
            except FileExistsError:
                pass
            inner = os.open(
                part,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                dir_fd=folder)
            os.close(folder)
            folder = inner
        done = path
        # Non-blocking: opening a FIFO must not wait for a reader.
        fd = os.open(
            parts[-1],
            _WRITE_FLAGS[mode] | os.O_NOFOLLOW | os.O_CLOEXEC
            | os.O_NONBLOCK,
            0o644,
            dir_fd=folder)
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            os.close(fd)
            raise DataFileError(
                f'{path} is {file_kind(kind)}, not a file: the tool writes '
                f'only files of its own in a work dir. Remove it, or use a '
                f'fresh work dir.')
        os.set_blocking(fd, True)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise DataFileError(
                f'{done} is a symbolic link (or not a folder): the tool '
                f'writes only files of its own in a work dir. Remove it, or '
                f'use a fresh work dir.') from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing only
            raise DataFileError(
                f'{path} is a FIFO (named pipe), not a file: the tool '
                f'writes only files of its own in a work dir. Remove it, or '
                f'use a fresh work dir.') from None
        raise DataFileError(f'cannot write {path}: {e.strerror}.') from None
    finally:
        if folder is not None:
            os.close(folder)
    return os.fdopen(fd, mode, encoding=None if 'b' in mode else 'utf-8')


#: Most entries :func:`refuse_links` looks at.
MAX_WALK_ENTRIES = 100_000


def refuse_links(folder: str, option: str) -> None:
    """Refuse a folder a command writes in if a symbolic link lies below
    it (the folder itself may be one: the user named it).

    The tools (and mmengine, whose log folder ``WORK_DIR/YYYYmmdd_HHMMSS``
    has a predictable name) write files there by their names; a link
    planted in a shared folder would make them overwrite a file elsewhere.
    A link planted after this check (a race) is not caught here.

    Args:
        folder (str): The folder; a missing one passes.
        option (str): Its command-line option, for messages
            (``--work-dir``).

    Raises:
        DataFileError: A symbolic link below ``folder`` (the first found),
            or more than :data:`MAX_WALK_ENTRIES` entries.
    """
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
    """The SHA-256 (hex) of a file's content, read in 4 MiB blocks."""
    sha = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            sha.update(block)
    return sha.hexdigest()
