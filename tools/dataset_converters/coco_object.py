# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Make GroupViT's COCO-Object label maps (background + 80 thing classes).

Output, for ``mmseg_groupvit.datasets.COCOObjectDataset``::

    OUT/annotations/<split>/<image name>_instanceTrainIds.png

uint8, single channel: 0 = background (stuff and unlabeled included),
1..80 = the COCO thing classes in category-id order (person = 1,
bicycle = 2, ..., stop sign = 12, ..., toothbrush = 80). COCO numbers its 80
things with ids 1..90 and leaves 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 (and,
in COCO-Stuff, 91) unused; those are skipped when counting. This is the
convention of GroupViT's ``convert_dataset/convert_coco_object.py``
(NVlabs/GroupViT, read for reference only), whose 81-class COCO-Object
evaluation counts background as class 0.

Two inputs:

A. COCO-Stuff-164k raw maps (``stuffthingmaps_trainval2017``), the source
   GroupViT uses::

       python tools/dataset_converters/coco_object.py data/coco_stuff164k \\
           --nproc 8

   reads ``data/coco_stuff164k/annotations/{train2017,val2017}/*.png``
   (pixel = COCO category id - 1, i.e. 0..181; 255 = unlabeled; files with
   ``TrainIds`` in their name are skipped, so outputs written next to the
   inputs are never read back) and writes next to them unless ``-o`` is
   given. Things (raw 0..89) become 1..80; stuff (raw 91..181), the unused
   ids and 255 become 0. Any other value stops the conversion with an error
   naming the file.

B. COCO instance annotations, for when COCO-Stuff is not at hand::

       python tools/dataset_converters/coco_object.py \\
           --instances data/coco/annotations/instances_val2017.json \\
           -o data/coco_stuff164k

   Needs ``pycocotools``. Every annotation of an image is rasterised,
   ``iscrowd`` ones included. **Overlap rule**: annotations are painted in
   order of decreasing ``area`` (ties keep file order), so where objects
   overlap the smaller one is on top. Images without thing annotations get
   an all-background map. Because COCO-Stuff's thing pixels were drawn from
   these same annotations, the result differs from input A only where
   objects overlap.

The number of files is reported but not checked, so subsets convert too
(full COCO-Stuff-164k has 118,287 + 5,000 maps).
"""
import argparse
import json
import os.path as osp
import re
import sys
import warnings
from functools import partial
from glob import glob
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import (mkdir_or_exist, track_parallel_progress,
                            track_progress)
from PIL import Image

#: COCO category ids of the 80 thing classes, in label order 1..80.
COCO_THING_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18,
                  19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36,
                  37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52,
                  53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70,
                  72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87,
                  88, 89, 90)
#: Category ids below 92 (COCO-Stuff's first stuff id) without a class.
UNUSED_THING_IDS = tuple(sorted(set(range(1, 92)) - set(COCO_THING_IDS)))
NUM_RAW_IDS = 182  # COCO-Stuff category ids 1..182, stored as 0..181
RAW_UNLABELED = 255
OUT_SUFFIX = '_instanceTrainIds.png'
PYCOCOTOOLS_HINT = ('Converting COCO instance annotations (--instances) '
                    'needs pycocotools: `pip install pycocotools`.')


def build_raw_lut() -> np.ndarray:
    """Look-up table from a COCO-Stuff raw value to a COCO-Object label.

    Returns:
        np.ndarray: ``[256]`` int16: 1..80 for things, 0 for stuff, unused
        ids and 255, and -1 for values a raw map cannot hold (182..254).
    """
    lut = np.full(256, -1, dtype=np.int16)
    lut[:NUM_RAW_IDS] = 0
    lut[RAW_UNLABELED] = 0
    for label, category_id in enumerate(COCO_THING_IDS, start=1):
        lut[category_id - 1] = label
    return lut


RAW_TO_OBJECT = build_raw_lut()


def convert_raw_map(raw: np.ndarray, name: str = 'label map') -> np.ndarray:
    """Map a COCO-Stuff raw label map to COCO-Object labels.

    Args:
        raw (np.ndarray): ``[H, W]`` integer map, category id - 1 (0..181)
            or 255.
        name (str): What ``raw`` is, for error messages.

    Returns:
        np.ndarray: ``[H, W]`` uint8, 0..80.

    Raises:
        ValueError: If ``raw`` is not 2-D, not integer, or holds a value
            outside 0..181 and 255.
    """
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(
            f'{name}: expected a single-channel integer label map, got '
            f'shape {raw.shape} and dtype {raw.dtype}. Pass the COCO-Stuff '
            f'raw maps (stuffthingmaps), not colour images.')
    if raw.size and (raw.min() < 0 or raw.max() > 255):
        raise ValueError(f'{name}: values outside 0..255 '
                         f'({raw.min()}..{raw.max()}); not a raw map.')
    labels = RAW_TO_OBJECT[raw.astype(np.intp)]
    if (labels < 0).any():
        bad = np.unique(raw[labels < 0]).tolist()
        raise ValueError(
            f'{name}: values {bad} are not COCO-Stuff raw ids. Expected '
            f'category id - 1 (0..{NUM_RAW_IDS - 1}) and {RAW_UNLABELED} '
            f'for unlabeled, as in stuffthingmaps_trainval2017.')
    return labels.astype(np.uint8)


def convert_raw_file(in_file: str, out_dir: str) -> int:
    """Convert one COCO-Stuff raw PNG and write the COCO-Object PNG.

    Args:
        in_file (str): Path of the raw map.
        out_dir (str): Folder for the ``*_instanceTrainIds.png`` output.

    Returns:
        int: Number of pixels that carried an unused category id (mapped to
        background; 0 for genuine COCO-Stuff maps).
    """
    raw = np.asarray(Image.open(in_file))
    labels = convert_raw_map(raw, name=in_file)
    stem = osp.splitext(osp.basename(in_file))[0]
    Image.fromarray(labels).save(osp.join(out_dir, stem + OUT_SUFFIX))
    unused_raw = np.asarray(UNUSED_THING_IDS) - 1
    return int(np.isin(raw, unused_raw).sum())


def _run(func, tasks: Sequence, nproc: int) -> List:
    """Run ``func`` over ``tasks`` with an mmengine progress bar."""
    if not tasks:
        return []
    if nproc > 1:
        return track_parallel_progress(func, tasks, nproc)
    return track_progress(func, tasks)


def convert_stuff_split(coco_path: str, split: str, out_root: str,
                        nproc: int) -> Tuple[int, int]:
    """Convert the raw maps of one split (input A).

    Args:
        coco_path (str): COCO-Stuff-164k root holding
            ``annotations/<split>/*.png``.
        split (str): Split folder name, e.g. ``'val2017'``.
        out_root (str): Output root; maps go to ``annotations/<split>/``.
        nproc (int): Worker processes.

    Returns:
        tuple[int, int]: Maps written, and ``*TrainIds*`` files skipped.
    """
    files = sorted(glob(osp.join(coco_path, 'annotations', split, '*.png')))
    raw_files = [f for f in files if 'TrainIds' not in osp.basename(f)]
    out_dir = osp.join(out_root, 'annotations', split)
    mkdir_or_exist(out_dir)
    unused = _run(partial(convert_raw_file, out_dir=out_dir), raw_files, nproc)
    if sum(unused):
        warnings.warn(f'{sum(unused)} pixels in {split} carried unused COCO '
                      f'category ids {list(UNUSED_THING_IDS)}; they became '
                      f'background.')
    return len(raw_files), len(files) - len(raw_files)


def annotation_mask(annotation: Dict, height: int, width: int) -> np.ndarray:
    """Rasterise one COCO annotation (polygons or RLE) with pycocotools.

    Args:
        annotation (dict): A COCO instance annotation.
        height (int): Image height H.
        width (int): Image width W.

    Returns:
        np.ndarray: ``[H, W]`` bool mask.
    """
    from pycocotools import mask as mask_utils
    segm = annotation['segmentation']
    if isinstance(segm, list):  # polygons: one RLE per part, then merge
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segm, height, width)
    else:  # compressed RLE
        rle = segm
    return mask_utils.decode(rle).astype(bool)


def rasterize_instances(annotations: Sequence[Dict], height: int,
                        width: int) -> np.ndarray:
    """Paint one image's thing annotations into a COCO-Object label map.

    Larger annotations are painted first, so smaller ones end up on top
    where they overlap; equal areas keep their order.

    Args:
        annotations (Sequence[dict]): The image's COCO annotations, with
            ``category_id``, ``segmentation`` and ``area`` (the mask's
            pixel count is used where ``area`` is missing).
        height (int): Image height H.
        width (int): Image width W.

    Returns:
        np.ndarray: ``[H, W]`` uint8 labels, 0..80.

    Raises:
        ValueError: If an annotation's category is not a COCO thing.
    """
    label_of = {cid: k for k, cid in enumerate(COCO_THING_IDS, start=1)}
    for ann in annotations:
        if ann['category_id'] not in label_of:
            raise ValueError(
                f'Annotation {ann.get("id")} has category_id '
                f'{ann["category_id"]}, which is not one of the 80 COCO '
                f'thing ids. Pass an instances_*.json file (not panoptic or '
                f'stuff annotations).')
    masks = [annotation_mask(ann, height, width) for ann in annotations]
    areas = [
        ann['area'] if 'area' in ann else int(mask.sum())
        for ann, mask in zip(annotations, masks)
    ]
    labels = np.zeros((height, width), dtype=np.uint8)
    # sorted() is stable: equal areas keep their file order.
    for index in sorted(range(len(masks)), key=lambda i: -areas[i]):
        labels[masks[index]] = label_of[annotations[index]['category_id']]
    return labels


def convert_instance_image(task: Tuple[Dict, List[Dict]],
                           out_dir: str) -> None:
    """Rasterise and write the label map of one image (input B).

    Args:
        task (tuple[dict, list[dict]]): The COCO ``images`` entry and its
            annotations.
        out_dir (str): Folder for the ``*_instanceTrainIds.png`` output.
    """
    image, annotations = task
    labels = rasterize_instances(annotations, image['height'], image['width'])
    stem = osp.splitext(osp.basename(image['file_name']))[0]
    Image.fromarray(labels).save(osp.join(out_dir, stem + OUT_SUFFIX))


def convert_instances(json_file: str, split: str, out_root: str,
                      nproc: int) -> Tuple[int, int]:
    """Convert a COCO instances JSON (input B).

    Args:
        json_file (str): Path of ``instances_<split>.json``.
        split (str): Output split folder.
        out_root (str): Output root; maps go to ``annotations/<split>/``.
        nproc (int): Worker processes.

    Returns:
        tuple[int, int]: Maps written, and how many of them are all
        background (images without thing annotations).
    """
    try:
        import pycocotools.mask  # noqa: F401
    except ImportError:
        raise ImportError(PYCOCOTOOLS_HINT) from None
    with open(json_file) as f:
        coco = json.load(f)
    missing = {'images', 'annotations'} - set(coco)
    if missing:
        raise ValueError(f'{json_file} has no {sorted(missing)} key(s); '
                         f'expected a COCO instances_*.json file.')
    known = {c['id'] for c in coco.get('categories', [])}
    if known and known != set(COCO_THING_IDS):
        warnings.warn(f'The categories of {json_file} are not the 80 COCO '
                      f'thing ids; annotations of other categories will '
                      f'fail.')
    per_image: Dict[int, List[Dict]] = {
        img['id']: []
        for img in coco['images']
    }
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


def split_from_json_name(json_file: str) -> Optional[str]:
    """Guess the split from a COCO file name, or return ``None``.

    ``instances_val2017.json`` and ``instances_val2017_sample.json`` give
    ``'val2017'``; ``instances_minival.json`` gives ``'minival'``.
    """
    match = re.match(r'instances_([A-Za-z]+\d*)', osp.basename(json_file))
    return match.group(1) if match else None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the command line."""
    parser = argparse.ArgumentParser(
        description='Make COCO-Object label maps (0 = background, 1..80 = '
        'COCO things) from COCO-Stuff-164k raw maps or from a COCO '
        'instances JSON.')
    parser.add_argument(
        'coco_path',
        nargs='?',
        help='COCO-Stuff-164k root with annotations/<split>/*.png raw maps '
        '(input A). With --instances it is only the default output root.')
    parser.add_argument(
        '--instances',
        metavar='JSON',
        help='COCO instances_<split>.json to rasterise instead (input B, '
        'needs pycocotools).')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train2017', 'val2017'],
        help='input A: split folders to convert (default: %(default)s); '
        'missing ones are skipped.')
    parser.add_argument(
        '--split',
        help='input B: output split folder (default: taken from '
        'instances_<split>.json).')
    parser.add_argument(
        '-o',
        '--out-dir',
        help='output root; maps go to OUT_DIR/annotations/<split>/ '
        '(default: coco_path).')
    parser.add_argument(
        '--nproc',
        type=int,
        default=1,
        help='worker processes (default: %(default)s).')
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


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Run the converter.

    Args:
        argv (Sequence[str], optional): Command-line arguments; defaults to
            ``sys.argv[1:]``.

    Returns:
        dict[str, int]: Number of maps written per split.
    """
    args = parse_args(argv)
    written = {}
    if args.instances is not None:
        if not osp.isfile(args.instances):
            raise FileNotFoundError(
                f'COCO instances file {args.instances!r} does not exist.')
        count, empty = convert_instances(args.instances, args.split,
                                         args.out_dir, args.nproc)
        written[args.split] = count
        print(f'{args.split}: wrote {count} label maps ({empty} without '
              f'thing annotations, all background) to '
              f'{osp.join(args.out_dir, "annotations", args.split)}')
        return written
    for split in args.splits:
        if not osp.isdir(osp.join(args.coco_path, 'annotations', split)):
            print(f'{split}: no folder {args.coco_path}/annotations/{split}; '
                  f'skipped.')
            continue
        count, skipped = convert_stuff_split(args.coco_path, split,
                                             args.out_dir, args.nproc)
        written[split] = count
        print(f'{split}: wrote {count} label maps to '
              f'{osp.join(args.out_dir, "annotations", split)} (skipped '
              f'{skipped} *TrainIds* files)')
    if not sum(written.values()):
        raise FileNotFoundError(
            f'No COCO-Stuff raw maps found under '
            f'{osp.join(args.coco_path, "annotations")}/{{'
            f'{",".join(args.splits)}}}/*.png. Expected the '
            f'stuffthingmaps_trainval2017 PNGs there.')
    return written


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except (FileNotFoundError, ImportError, ValueError) as error:
        sys.exit(f'error: {error}')
