# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""An image-classification list (``filename label`` lines) from
segmentation ground truth: the images one class dominates
(docs/classification.md)."""
import argparse
import os.path as osp
import sys
from typing import Iterable, Optional, Tuple

import numpy as np

from groupvit_common.errors import (DataFileError, error_line,
                                    exit_on_user_error)
from groupvit_common.files import (check_label_channels, read_label_map,
                                   read_text)
from groupvit_common.tool_options import number_in


def dominant_class(labels: np.ndarray,
                   ignore: Iterable[int] = (0, 255),
                   min_object: float = 0.05,
                   min_share: float = 0.75) -> Optional[Tuple[int, float]]:
    """The dominant value of a label map and its share of the object
    pixels, or None."""
    objects = labels[~np.isin(labels, list(ignore))]
    if objects.size < min_object * labels.size or objects.size == 0:
        return None
    values, counts = np.unique(objects, return_counts=True)
    best = int(np.argmax(counts))
    share = counts[best] / objects.size
    if share < min_share:
        return None
    return int(values[best]), float(share)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('root', help='dataset root (e.g. VOCdevkit/VOC2012)')
    parser.add_argument('-o', '--out', required=True, help='output list')
    parser.add_argument('--split', default='ImageSets/Segmentation/val.txt')
    parser.add_argument('--img-dir', default='JPEGImages')
    parser.add_argument('--img-suffix', default='.jpg')
    parser.add_argument('--seg-dir', default='SegmentationClass')
    parser.add_argument('--seg-suffix', default='.png')
    parser.add_argument('--ignore', type=int, nargs='+', default=[0, 255])
    parser.add_argument(
        '--offset',
        type=int,
        default=1,
        help='subtracted from a class value to give its label (default 1: '
        'VOC\'s class 1 is label 0)')
    share = number_in(float, 0, 1, 'must be a share in [0, 1], got {text}')
    parser.add_argument(
        '--min-object',
        type=share,
        default=0.05,
        help='least share of the image the counted pixels cover')
    parser.add_argument(
        '--min-share',
        type=share,
        default=0.75,
        help='least share of the counted pixels the class covers')
    args = parser.parse_args(argv)
    low = min(set(range(256)) - set(args.ignore), default=args.offset)
    if args.offset > low:
        parser.error(f'--offset {args.offset} would give class {low} the '
                     f'label {low - args.offset}; give 0 to {low}, the '
                     f'lowest class value not in --ignore.')
    folder = osp.dirname(osp.abspath(args.out))
    if osp.isdir(args.out) or not osp.isdir(folder):
        problem = 'is a folder' if osp.isdir(
            args.out) else (f'is in {folder}, which is no folder')
        parser.error(f'-o {args.out} {problem}; give the path of the list '
                     f'to write, in an existing folder.')
    split = osp.join(args.root, args.split)
    if not osp.isfile(split):
        sys.exit(error_line(f'split list not found: {split}'))
    with exit_on_user_error():
        lines = read_text(split, what='split list').splitlines()
    names = [line.strip() for line in lines if line.strip()]
    lines = []
    for name in names:
        seg = osp.join(args.root, args.seg_dir, name + args.seg_suffix)
        with exit_on_user_error():
            if not osp.isfile(seg):
                raise DataFileError(
                    f'label map not found: {seg} (its name is in the split '
                    f'list); check --seg-dir and --seg-suffix.')
            labels = read_label_map(seg)
            check_label_channels(labels, seg)
        found = dominant_class(labels, args.ignore, args.min_object,
                               args.min_share)
        if found is not None:
            image = osp.join(args.img_dir, name + args.img_suffix)
            lines.append(f'{image} {found[0] - args.offset}')
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'{len(lines)} of {len(names)} images kept: {args.out}')


if __name__ == '__main__':
    main()
