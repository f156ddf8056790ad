# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``--resume`` refuses records whose inputs changed, and one work dir
holds one run at a time."""
import os
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config

from groupvit_common.errors import ProgressError
from mmseg_groupvit.evaluation import (ProgressWriter, describe_run,
                                       prepare_progress)
from mmseg_groupvit.evaluation.test_run import lock_work_dir


@pytest.fixture
def run_inputs(tmp_path):
    """A vocabulary file, a checkpoint, an image and its label map."""
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('cat\ndog\n')
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    image, label = tmp_path / 'a.jpg', tmp_path / 'a.png'
    image.write_bytes(b'jpeg bytes')
    label.write_bytes(b'png bytes')
    return vocab, checkpoint, image, label


def make_run(vocab, checkpoint, output_dir=None):
    evaluator = dict(type='CheckedIoUMetric')
    if output_dir:
        evaluator['output_dir'] = str(output_dir)
    cfg = Config(
        dict(
            model=dict(text_encoder=dict(vocabulary=str(vocab))),
            test_dataloader=dict(dataset=dict(type='PascalVOCDataset')),
            test_evaluator=evaluator))
    return describe_run(cfg, str(checkpoint))


def record_one(progress, image, label):
    writer = ProgressWriter(str(progress))
    writer.write(
        str(image), np.ones((4, 3), np.int64), 100,
        [str(image), str(label)])
    writer.close()


def test_unchanged_inputs_resume(run_inputs, tmp_path):
    vocab, checkpoint, image, label = run_inputs
    progress = tmp_path / 'progress'
    prepare_progress(str(progress), make_run(vocab, checkpoint), False)
    record_one(progress, image, label)
    assert prepare_progress(str(progress), make_run(vocab, checkpoint),
                            True) == 1


def test_changed_vocabulary_content_is_refused(run_inputs, tmp_path):
    """Same path, same config text: only the file's content differs."""
    vocab, checkpoint, image, label = run_inputs
    progress = tmp_path / 'progress'
    prepare_progress(str(progress), make_run(vocab, checkpoint), False)
    record_one(progress, image, label)
    vocab.write_text('cat\nwolf\n')
    with pytest.raises(ProgressError) as info:
        prepare_progress(str(progress), make_run(vocab, checkpoint), True)
    assert f'different content of {vocab}' in str(info.value)


@pytest.mark.parametrize('which', ['image', 'label'])
def test_changed_image_or_label_is_refused(which, run_inputs, tmp_path):
    """Same size and modification time, other content: noticed."""
    vocab, checkpoint, image, label = run_inputs
    progress = tmp_path / 'progress'
    prepare_progress(str(progress), make_run(vocab, checkpoint), False)
    record_one(progress, image, label)
    changed = image if which == 'image' else label
    stat = os.stat(changed)
    changed.write_bytes(changed.read_bytes()[::-1])
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(changed).st_size == stat.st_size
    with pytest.raises(ProgressError) as info:
        prepare_progress(str(progress), make_run(vocab, checkpoint), True)
    assert f'1 image or label file(s) changed since they were counted: ' \
           f'{changed}.' in str(info.value)


def test_resume_into_another_out_folder_is_refused(run_inputs, tmp_path):
    vocab, checkpoint, image, label = run_inputs
    progress, first = tmp_path / 'progress', tmp_path / 'out1'
    prepare_progress(str(progress), make_run(vocab, checkpoint, first), False)
    record_one(progress, image, label)
    with pytest.raises(ProgressError) as info:
        prepare_progress(
            str(progress), make_run(vocab, checkpoint, tmp_path / 'out2'),
            True)
    assert f'the label maps of the 1 images already evaluated are in ' \
           f'{first}' in str(info.value)
    assert f'Resume with --out {first}' in str(info.value)
    # The same folder (holding the map the first run wrote), or none,
    # resumes.
    first.mkdir()
    (first / 'a.png').write_bytes(b'prediction')
    for out in (first, None):
        assert prepare_progress(
            str(progress), make_run(vocab, checkpoint, out), True) == 1


def test_resume_with_a_recorded_map_missing_from_out_is_refused(
        run_inputs, tmp_path):
    """The map of a recorded image, deleted from --out: a resumed run skips
    the image, so the map would stay missing."""
    vocab, checkpoint, image, label = run_inputs
    progress, out = tmp_path / 'progress', tmp_path / 'out'
    out.mkdir()
    prepare_progress(str(progress), make_run(vocab, checkpoint, out), False)
    record_one(progress, image, label)
    with pytest.raises(ProgressError) as info:
        prepare_progress(str(progress), make_run(vocab, checkpoint, out), True)
    assert 'the label maps of 1 of the 1 images already evaluated are ' \
           'missing there (a.png)' in str(info.value)
    assert 'Run without --resume' in str(info.value)


def test_resume_with_out_after_a_run_without_is_refused(run_inputs, tmp_path):
    vocab, checkpoint, image, label = run_inputs
    progress = tmp_path / 'progress'
    prepare_progress(str(progress), make_run(vocab, checkpoint), False)
    record_one(progress, image, label)
    with pytest.raises(ProgressError, match='are not written'):
        prepare_progress(
            str(progress), make_run(vocab, checkpoint, tmp_path / 'out'), True)


def test_second_run_in_a_locked_work_dir_is_refused(tmp_path):
    """Another process holding the work dir's lock file, as a running
    evaluation does, is named; once it ends the lock can be taken."""
    holder = subprocess.Popen([
        sys.executable, '-c', 'import fcntl, os, sys, time\n'
        f'fd = os.open({str(tmp_path / ".lock")!r}, os.O_RDWR | os.O_CREAT)\n'
        'fcntl.flock(fd, fcntl.LOCK_EX)\n'
        'os.write(fd, str(os.getpid()).encode())\n'
        'print("locked", flush=True)\n'
        'time.sleep(60)\n'
    ],
                              stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(ProgressError) as info:
            lock_work_dir(str(tmp_path))
        assert f'Another evaluation (process {holder.pid}) is running in ' \
               f'the work dir {tmp_path}' in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    lock_work_dir(str(tmp_path))
    lock_work_dir(str(tmp_path))  # this process may take it again


def test_the_lock_file_names_its_holder(tmp_path):
    """The lock file holds the id of the process that took it; another
    work dir has a lock of its own."""
    lock_work_dir(str(tmp_path))
    assert (tmp_path / '.lock').read_text() == str(os.getpid())
    other = tmp_path / 'other'
    other.mkdir()
    lock_work_dir(str(other))
    assert (other / '.lock').read_text() == str(os.getpid())


def test_the_lock_of_an_ended_process_is_free(tmp_path):
    """The operating system releases the lock of a process that ended,
    even one killed while holding it."""
    holder = subprocess.run([
        sys.executable, '-c', 'import fcntl, os\n'
        f'fd = os.open({str(tmp_path / ".lock")!r}, os.O_RDWR | os.O_CREAT)\n'
        'fcntl.flock(fd, fcntl.LOCK_EX)\n'
        'os.write(fd, b"12345")\n'
        'os.kill(os.getpid(), 9)\n'
    ])
    assert holder.returncode == -9
    lock_work_dir(str(tmp_path))
    assert (tmp_path / '.lock').read_text() == str(os.getpid())
