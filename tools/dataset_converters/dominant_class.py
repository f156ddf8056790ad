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
from groupvit_common.files import check_label_channels, read_label_map


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
    parser.add_argument('--offset', type=int, default=1)
    parser.add_argument('--min-object', type=float, default=0.05)
    parser.add_argument('--min-share', type=float, default=0.75)
    args = parser.parse_args(argv)
    split = osp.join(args.root, args.split)
    if not osp.isfile(split):
        sys.exit(error_line(f'split list not found: {split}'))
    with open(split) as f:
        names = [line.strip() for line in f if line.strip()]
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
