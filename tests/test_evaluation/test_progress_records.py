# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Progress records in process: what ``ProgressWriter`` writes is what
``read_progress`` reads, a killed writer's partial line is dropped, damaged
records are named, and ``prepare_progress`` starts over or keeps records as
asked."""
import hashlib
import json
import resource

import numpy as np
import pytest
from mmengine.config import Config

from groupvit_common.errors import DataFileError, ProgressError
from mmseg_groupvit.evaluation import (ProgressWriter, describe_run,
                                       prepare_progress)
from mmseg_groupvit.evaluation import progress as progress_module
from mmseg_groupvit.evaluation import read_progress
from mmseg_groupvit.evaluation.progress import read_records
from tests.conftest import started_progress


def counts(value, classes=3):
    return np.full((4, classes), value, np.int64)


def test_written_records_are_read_back(tmp_path):
    image = tmp_path / 'a.jpg'
    image.write_bytes(b'1234')
    writer = ProgressWriter(started_progress(tmp_path / 'p'), rank=1)
    writer.write(str(image), counts(2), 100, [str(image)])
    writer.write('b.jpg', counts(3), 100)
    writer.close()
    assert (tmp_path / 'p' / 'rank1.jsonl').is_file()
    read = read_progress(str(tmp_path / 'p'))
    assert sorted(read) == [str(image), 'b.jpg']
    np.testing.assert_array_equal(read[str(image)], counts(2))
    assert read[str(image)].dtype == np.int64
    records = read_records(str(tmp_path / 'p'))
    assert records[str(image)][1] == {
        str(image): hashlib.sha256(b'1234').hexdigest()
    }
    assert records['b.jpg'][1] == {}


def test_every_rank_file_is_read(tmp_path):
    started_progress(tmp_path / 'p')
    for rank, name in enumerate(['a.jpg', 'b.jpg', 'c.jpg']):
        writer = ProgressWriter(str(tmp_path / 'p'), rank)
        writer.write(name, counts(rank), 100)
        writer.close()
    read = read_progress(str(tmp_path / 'p'))
    assert {
        k: int(v[0, 0])
        for k, v in read.items()
    } == {
        'a.jpg': 0,
        'b.jpg': 1,
        'c.jpg': 2
    }


def test_a_record_file_larger_than_a_run_writes_is_refused(tmp_path):
    """A sparse 1.5 GB rank file (no disk, 1.5 GB if read): refused in
    one line by its size, before it is read."""
    progress = started_progress(tmp_path / 'p')
    with open(tmp_path / 'p' / 'rank9.jsonl', 'wb') as f:
        f.truncate(1_500_000_000)
    memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataFileError) as e:
        read_records(progress)
    assert 'rank9.jsonl is larger than 1,073,741,824 bytes' in str(e.value)
    assert '\n' not in str(e.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory < (
        256 << 10)


def test_unchanged_records_are_read_once(tmp_path, monkeypatch):
    """The run's check, the sampler and the metric each ask: the files
    are read once while they do not change, again after a record is
    added."""
    reads = []
    read = progress_module.read_bytes
    monkeypatch.setattr(progress_module, 'read_bytes',
                        lambda *a: reads.append(a[0]) or read(*a))
    writer = ProgressWriter(started_progress(tmp_path / 'p'), rank=0)
    writer.write('a.jpg', counts(1), 100)
    assert list(read_records(str(tmp_path / 'p'))) == ['a.jpg']
    assert list(read_progress(str(tmp_path / 'p'))) == ['a.jpg']
    assert len(reads) == 1
    writer.write('b.jpg', counts(1), 100)
    writer.close()
    assert sorted(read_progress(str(tmp_path / 'p'))) == ['a.jpg', 'b.jpg']
    assert len(reads) == 2


def test_missing_folder_reads_as_nothing(tmp_path):
    assert read_progress(None) == {}
    assert read_progress(str(tmp_path / 'none')) == {}


def test_partial_last_line_is_ignored_then_replaced(tmp_path):
    """A process killed mid-write leaves an unfinished last line: it is not
    a record, and the next writer starts on a line of its own."""
    progress = started_progress(tmp_path / 'p')
    writer = ProgressWriter(progress)
    writer.write('a.jpg', counts(1), 10)
    writer.close()
    path = tmp_path / 'p' / 'rank0.jsonl'
    whole = path.read_text()
    path.write_text(whole + whole[:40])
    assert list(read_progress(progress)) == ['a.jpg']
    writer = ProgressWriter(progress)
    writer.write('c.jpg', counts(5), 100)
    writer.close()
    assert '"img_path": "c.jpg"' in path.read_text().splitlines()[1]
    assert sorted(read_progress(progress)) == ['a.jpg', 'c.jpg']


def write_signed(progress, record_counts, pixels):
    writer = ProgressWriter(progress)
    writer.write('a.jpg', record_counts, pixels)
    writer.close()


@pytest.mark.parametrize(
    'record_counts, pixels',
    [
        ([[1, 1, 1, 1]] * 3, 10),  # not [4, K]
        ([[-1, 0], [0, 0], [0, 0], [0, 0]], 10),  # negative
        ([[1.5, 0], [2, 0], [2, 0], [1.5, 0]], 10),  # not integers
        ([[0, 0], [15, 0], [10, 0], [10, 0]], 10),  # union is not the sum
        ([[5, 0], [5, 0], [3, 0], [5, 0]], 10),  # intersection > prediction
        ([[6, 6], [6, 6], [6, 6], [6, 6]], 10),  # more pixels than the image
        ([[2**70, 0], [2**70, 0], [2**70, 0], [2**70, 0]], 2**80),  # overflow
    ])
def test_counts_no_image_can_have_are_refused(tmp_path, record_counts, pixels):
    """Even a record of this run (its digest is right) is refused when its
    counts cannot be one image's."""
    progress = started_progress(tmp_path / 'p')
    write_signed(progress, np.asarray(record_counts, dtype=object), pixels)
    with pytest.raises(
            ProgressError, match='the counts cannot be those of '
            'one image'):
        read_progress(progress)


def test_counts_of_a_possible_image_are_read(tmp_path):
    """The bounds of the test above, met exactly: accepted."""
    progress = started_progress(tmp_path / 'p')
    write_signed(progress, [[3, 0], [10, 0], [10, 0], [3, 0]], 10)
    assert read_progress(progress)['a.jpg'].tolist() == [[3, 0], [10, 0],
                                                         [10, 0], [3, 0]]


def make_run(tmp_path, weights=b'weights', **evaluator):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(weights)
    cfg = Config(
        dict(
            model=dict(type='M'),
            test_dataloader=dict(dataset=dict(type='D')),
            test_evaluator=dict(type='CheckedIoUMetric', **evaluator)))
    return describe_run(cfg, str(checkpoint))


def test_a_transformers_folder_is_described_by_its_files(tmp_path):
    """A folder checkpoint (README: CHECKPOINT may be one) has a digest
    that changes with any of its files' content or names."""
    folder = tmp_path / 'hf'
    folder.mkdir()
    (folder / 'config.json').write_text('{}')
    (folder / 'model.safetensors').write_bytes(b'weights')
    cfg = Config(
        dict(
            model=dict(type='M'),
            test_dataloader=dict(dataset=dict(type='D')),
            test_evaluator=dict(type='CheckedIoUMetric')))
    first = describe_run(cfg, str(folder))['checkpoint']
    assert describe_run(cfg, str(folder))['checkpoint'] == first
    (folder / 'model.safetensors').write_bytes(b'other')
    second = describe_run(cfg, str(folder))['checkpoint']
    (folder / 'model.safetensors').rename(folder / 'pytorch_model.bin')
    third = describe_run(cfg, str(folder))['checkpoint']
    assert len({first, second, third}) == 3


def test_evaluator_type_and_folders_do_not_change_the_run(tmp_path):
    """The metric class and where it writes do not change the counts, so
    they do not prevent a resume; its settings do."""
    base = make_run(tmp_path)
    moved = make_run(tmp_path, progress_dir='elsewhere', collect_device='gpu')
    assert moved['evaluator'] == base['evaluator']
    assert make_run(tmp_path, ignore_index=0)['evaluator'] != \
        base['evaluator']


def test_without_resume_records_are_deleted(tmp_path):
    progress = tmp_path / 'progress'
    run = make_run(tmp_path)
    assert prepare_progress(str(progress), run, False) == 0
    writer = ProgressWriter(str(progress))
    writer.write('a.jpg', counts(1), 10)
    writer.close()
    assert prepare_progress(str(progress), run, True) == 1
    assert prepare_progress(str(progress), run, False) == 0
    assert read_progress(str(progress)) == {}
    with open(progress / 'meta.json') as f:
        assert json.load(f)['checkpoint'] == run['checkpoint']


def test_resume_of_nothing_starts_over(tmp_path):
    progress = tmp_path / 'progress'
    assert prepare_progress(str(progress), make_run(tmp_path), True) == 0
    assert (progress / 'meta.json').is_file()


def test_resume_with_another_checkpoint_is_refused(tmp_path):
    progress = tmp_path / 'progress'
    prepare_progress(str(progress), make_run(tmp_path), False)
    with pytest.raises(ProgressError, match='different checkpoint file'):
        prepare_progress(
            str(progress), make_run(tmp_path, b'other weights'), True)


def test_the_key_is_private_and_outside_the_work_dir(tmp_path, monkeypatch):
    """Without the variable, the key is made once in XDG_CACHE_HOME, 32
    random bytes only the user can read; a key others can read is
    refused (they could sign records)."""
    from mmseg_groupvit.evaluation import progress as module
    monkeypatch.delenv(module.KEY_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    key = tmp_path / 'cache' / 'mmseg_groupvit' / 'progress.key'
    assert module.key_path() == str(key)
    started_progress(tmp_path / 'work' / 'progress')
    assert len(key.read_bytes()) == 32
    assert key.stat().st_mode & 0o777 == 0o600
    first = key.read_bytes()
    started_progress(tmp_path / 'work' / 'progress')
    assert key.read_bytes() == first
    key.chmod(0o644)
    module._secret_key.cache_clear()
    with pytest.raises(ProgressError, match='that only you can read'):
        started_progress(tmp_path / 'work' / 'progress')
    module._secret_key.cache_clear()
