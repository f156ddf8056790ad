# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""COCO-Object label maps (0 background, 1..80 the COCO things) from
COCO-Stuff raw maps or an instances JSON (pycocotools; smaller ones on top)."""
import argparse
import contextlib
import os.path as osp
import re
import warnings
from functools import partial
from glob import glob

import numpy as np
from mmengine.utils import (mkdir_or_exist, track_parallel_progress,
                            track_progress)
from PIL import Image

from groupvit_common.checks import is_number
from groupvit_common.errors import exit_on_user_error, first_line, shown
from groupvit_common.files import MAX_IMAGE_PIXELS, read_json, read_label_map

#: COCO category ids 1..91 that no thing class has.
UNUSED_THING_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)
#: COCO category ids of the 80 thing classes, in label order 1..80.
COCO_THING_IDS = tuple(i for i in range(1, 91) if i not in UNUSED_THING_IDS)
NUM_RAW_IDS = 182  # COCO-Stuff category ids 1..182, stored as 0..181
RAW_UNLABELED = 255
OUT_SUFFIX = '_instanceTrainIds.png'
LABEL_OF = {cid: k for k, cid in enumerate(COCO_THING_IDS, start=1)}
_WHOLE = (int, 'a whole number')
#: The fields of an instances JSON's entries read: (type, its description).
ENTRY_FIELDS = dict(
    images=dict(
        id=_WHOLE, file_name=(str, 'text'), height=_WHOLE, width=_WHOLE),
    annotations=dict(
        image_id=_WHOLE,
        category_id=_WHOLE,
        segmentation=((list, dict), 'polygons or an RLE')))
#: Raw value (category id - 1) -> label (-1: impossible values).
RAW_TO_OBJECT = np.full(256, -1, dtype=np.int16)
RAW_TO_OBJECT[:NUM_RAW_IDS] = RAW_TO_OBJECT[RAW_UNLABELED] = 0
RAW_TO_OBJECT[np.array(COCO_THING_IDS) - 1] = np.arange(1, 81)


def convert_raw_file(in_file, out_dir):
    """Convert one raw PNG (``[H, W]`` category id - 1, or 255) to labels
    0..80; its pixels of unused (background) category ids."""
    raw = read_label_map(in_file)
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(
            f'{in_file}: expected a single-channel integer label map, got '
            f'shape {raw.shape} and dtype {raw.dtype}. Pass the COCO-Stuff '
            f'raw maps (stuffthingmaps), not colour images.')
    if raw.size and (raw.min() < 0 or raw.max() > 255):
        raise ValueError(f'{in_file}: values outside 0..255 '
                         f'({raw.min()}..{raw.max()}); not a raw map.')
    labels = RAW_TO_OBJECT[raw.astype(np.intp)]
    if (labels < 0).any():
        bad = np.unique(raw[labels < 0]).tolist()
        raise ValueError(
            f'{in_file}: values {bad} are not COCO-Stuff raw ids. Expected '
            f'category id - 1 (0..{NUM_RAW_IDS - 1}) and {RAW_UNLABELED} '
            f'for unlabeled, as in stuffthingmaps_trainval2017.')
    stem = osp.splitext(osp.basename(in_file))[0]
    Image.fromarray(labels.astype(np.uint8)).save(
        osp.join(out_dir, stem + OUT_SUFFIX))
    unused_raw = np.asarray(UNUSED_THING_IDS) - 1
    return int(np.isin(raw, unused_raw).sum())


def _run(func, tasks, nproc):
    if not tasks:
        return []
    if nproc > 1:
        return track_parallel_progress(func, tasks, nproc)
    return track_progress(func, tasks)


@contextlib.contextmanager
def _reading(ann, image):
    """Name the annotation and its image when reading it fails."""
    try:
        yield
    except Exception as e:  # noqa: B902 (pycocotools: Exception, ...)
        raise ValueError(
            f'Annotation {shown(ann.get("id"))} of image '
            f'{image["file_name"]!r} ({image["width"]}x{image["height"]}) '
            f'cannot be read ({first_line(e)}); pass an instances_*.json '
            f'file.') from None


def convert_instance_image(task, out_dir):
    """Write the label map of one ``(image entry, annotations)``, the larger
    ``area`` painted first, each mask decoded when it is painted."""
    from pycocotools import mask as mask_utils
    image, annotations = task
    height, width = image['height'], image['width']
    rles = []  # (-area, RLE, annotation): one mask decoded at a time
    for ann in annotations:
        if ann['category_id'] not in LABEL_OF:
            raise ValueError(
                f'Annotation {ann.get("id")} has category_id '
                f'{ann["category_id"]}, which is not one of the 80 COCO '
                f'thing ids. Pass an instances_*.json file (not panoptic or '
                f'stuff annotations).')
        segm = ann['segmentation']
        with _reading(ann, image):
            if isinstance(segm, list):  # polygons: one RLE per part, merged
                segm = mask_utils.merge(
                    mask_utils.frPyObjects(segm, height, width))
            elif isinstance(segm.get('counts'), list):  # uncompressed RLE
                segm = mask_utils.frPyObjects(segm, height, width)
            if list(segm['size']) != [height, width]:
                raise ValueError('its mask is {1}x{0}'.format(*segm['size']))
            area = ann['area'] if 'area' in ann else int(mask_utils.area(segm))
            if not is_number(area):
                raise ValueError(f'its area is {shown(area)}, not a number')
        rles.append((-area, segm, ann))
    labels = np.zeros((height, width), dtype=np.uint8)
    for _, segm, ann in sorted(rles, key=lambda rle: rle[0]):
        with _reading(ann, image):  # 0 and 1 as uint8, viewed as bool
            mask = mask_utils.decode(segm).view(bool)
        labels[mask] = LABEL_OF[ann['category_id']]
        mask = None  # freed before the next is decoded
    Image.fromarray(labels).save(
        osp.join(out_dir, label_map_name(image['file_name'])))


def label_map_name(file_name: str) -> str:
    """The label map's file name of an image's."""
    return osp.splitext(osp.basename(file_name))[0] + OUT_SUFFIX


def convert_instances(json_file, split, out_root, nproc):
    """Convert a COCO instances JSON: the maps written, the all-background."""
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        raise ImportError('Converting COCO instance annotations '
                          '(--instances) needs pycocotools: `pip install '
                          'pycocotools`.') from None
    coco = read_json(json_file, 2 << 30, 'COCO instances JSON (--instances)')
    expected = 'expected a COCO instances_*.json file'
    if not isinstance(coco, dict) or not all(
            isinstance(coco.get(key), list) for key in ENTRY_FIELDS):
        raise ValueError(f'{json_file} has no "images" and "annotations" '
                         f'lists; {expected}.')
    for key, fields in ENTRY_FIELDS.items():
        for index, entry in enumerate(coco[key]):
            bad = [
                f'"{name}" ({what})' for name, (kind, what) in fields.items()
                if not isinstance(entry, dict)
                or not isinstance(entry.get(name), kind)
            ]
            if bad:
                raise ValueError(f'{json_file}: {key}[{index}] has no '
                                 f'{", ".join(bad)}; {expected}.')
    stems = {}  # label map name (caseless) -> index of its image
    for index, image in enumerate(coco['images']):
        height, width = image['height'], image['width']
        if min(height, width) < 1 or height * width > MAX_IMAGE_PIXELS:
            raise ValueError(
                f'{json_file}: images[{index}] states {width}x{height} '
                f'pixels; a label map is 1 to {MAX_IMAGE_PIXELS:,} pixels.')
        name = label_map_name(image['file_name'])
        first = stems.setdefault(name.casefold(), index)
        if first != index:
            raise ValueError(
                f'{json_file}: images[{first}] and images[{index}] would '
                f'write one label map, {name} (file names '
                f'{coco["images"][first]["file_name"]!r} and '
                f'{image["file_name"]!r}); convert one folder at a time.')
    per_image = {img['id']: [] for img in coco['images']}
    for ann in coco['annotations']:
        if ann['image_id'] not in per_image:
            raise ValueError(f'Annotation {ann.get("id")} refers to image '
                             f'{ann["image_id"]}, which is not listed in '
                             f'"images" of {json_file}.')
        per_image[ann['image_id']].append(ann)
    tasks = [(img, per_image[img['id']]) for img in coco['images']]
    out_dir = osp.join(out_root, 'annotations', split)
    mkdir_or_exist(out_dir)
    _run(partial(convert_instance_image, out_dir=out_dir), tasks, nproc)
    return len(tasks), sum(1 for _, anns in tasks if not anns)


def split_from_json_name(json_file):
    """``'val2017'`` of ``instances_val2017[_sample].json``, or None."""
    match = re.match(r'instances_([A-Za-z]+\d*)', osp.basename(json_file))
    return match.group(1) if match else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Make COCO-Object label maps (0 = background, 1..80 = '
        'COCO things) from COCO-Stuff-164k raw maps or a COCO instances '
        'JSON.')
    add = parser.add_argument
    add('coco_path',
        nargs='?',
        help='COCO-Stuff-164k root with annotations/<split>/*.png raw maps')
    add('--instances', metavar='JSON', help='instances JSON to use instead')
    add('--splits', nargs='+', default=['train2017', 'val2017'])
    add('--split', help='with --instances: the split (default: its name\'s)')
    add('-o', '--out-dir', help='output root (default: coco_path)')
    add('--nproc', type=int, default=1, help='number of processes')
    args = parser.parse_args(argv)
    if args.nproc < 1:
        parser.error(f'--nproc must be >= 1, got {args.nproc}.')
    if args.instances is None and args.coco_path is None:
        parser.error('pass coco_path (COCO-Stuff-164k root, input A) or '
                     '--instances JSON (input B).')
    args.out_dir = args.out_dir or args.coco_path
    if args.out_dir is None:
        parser.error('with --instances, pass -o OUT_DIR (or coco_path) to '
                     'say where the label maps go.')
    if args.instances is not None:
        args.split = args.split or split_from_json_name(args.instances)
        if args.split is None:
            parser.error(f'cannot tell the split from {args.instances!r}; '
                         f'pass --split, e.g. --split val2017.')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.instances is not None:
        count, empty = convert_instances(args.instances, args.split,
                                         args.out_dir, args.nproc)
        print(f'{args.split}: wrote {count} label maps ({empty} without '
              f'thing annotations, all background) to '
              f'{osp.join(args.out_dir, "annotations", args.split)}')
        return {args.split: count}
    written = {}
    for split in args.splits:
        folder = osp.join(args.coco_path, 'annotations', split)
        if not osp.isdir(folder):
            print(f'{split}: no folder {args.coco_path}/annotations/{split}; '
                  f'skipped.')
            continue
        files = sorted(glob(osp.join(folder, '*.png')))
        raw_files = [f for f in files if 'TrainIds' not in osp.basename(f)]
        out_dir = osp.join(args.out_dir, 'annotations', split)
        mkdir_or_exist(out_dir)
        unused = _run(
            partial(convert_raw_file, out_dir=out_dir), raw_files, args.nproc)
        if sum(unused):
            warnings.warn(f'{sum(unused)} pixels in {split} carried unused '
                          f'COCO category ids {list(UNUSED_THING_IDS)}; they '
                          f'became background.')
        written[split] = len(raw_files)
        print(f'{split}: wrote {len(raw_files)} label maps to {out_dir} '
              f'(skipped {len(files) - len(raw_files)} *TrainIds* files)')
    if not sum(written.values()):
        raise FileNotFoundError(
            f'No COCO-Stuff raw maps found under '
            f'{osp.join(args.coco_path, "annotations")}/{{'
            f'{",".join(args.splits)}}}/*.png. Expected the '
            f'stuffthingmaps_trainval2017 PNGs there.')
    return written


if __name__ == '__main__':
    with exit_on_user_error(FileNotFoundError, ImportError, ValueError):
        main()
