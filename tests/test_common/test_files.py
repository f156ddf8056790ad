# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The bounded readers: hostile files are refused with one message each,
before they can claim memory or time."""
import gzip
import io
import os
import pickle
import resource
import signal
import struct
import zlib

import pytest
from PIL import Image

from groupvit_common import files
from groupvit_common.errors import USER_ERRORS, DataFileError
from groupvit_common.files import (check_image, open_work_file, read_bytes,
                                   read_gzip, read_json, read_text,
                                   refuse_links)


def test_regular_file_within_its_bound_is_read(tmp_path):
    path = tmp_path / 'a.txt'
    path.write_bytes(b'\xef\xbb\xbfcat\ndog\n')
    assert read_bytes(str(path), 11) == b'\xef\xbb\xbfcat\ndog\n'
    assert read_text(str(path), 11) == 'cat\ndog\n'
    with pytest.raises(DataFileError, match='larger than 10 bytes'):
        read_bytes(str(path), 10)


def test_a_file_larger_than_its_bound_is_refused_before_it_is_read(tmp_path):
    """A sparse 8 GiB file takes no disk; reading up to the 1 GiB bound
    would take 1 GiB of memory: refused by its size before any read."""
    path = tmp_path / 'sparse'
    with open(path, 'wb') as f:
        f.truncate(8 << 30)
    memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataFileError, match='larger than 1,073,741,824'):
        read_bytes(str(path), 1 << 30)
    # Peak resident memory (kilobytes) grew by far less than the bound.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory < (
        256 << 10)


def test_not_a_regular_file_is_named_before_it_is_opened(tmp_path):
    fifo = tmp_path / 'pipe'
    os.mkfifo(fifo)
    # Opening a FIFO without a writer would block: the check comes first.
    with pytest.raises(DataFileError, match='FIFO'):
        read_bytes(str(fifo), 100, 'vocabulary file')
    with pytest.raises(DataFileError, match='a device'):
        read_bytes('/dev/zero', 100)
    with pytest.raises(DataFileError, match='a folder'):
        read_bytes(str(tmp_path), 100)
    with pytest.raises(DataFileError, match='vocabulary file not found'):
        read_bytes(str(tmp_path / 'missing'), 100, 'vocabulary file')
    assert DataFileError in USER_ERRORS


def test_text_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / 'latin1.txt'
    path.write_bytes('café'.encode('latin-1'))
    with pytest.raises(DataFileError, match='not UTF-8 text'):
        read_text(str(path))


def test_json_bounds(tmp_path):
    path = tmp_path / 'x.json'
    path.write_text('{"a": [1, {"b": 2}]}')
    assert read_json(str(path)) == {'a': [1, {'b': 2}]}
    # Nesting: refused at the bound, whether or not json itself recurses.
    path.write_text('[' * 33 + ']' * 33)
    with pytest.raises(DataFileError, match='deeper than 32'):
        read_json(str(path))
    path.write_text('[' * 32 + ']' * 32)
    assert read_json(str(path)) is not None
    path.write_text('[' * 200000 + ']' * 200000)
    with pytest.raises(DataFileError, match='deeper'):
        read_json(str(path))
    path.write_text('{"mean": NaN}')
    with pytest.raises(DataFileError, match='NaN is not a JSON number'):
        read_json(str(path))
    path.write_text('{"a": ')
    with pytest.raises(DataFileError, match='not valid JSON'):
        read_json(str(path))


def test_gzip_bomb_is_refused_without_expanding_it(tmp_path):
    path = tmp_path / 'bpe.txt.gz'
    # 256 MiB of zeros compress to about 250 KiB.
    with gzip.open(path, 'wb') as f:
        block = bytes(1 << 20)
        for _ in range(256):
            f.write(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataFileError, match='expands to more than'):
        read_gzip(str(path), 8 << 20, 'tokenizer file')
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 128 * 1024  # far below the 256 MiB it holds
    small = tmp_path / 'ok.gz'
    small.write_bytes(gzip.compress(b'hello'))
    assert read_gzip(str(small), 5) == b'hello'
    with pytest.raises(DataFileError, match='expands'):
        read_gzip(str(small), 4)


def test_gzip_that_is_a_pickle_or_damaged_is_named(tmp_path):
    path = tmp_path / 'bpe.txt.gz'
    path.write_bytes(pickle.dumps({'a': 1}))
    with pytest.raises(DataFileError, match='is a pickle'):
        read_gzip(str(path), 1 << 20)
    path.write_bytes(gzip.compress(pickle.dumps({'a': 1})))
    with pytest.raises(DataFileError, match='is a gzipped pickle'):
        read_gzip(str(path), 1 << 20)
    path.write_bytes(gzip.compress(b'hello world' * 100)[:30])
    with pytest.raises(DataFileError, match='truncated'):
        read_gzip(str(path), 1 << 20)
    path.write_bytes(gzip.compress(b'a') + gzip.compress(b'b'))
    with pytest.raises(DataFileError, match='data after its end'):
        read_gzip(str(path), 1 << 20)
    path.write_bytes(b'\x1f\x8b' + b'garbage' * 10)
    with pytest.raises(DataFileError, match='damaged'):
        read_gzip(str(path), 1 << 20)


def png_header(width, height):
    """The start of a PNG stating ``width`` x ``height`` (1-bit grey):
    enough for a header reader; no pixel data."""

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data)))

    ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
            chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def test_image_header_bounds(tmp_path):
    # 30000 x 30000: 2.5 GiB once decoded (Pillow's own bound refuses it),
    # 12000 x 12000 (below Pillow's bound, above ours), a 100000 x 4 strip.
    # Each is a PNG header of 57 bytes.
    path = tmp_path / 'bomb.png'
    path.write_bytes(png_header(30000, 30000))
    with pytest.raises(DataFileError, match='900,000,000 pixels, more'):
        check_image(str(path), str(path))
    with pytest.raises(DataFileError, match='12000x12000 pixels, more'):
        check_image(png_header(12000, 12000), 'big.png')
    with pytest.raises(DataFileError, match='more elongated than 64:1'):
        check_image(png_header(100000, 4), 'strip.png')
    assert check_image(png_header(6400, 100), 'wide.png') == (6400, 100)
    assert check_image(
        png_header(100000, 4), 'strip.png', max_aspect=None) == (100000, 4)
    assert check_image(b'not an image', 'x.png') is None
    buffer = io.BytesIO()
    Image.new('RGB', (3, 2)).save(buffer, 'JPEG')
    assert check_image(buffer.getvalue(), 'x.jpg') == (3, 2)


def test_pillows_bomb_error_without_a_pixel_count_is_refused(monkeypatch):

    def refuse(*args, **kwargs):
        raise Image.DecompressionBombError('Image size exceeds the limit')

    monkeypatch.setattr(Image, 'open', refuse)
    with pytest.raises(DataFileError, match='pixels, more than the'):
        check_image(png_header(30000, 30000), 'bomb.png')


@pytest.mark.parametrize('link', ['out.json', 'sub', 'sub/out.json'])
def test_work_files_are_written_without_following_links(tmp_path, link):
    """A link in the work dir (to the file or to a folder on its way) is
    refused; the file outside keeps its bytes; without links the file and
    its folders are made."""
    work, outside = tmp_path / 'work', tmp_path / 'outside'
    (work / 'sub').mkdir(parents=True)
    outside.mkdir()
    (outside / 'out.json').write_text('precious')
    if link == 'sub':
        (work / 'sub').rmdir()
        (work / 'sub').symlink_to(outside)
    else:
        (work / link).symlink_to(outside / 'out.json')
    name = 'out.json' if link == 'out.json' else 'sub/out.json'
    for mode in ('w', 'a', 'a+'):
        with pytest.raises(
                DataFileError, match=f'{work / link} is a '
                'symbolic link'):
            open_work_file(str(work), name, mode)
    assert (outside / 'out.json').read_text() == 'precious'
    with open_work_file(str(tmp_path / 'new'), 'a/b/c.txt') as f:
        f.write('x')
    assert (tmp_path / 'new' / 'a' / 'b' / 'c.txt').read_text() == 'x'


@pytest.mark.parametrize('mode', ['w', 'a', 'a+', 'r+b'])
def test_a_work_file_that_is_a_fifo_is_refused_without_waiting(tmp_path, mode):
    """A FIFO planted where a work file goes: named in one message, not a
    process waiting for a reader; a regular file is written as usual."""
    (tmp_path / 'progress').mkdir()
    os.mkfifo(tmp_path / 'progress' / 'meta.json')

    def hung(*_):
        raise AssertionError('open_work_file waits on the FIFO')

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(DataFileError) as e:
            open_work_file(str(tmp_path), 'progress/meta.json', mode)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert str(e.value).startswith(
        f'{tmp_path / "progress" / "meta.json"} is a FIFO (named pipe)')
    assert '\n' not in str(e.value)
    with open_work_file(str(tmp_path), 'progress/ok.json', 'w') as f:
        f.write('x' * 100_000)  # blocking writes again: all of it
    assert (tmp_path / 'progress' / 'ok.json').stat().st_size == 100_000


@pytest.mark.parametrize('where', ['a', 'sub/a', 'sub/deeper/a'])
def test_a_link_anywhere_in_an_output_folder_is_named(tmp_path, where):
    """The first symbolic link below the folder, at any depth, to a file or
    a folder; the folder itself may be a link (the user named it)."""
    folder = tmp_path / 'out'
    (folder / 'sub' / 'deeper').mkdir(parents=True)
    (folder / 'sub' / 'deeper' / 'file.txt').write_text('x')
    refuse_links(str(folder), '--out')  # no link: passes
    refuse_links(str(tmp_path / 'missing'), '--out')
    (tmp_path / 'named').symlink_to(folder)
    refuse_links(str(tmp_path / 'named'), '--out')
    (folder / where).symlink_to(tmp_path)
    with pytest.raises(DataFileError) as e:
        refuse_links(str(folder), '--out')
    assert str(e.value) == (
        f'{folder / where} is a symbolic link in --out {folder}: the tool '
        f'writes only files of its own there. Remove it, or use a fresh '
        f'folder.')


def test_a_folder_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(files, 'MAX_WALK_ENTRIES', 3)
    for name in 'abc':
        (tmp_path / name).mkdir()
    refuse_links(str(tmp_path), '--out')
    (tmp_path / 'a' / 'd').write_text('')
    with pytest.raises(DataFileError, match='more than 3 files'):
        refuse_links(str(tmp_path), '--out')
