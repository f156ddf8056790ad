# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Shards crafted to stall or exhaust a training run: no good sample at
all, an empty tar, sparse members, members larger than the file, members
over the size cap, a compressed shard that expands a thousandfold. Each
stream runs in a thread with a time limit, so that a stream that never
ends fails the test instead of hanging it."""
import io
import os.path as osp
import tarfile
import threading

import pytest

from groupvit_common.errors import TrainingDataError
from mmseg_groupvit.datasets.pretraining import CaptionShards, count_samples
from tests.conftest import PHOTOS, REPO, load_script

PHOTO = open(osp.join(PHOTOS, 'groupvit_demo_voc.jpg'), 'rb').read()
MiB = 1 << 20


def member(name, data, size=None):
    """A tar member's header and data (``size`` may claim more)."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    pad = -len(data) % tarfile.BLOCKSIZE
    return info.tobuf(tarfile.GNU_FORMAT) + data + b'\0' * pad


def sparse_member(name, size):
    """An old-GNU sparse member (type 'S') without data blocks: tarfile
    reads it as ``size`` zero bytes. tarfile cannot write one, so the
    header's sparse fields are set by hand (GNU tar's layout: the real
    size at offset 483) and its checksum computed again."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[483:495] = tarfile.itn(size, 12, tarfile.GNU_FORMAT)
    header[148:156] = b' ' * 8
    header[148:156] = b'%06o\0 ' % sum(header)
    return bytes(header)


class Zeros:
    """``size`` zero bytes to read, never all in memory."""

    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def write_tar(path, *members):
    with open(path, 'wb') as f:
        f.write(b''.join(members) + b'\0' * (2 * tarfile.BLOCKSIZE))
    return str(path)


def shards(folder, *names, **kwargs):
    return CaptionShards(
        [dict(path=str(folder), prefix=p, length=3) for p in names],
        shuffle_buffer=kwargs.pop('shuffle_buffer', 2),
        **kwargs)


def stream(dataset, timeout=20):
    """``(samples, error)`` of iterating ``dataset`` to its end; fails if
    that takes over ``timeout`` seconds."""
    out = dict(samples=[], error=None)

    def run():
        try:
            out['samples'].extend(dataset)
        except Exception as e:  # the error is the result under test
            out['error'] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f'the stream did not end in {timeout} s'
    return out['samples'], out['error']


@pytest.fixture
def bad_shards(tmp_path):
    """Three shards without one good sample: two images that do not decode;
    one more and a photo without caption; an empty tar."""
    write_tar(tmp_path / 'bad-0.tar', member('a.jpg', b'not a jpeg'),
              member('a.txt', b'a dog'), member('b.jpg', b'\xff\xd8'),
              member('b.txt', b'a cat'))
    write_tar(tmp_path / 'bad-1.tar', member('c.jpg', b'GIF89a'),
              member('c.txt', b'a bird'), member('d.jpg', PHOTO))
    write_tar(tmp_path / 'bad-2.tar')
    return tmp_path


def test_shards_without_a_good_sample_stop_after_one_pass(bad_shards):
    dataset = CaptionShards(
        [dict(path=str(bad_shards), prefix='bad-{0..2}.tar', length=50)],
        shuffle_buffer=100)
    samples, error = stream(dataset)
    assert samples == [] and isinstance(error, TrainingDataError)
    message = str(error)
    # Counted once per sample although the shards are drawn again and
    # again: 3 images that do not decode, 1 caption missing.
    assert message.startswith(
        f'0 good samples in 3 shard(s) ({bad_shards}/bad-0.tar, '
        f'{bad_shards}/bad-1.tar, {bad_shards}/bad-2.tar): ')
    assert 'no caption (.txt): 1, the image does not decode: 3.' in message
    assert '\n' not in message


def test_an_empty_tar_with_a_length_stops(tmp_path):
    write_tar(tmp_path / 'empty.tar')
    dataset = CaptionShards(
        [dict(path=str(tmp_path), prefix='empty.tar', length=1000)])
    _, error = stream(dataset)
    assert str(error).startswith(
        f'0 good samples in 1 shard(s) ({tmp_path}/empty.tar): they hold '
        f'no sample.')


def test_one_good_sample_among_many_bad_ones_is_enough(tmp_path):
    """The large shuffle buffer holds the good sample back while bad ones
    are decoded: the stream must not give up on the data."""
    write_tar(tmp_path / 'one-0.tar', member('good.jpg', PHOTO),
              member('good.txt', b'a dog'))
    write_tar(tmp_path / 'one-1.tar',
              *(member(f'{i:03}.jpg', b'bad') for i in range(200)))
    dataset = CaptionShards(
        [dict(path=str(tmp_path), prefix='one-{0..1}.tar', length=4)],
        shuffle_buffer=1000)
    samples, error = stream(dataset, timeout=60)
    assert error is None and len(samples) == 4
    assert {s['caption'] for s in samples} == {'a dog'}


def hostile(folder, name, *members):
    """A shard of ``members`` beside a caption: every sample is bad."""
    write_tar(folder / name, *members, member('x.txt', b'a caption'))
    return name


@pytest.mark.parametrize(
    'members, reason',
    [((sparse_member('x.jpg', 8 * 1024), ),
      'a sparse member or one over max_member_bytes=1048576: 1'),
     ((member('x.jpg', b'\xff' * 100, size=10 * 1024**3), ),
      'a member expanding the shard over 100 times (the rest of the shard '
      'is left): 1'),
     ((sparse_member('x.jpg', 10 * 1024**3), ),
      'a member expanding the shard over 100 times'),
     ((member('x.jpg', bytes(2 * MiB)), ),
      'a sparse member or one over max_member_bytes=1048576: 1')],
    ids=['sparse', 'size_beyond_the_file', 'sparse_10GB', 'over_the_cap'])
def test_members_are_read_within_the_cap(tmp_path, members, reason):
    name = hostile(tmp_path, 'x.tar', *members)
    _, error = stream(shards(tmp_path, name, max_member_bytes=MiB))
    assert isinstance(error, TrainingDataError), error
    assert reason in str(error)


def test_a_compression_bomb_is_not_expanded(tmp_path):
    """512 MiB of zeros in a .tar.gz of half a megabyte: the member is
    neither read nor decompressed (the count of the samples, with no
    length, refuses the shard; the stream leaves it)."""
    with tarfile.open(
            tmp_path / 'bomb.tar.gz', 'w:gz', compresslevel=1) as tar:
        info = tarfile.TarInfo('x.jpg')
        info.size = 512 * MiB
        tar.addfile(info, Zeros(info.size))
    assert osp.getsize(tmp_path / 'bomb.tar.gz') < 4 * MiB
    with pytest.raises(TrainingDataError, match='would expand it over 100'):
        count_samples(str(tmp_path / 'bomb.tar.gz'))
    dataset = CaptionShards(
        [dict(path=str(tmp_path), prefix='bomb.tar.gz', length=3)])
    _, error = stream(dataset, timeout=10)
    assert 'a member expanding the shard over 100 times' in str(error)


def test_a_compressed_shard_of_photos_is_read(tmp_path):
    with tarfile.open(tmp_path / 'ok.tar.gz', 'w:gz') as tar:
        for name, data in (('a.jpg', PHOTO), ('a.txt', b'a dog')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dataset = CaptionShards([dict(path=str(tmp_path), prefix='ok.tar.gz')])
    samples, error = stream(dataset)
    assert error is None and [s['caption'] for s in samples] == ['a dog']


@pytest.mark.slow
def test_train_tool_stops_with_one_error_line(bad_shards, capsys, monkeypatch):
    """tools/train.py, the data read by a DataLoader worker process."""
    config = bad_shards / 'bad_shards.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/pretrain/groupvit_samples_smoke.py']\n"
        f"train_dataloader = dict(num_workers=1, sampler=None, dataset=dict("
        f"_delete_=True, type='CaptionShards', datasets=[dict(path="
        f"'{bad_shards}', prefix='bad-{{0..2}}.tar', length=64)], "
        f"pipeline={{{{_base_.train_pipeline}}}}))\n")
    monkeypatch.chdir(REPO)
    train = load_script(osp.join(REPO, 'tools', 'train.py'), 'shards_train')
    with pytest.raises(SystemExit) as exit_info:
        train.main([str(config), '--work-dir', str(bad_shards / 'work')])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert str(exit_info.value.code).startswith(
        'error: 0 good samples in 3 shard(s)'), exit_info.value.code
    assert 'Traceback' not in output and 'error' not in output.lower(), \
        output[-3000:]


def test_an_image_is_refused_from_its_header(tmp_path):
    """A 16000x16000 PNG of a few kilobytes in a shard is skipped from its
    header (the package's one image rule), never decoded."""
    from tests.test_robustness.test_image_entries import crafted_png
    write_tar(tmp_path / 'bomb.tar', member('a.png', crafted_png(16000,
                                                                 16000)),
              member('a.txt', b'a black square'))
    _, error = stream(shards(tmp_path, 'bomb.tar', shuffle_buffer=1))
    assert isinstance(error, TrainingDataError)
    assert ('the image states too many pixels or too elongated a shape: 1'
            in str(error)), error


def long_name_bomb(size):
    """A GNU long-name header (``././@LongLink``) declaring ``size`` bytes
    of name, all zeros: tarfile reads a name in one piece."""
    info = tarfile.TarInfo('././@LongLink')
    info.type, info.size = tarfile.GNUTYPE_LONGNAME, size
    return info.tobuf(tarfile.GNU_FORMAT) + bytes(size)


@pytest.fixture
def spied_reads(monkeypatch):
    """The sizes asked of the decompressor of an .xz shard."""
    import lzma
    sizes, read = [], lzma.LZMAFile.read

    def spy(self, size=-1):
        sizes.append(size)
        return read(self, size)

    monkeypatch.setattr(lzma.LZMAFile, 'read', spy)
    return sizes


@pytest.mark.parametrize('length', [None, 3], ids=['counted', 'given'])
def test_a_long_name_bomb_is_refused_unread(tmp_path, spied_reads, length):
    """A header declaring a 2 MiB name (1.5 GB in the report, 230 KB of
    xz) is refused before it is read, naming the shard and the bound."""
    with lzma_open(tmp_path / 'bomb.tar.xz') as f:
        f.write(
            long_name_bomb(2 * MiB) + member('a.jpg', PHOTO) +
            member('a.txt', b'a dog') + bytes(2 * tarfile.BLOCKSIZE))
    with pytest.raises(TrainingDataError) as error:
        CaptionShards(
            [dict(path=str(tmp_path), prefix='bomb.tar.xz', length=length)])
    assert str(error.value) == (
        f'shard {tmp_path}/bomb.tar.xz: the tar headers of a member (a long '
        f'name, PAX records) take over 1,048,576 bytes, a compression bomb '
        f'or a damaged header: remove the shard.')
    assert spied_reads and max(spied_reads) <= tarfile.BLOCKSIZE


def test_a_long_name_bomb_after_a_sample_is_skipped(tmp_path):
    """Found while streaming, the shard's rest is left as for a member
    expanding the shard too far."""
    write_tar(tmp_path / 'late.tar', member('a.jpg', b'not a jpeg'),
              member('a.txt', b'a dog'), long_name_bomb(2 * MiB))
    _, error = stream(shards(tmp_path, 'late.tar'))
    assert isinstance(error, TrainingDataError), error
    assert ('the tar headers of a member (a long name, PAX records) take '
            'over 1,048,576 bytes (the rest of the shard is left): 1'
            in str(error)), error


def lzma_open(path):
    import lzma
    return lzma.open(path, 'wb', preset=1)
