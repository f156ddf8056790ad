# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The bounded readers: hostile files are refused with one message each,
before they can claim memory or time."""
import gzip
import io
import os
import pickle
import resource
import struct
import zlib

import pytest
from PIL import Image

from groupvit_common.errors import USER_ERRORS, DataFileError
from groupvit_common.files import (check_image, check_json_depth,
                                   open_work_file, read_bytes, read_gzip,
                                   read_json, read_text)


def test_regular_file_within_its_bound_is_read(tmp_path):
    path = tmp_path / 'a.txt'
    path.write_bytes(b'\xef\xbb\xbfcat\ndog\n')
    assert read_bytes(str(path), 11) == b'\xef\xbb\xbfcat\ndog\n'
    assert read_text(str(path), 11) == 'cat\ndog\n'
    with pytest.raises(DataFileError, match='larger than 10 bytes'):
        read_bytes(str(path), 10)


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


def test_json_depth_of_built_values():
    assert check_json_depth({'a': [[1]]}, 'x', max_depth=3) == {'a': [[1]]}
    with pytest.raises(DataFileError, match='x nests deeper than 2'):
        check_json_depth({'a': [[1]]}, 'x', max_depth=2)


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
