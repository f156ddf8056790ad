# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Measure the peak memory (RSS) of the cases that docs/robustness.md
reports. Each measurement runs in its own process::

    cd tests/test_robustness
    python measure_memory.py large-image [--unbounded]
    python measure_memory.py vocabulary --classes 5000
    python measure_memory.py segment --classes 5000
    python measure_memory.py segment --dense --classes 500

``large-image``: one 8000x6000 photo through the VOC test pipeline
(RobustLoadImageFromFile, Resize to a short side of 448, slide windows of
448), the default architecture with random weights, prediction and the
CheckedIoUMetric count against an 8000x6000 label map. ``--unbounded`` keeps
mmseg's post-processing (all class scores resized to full size at once).

``vocabulary``: encode a vocabulary of N classes with the default text
encoder (random weights).

``segment``: predict one VOC sample image (334x500) with an N-class
vocabulary (small image encoder; the memory of the head and the slide canvas
does not depend on its width). Above ``test_cfg.max_dense_scores_bytes``
the segmentor takes its large-vocabulary path; ``--dense`` keeps mmseg's
dense score maps whatever their size.

Prints one JSON line: the resident memory (RSS) before the measured steps,
the peak RSS of each step (Linux ``VmHWM``, reset between steps) and the
seconds they took.
"""
import argparse
import json
import multiprocessing
import os.path as osp
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from PIL import Image

import mmseg_groupvit  # noqa: F401
from mmseg_groupvit.evaluation import CheckedIoUMetric
from tests.conftest import SMALL_ARCH

VOC_IMAGE = osp.join(REPO, 'samples', 'voc2012_sample', 'VOCdevkit', 'VOC2012',
                     'JPEGImages', '2007_000129.jpg')


def _status(key: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024
    return float('nan')


def rss_mib() -> float:
    """Resident memory now (MiB)."""
    return _status('VmRSS')


def reset_peak() -> None:
    """Restart the peak-RSS watermark (Linux ``clear_refs`` value 5)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def peak_mib() -> float:
    """Peak resident memory since the last :func:`reset_peak` (MiB)."""
    return _status('VmHWM')


class Stages:
    """Peak RSS of consecutive steps."""

    def __init__(self):
        self.record = dict(rss_before_mib=round(rss_mib(), 1))
        self.start = time.perf_counter()
        reset_peak()

    def done(self, name: str) -> None:
        self.record[f'peak_{name}_mib'] = round(peak_mib(), 1)
        reset_peak()

    def finish(self) -> dict:
        peaks = [v for k, v in self.record.items() if k.startswith('peak_')]
        self.record['peak_mib'] = max(peaks)
        self.record['seconds'] = round(time.perf_counter() - self.start, 2)
        return self.record


def build(config='groupvit_voc.py', **overrides):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    for key, value in overrides.items():
        cfg.model[key].update(value)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg.model))
    model.init_weights()
    return model.eval(), cfg


def make_large_files(img_path: str,
                     seg_path: str,
                     height: int = 6000,
                     width: int = 8000) -> None:
    """An 8000x6000 photo-like JPEG (a smooth gradient: a noise image would
    make a huge file) and a label map of 21 classes in squares."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / width, y / height, (x + y) / (width + height)], 2)
    Image.fromarray((img * 255).astype(np.uint8)).save(img_path, quality=90)
    label = ((x // 800 + y // 800) % 21).astype(np.uint8)
    Image.fromarray(label).save(seg_path)


def large_image(unbounded: bool) -> dict:
    model, cfg = build()
    if unbounded:
        model.test_cfg['max_full_size_scores_bytes'] = 1 << 62
    folder = tempfile.mkdtemp()
    img_path = osp.join(folder, 'large.jpg')
    seg_path = osp.join(folder, 'large.png')
    # Made in a child process, so that its memory is not counted here.
    child = multiprocessing.get_context('fork').Process(
        target=make_large_files, args=(img_path, seg_path))
    child.start()
    child.join()
    pipeline = Compose([
        dict(type='RobustLoadImageFromFile'),
        dict(type='Resize', scale=(2048, 448), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ])
    metric = CheckedIoUMetric()
    metric.dataset_meta = dict(classes=[str(i) for i in range(21)])
    with torch.no_grad():
        model.text_encoder()  # encoded once, before the measured steps
    stages = Stages()
    data = pipeline(
        dict(
            img_path=img_path,
            seg_map_path=seg_path,
            reduce_zero_label=False,
            seg_fields=[]))
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    stages.done('load')
    with torch.no_grad():
        result = model.predict(batch['inputs'], batch['data_samples'])
    stages.done('predict')
    metric.process({}, [r.to_dict() for r in result])
    stages.done('metric')
    return dict(
        case='8000x6000 image, 21 classes, default architecture',
        postprocess='mmseg (unbounded)' if unbounded else 'bounded',
        input_shape=list(batch['inputs'].shape),
        label_shape=list(result[0].pred_sem_seg.shape),
        seg_logits_shape=list(result[0].seg_logits.data.shape),
        **stages.finish())


def vocabulary(classes: int) -> dict:
    names = [f'object number {i}' for i in range(classes)]
    model, _ = build(text_encoder=dict(vocabulary=names))
    stages = Stages()
    with torch.no_grad():
        embeds = model.text_encoder()
    stages.done('encode')
    return dict(
        case=f'encode {classes} classes, default text encoder',
        chunk_size=model.text_encoder.chunk_size,
        embeds_shape=list(embeds.shape),
        **stages.finish())


def segment(classes: int, dense: bool) -> dict:
    names = [f'object number {i}' for i in range(classes)]
    # The tests' small image encoder, projecting to the default text
    # encoder's 256 dimensions.
    small = dict(SMALL_ARCH['image_encoder'], projection_dim=256)
    model, _ = build(
        image_encoder=small,
        text_encoder=dict(vocabulary=names),
        decode_head=dict())
    if dense:
        model.test_cfg['max_dense_scores_bytes'] = 1 << 62
    with torch.no_grad():
        model.text_encoder()
    pipeline = Compose([
        dict(type='RobustLoadImageFromFile'),
        dict(type='Resize', scale=(2048, 448), keep_ratio=True),
        dict(type='PackSegInputs')
    ])
    data = pipeline(dict(img_path=VOC_IMAGE))
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    stages = Stages()
    with torch.no_grad():
        result = model.predict(batch['inputs'], batch['data_samples'])
    stages.done('predict')
    logits = result[0].get('seg_logits')
    return dict(
        case=f'segment a 334x500 VOC image with {classes} classes',
        scores='dense (mmseg)' if dense else 'default',
        input_shape=list(batch['inputs'].shape),
        label_shape=list(result[0].pred_sem_seg.shape),
        seg_logits_shape=None if logits is None else list(logits.data.shape),
        **stages.finish())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'case', choices=['large-image', 'vocabulary', 'segment'])
    parser.add_argument('--classes', type=int, default=5000)
    parser.add_argument('--unbounded', action='store_true')
    parser.add_argument('--dense', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(2)
    init_default_scope('mmseg')
    MMLogger.get_instance('mmengine', log_level='WARNING')
    if args.case == 'large-image':
        record = large_image(args.unbounded)
    elif args.case == 'vocabulary':
        record = vocabulary(args.classes)
    else:
        record = segment(args.classes, args.dense)
    print(json.dumps(record))


if __name__ == '__main__':
    main()
