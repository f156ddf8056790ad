# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""CheckedIoUMetric: exact counts, named label-map errors, and progress
records that merge without double counting (class counts are checked when
the config is read: tests/test_common/test_checks.py)."""
import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric
from PIL import Image

from groupvit_common.errors import LabelMapError, ProgressError
from mmseg_groupvit.evaluation import (CheckedIoUMetric, ProgressWriter,
                                       read_progress)
from tests.conftest import started_progress

CLASSES = [f'class{i}' for i in range(6)]


def sample(pred, label, name='a', channels=None, shape=None):
    pred = torch.as_tensor(pred)
    out = dict(
        pred_sem_seg=dict(data=pred[None]),
        gt_sem_seg=dict(data=torch.as_tensor(label)[None]),
        img_path=f'/data/img/{name}.jpg',
        seg_map_path=f'/data/ann/{name}.png',
        ori_shape=tuple(shape or pred.shape))
    if channels is not None:
        out['seg_logits'] = dict(data=torch.zeros(channels, *pred.shape))
    return out


def make_metric(**kwargs):
    metric = CheckedIoUMetric(**kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    return metric


def random_pair(seed, shape=(30, 40)):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 6, shape)
    label = rng.integers(0, 6, shape)
    label[rng.random(shape) < 0.2] = 255
    return pred, label


def numpy_iou(pairs):
    """Per-class IoU from plain numpy counts over all images."""
    inter = union = 0
    for pred, label in pairs:
        keep = label != 255
        p, g = pred[keep], label[keep]
        hist = [np.bincount(x, minlength=6) for x in (p[p == g], p, g)]
        inter = inter + hist[0]
        union = union + hist[1] + hist[2] - hist[0]
    return inter / union


def test_counts_are_exact_and_metrics_match_mmseg():
    pairs = [random_pair(seed) for seed in range(3)]
    ours, theirs = make_metric(), IoUMetric()
    theirs.dataset_meta = dict(classes=CLASSES)
    for i, (pred, label) in enumerate(pairs):
        ours.process({}, [sample(pred, label, str(i), channels=6)])
        theirs.process({}, [sample(pred, label, str(i))])
    expected = numpy_iou(pairs)
    assert ours.evaluate(3) == theirs.evaluate(3)
    np.testing.assert_allclose(
        np.array(ours.class_results['IoU']) / 100, expected, rtol=1e-6)


def test_label_map_of_another_size_is_named():
    pred, label = random_pair(0)
    metric = make_metric()
    with pytest.raises(LabelMapError) as info:
        metric.process({}, [sample(pred, label[:, :-1], 'b')])
    message = str(info.value)
    assert '/data/ann/b.png is 30x39' in message
    assert '/data/img/b.jpg is 30x40' in message


def test_size_mismatch_from_exif_rotation_says_so(tmp_path):
    image = Image.fromarray(np.zeros((30, 40, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 8
    path = tmp_path / 'rotated.jpg'
    image.save(path, exif=exif)
    pred = np.zeros((40, 30), np.int64)  # the loaded, upright image
    label = np.zeros((30, 40), np.int64)  # drawn on the stored pixels
    case = sample(pred, label)
    case['img_path'] = str(path)
    with pytest.raises(LabelMapError, match='EXIF orientation 8') as info:
        make_metric().process({}, [case])
    assert 'color_ignore_orientation' in str(info.value)


def test_label_values_outside_the_classes_are_named():
    pred, label = random_pair(1)
    label[0, :3] = 6
    label[1, :2] = 100
    with pytest.raises(LabelMapError) as info:
        make_metric().process({}, [sample(pred, label, 'c')])
    message = str(info.value)
    assert '/data/ann/c.png' in message
    assert '6 (3 px), 100 (2 px)' in message
    assert '6 classes (0..5)' in message and 'ignore index 255' in message
    # mmseg's metric counts the same map without a word: the out-of-range
    # pixels simply vanish from every histogram.
    theirs = IoUMetric()
    theirs.dataset_meta = dict(classes=CLASSES)
    theirs.process({}, [sample(pred, label, 'c')])
    assert theirs.results[0][3].sum() == (label < 6).sum()


def test_progress_records_merge_and_count_each_image_once(tmp_path):
    pairs = [random_pair(seed) for seed in range(4)]
    progress = started_progress(tmp_path / 'progress')
    first = make_metric(progress_dir=progress)
    for i in range(2):
        first.process({}, [sample(*pairs[i], str(i))])
    first._writer.close()  # the run stops here, before evaluate()
    assert sorted(
        read_progress(progress)) == ['/data/img/0.jpg', '/data/img/1.jpg']
    second = make_metric(progress_dir=progress)
    for i in (1, 2, 3):  # image 1 again, as a padding sampler may repeat it
        second.process({}, [sample(*pairs[i], str(i))])
    resumed = second.evaluate(4)
    whole = make_metric()
    for i, pair in enumerate(pairs):
        whole.process({}, [sample(*pair, str(i))])
    assert resumed == whole.evaluate(4)
    np.testing.assert_allclose(
        np.array(second.class_results['IoU']) / 100,
        numpy_iou(pairs),
        rtol=1e-6)


def test_missing_images_are_not_silently_ignored(tmp_path):
    metric = make_metric()
    metric.process({}, [sample(*random_pair(0), 'x')])
    with pytest.raises(ProgressError, match='Counted 1 distinct images'):
        metric.evaluate(2)


def test_killed_writer_leaves_a_partial_line_that_is_dropped(tmp_path):
    started_progress(tmp_path)
    writer = ProgressWriter(str(tmp_path), rank=0)
    writer.write('/a.jpg', np.ones((4, 6), np.int64), 10)
    writer.close()
    path = tmp_path / 'rank0.jsonl'
    with open(path, 'a') as f:
        f.write('{"img_path": "/b.jpg", "cou')  # killed mid-line
    assert list(read_progress(str(tmp_path))) == ['/a.jpg']
    writer = ProgressWriter(str(tmp_path), rank=0)
    writer.write('/c.jpg', np.zeros((4, 6), np.int64), 10)
    writer.close()
    assert sorted(read_progress(str(tmp_path))) == ['/a.jpg', '/c.jpg']
    # A damaged line that is not the last one is an error, named.
    with open(path, 'w') as f:
        f.write('garbage\n{"img_path": "/a.jpg", "counts": []}\n')
    with pytest.raises(ProgressError, match='rank0.jsonl, line 1'):
        read_progress(str(tmp_path))
