# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Progress records in process: what ``ProgressWriter`` writes is what
``read_progress`` reads, a killed writer's partial line is dropped, damaged
records are named, and ``prepare_progress`` starts over or keeps records as
asked."""
import json

import numpy as np
import pytest
from mmengine.config import Config

from groupvit_common.errors import ProgressError
from mmseg_groupvit.evaluation import (ProgressWriter, describe_run,
                                       prepare_progress, read_progress)
from mmseg_groupvit.evaluation.progress import file_stamp, read_records


def counts(value, classes=3):
    return np.full((4, classes), value, np.int64)


def test_written_records_are_read_back(tmp_path):
    image = tmp_path / 'a.jpg'
    image.write_bytes(b'1234')
    writer = ProgressWriter(str(tmp_path / 'p'), rank=1)
    writer.write(str(image), counts(2), [str(image)])
    writer.write('b.jpg', counts(3))
    writer.close()
    assert (tmp_path / 'p' / 'rank1.jsonl').is_file()
    read = read_progress(str(tmp_path / 'p'))
    assert sorted(read) == [str(image), 'b.jpg']
    np.testing.assert_array_equal(read[str(image)], counts(2))
    assert read[str(image)].dtype == np.int64
    records = read_records(str(tmp_path / 'p'))
    stat = image.stat()
    assert records[str(image)][1] == {
        str(image): [stat.st_size, stat.st_mtime_ns]
    }
    assert records['b.jpg'][1] == {}


def test_every_rank_file_is_read(tmp_path):
    for rank, name in enumerate(['a.jpg', 'b.jpg', 'c.jpg']):
        writer = ProgressWriter(str(tmp_path), rank)
        writer.write(name, counts(rank))
        writer.close()
    read = read_progress(str(tmp_path))
    assert {
        k: int(v[0, 0])
        for k, v in read.items()
    } == {
        'a.jpg': 0,
        'b.jpg': 1,
        'c.jpg': 2
    }


def test_missing_folder_reads_as_nothing(tmp_path):
    assert read_progress(None) == {}
    assert read_progress(str(tmp_path / 'none')) == {}


def test_partial_last_line_is_ignored_then_replaced(tmp_path):
    """A process killed mid-write leaves an unfinished last line: it is not
    a record, and the next writer starts on a line of its own."""
    path = tmp_path / 'rank0.jsonl'
    whole = json.dumps(dict(img_path='a.jpg', counts=counts(1).tolist()))
    path.write_text(whole + '\n{"img_path": "b.jp')
    assert list(read_progress(str(tmp_path))) == ['a.jpg']
    writer = ProgressWriter(str(tmp_path))
    writer.write('c.jpg', counts(5))
    writer.close()
    assert path.read_text().splitlines()[1].startswith('{"img_path": "c.jpg"')
    assert sorted(read_progress(str(tmp_path))) == ['a.jpg', 'c.jpg']


@pytest.mark.parametrize('line, match', [
    ('not json', 'line 1 is damaged'),
    ('{"counts": [[1], [1], [1], [1]]}', 'line 1 is damaged'),
    ('{"img_path": "a.jpg", "counts": [[1, 2], [1, 2]]}',
     r'counts of shape \(2, 2\), expected \[4, num_classes\]'),
])
def test_damaged_record_is_named(tmp_path, line, match):
    (tmp_path / 'rank0.jsonl').write_text(line + '\n')
    with pytest.raises(ProgressError, match=match):
        read_progress(str(tmp_path))


def test_file_stamp_of_a_missing_or_remote_file(tmp_path):
    assert file_stamp(str(tmp_path / 'none')) is None
    assert file_stamp('s3://bucket/a.jpg') is None


def make_run(tmp_path, weights=b'weights', **evaluator):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(weights)
    cfg = Config(
        dict(
            model=dict(type='M'),
            test_dataloader=dict(dataset=dict(type='D')),
            test_evaluator=dict(type='CheckedIoUMetric', **evaluator)))
    return describe_run(cfg, str(checkpoint))


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
    writer.write('a.jpg', counts(1))
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
