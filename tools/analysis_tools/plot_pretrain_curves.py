# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Plot a pretraining run's loss terms and zero-shot mIoU from the
``vis_data/scalars.json`` files of its work dir."""
import argparse
import glob
import json
import os.path as osp
import sys

from groupvit_common.checks import is_number
from groupvit_common.errors import DataFileError, error_line
from groupvit_common.files import read_text


def plot(curves: dict, out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, values in sorted(curves.items()):
        steps = sorted(values)
        axes, style = (right, 'o-') if name == 'mIoU' else (left, '-')
        axes.plot(steps, [values[s] for s in steps], style, label=name)
    left.set(xlabel='step', ylabel='loss')
    left.legend()
    right.set_xlabel('epoch (validation after it; 0: before training)')
    right.set_ylabel('zero-shot mIoU (%)')
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--out', default='pretrain_curves.png')
    args = parser.parse_args(argv)
    curves = {}  # {name: {step: value}} of loss, loss_* and mIoU
    files = sorted(
        glob.glob(osp.join(args.work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        sys.exit(
            error_line(f'no vis_data/scalars.json under {args.work_dir}: give '
                       f'the work dir of a tools/train.py run.'))
    folder = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(folder):
        sys.exit(
            error_line(f'--out {args.out}: no folder {folder}; give a path '
                       f'in an existing folder.'))
    for path in files:
        try:
            lines = read_text(path, what='scalars file').splitlines()
        except DataFileError as e:
            sys.exit(error_line(e))
        for number, line in enumerate(lines, 1):
            try:  # mmengine writes numbers only
                record = json.loads(line)
                values = [record['step']] + [
                    v for k, v in record.items()
                    if k == 'mIoU' or k.startswith('loss')
                ]
            except (ValueError, TypeError, KeyError, AttributeError):
                values = [None]
            if not all(map(is_number, values)):
                sys.exit(
                    error_line(f'{path} line {number} is not a record '
                               f'of mmengine\'s scalars (a JSON object '
                               f'with a step); the file was damaged or '
                               f'cut: remove that line.'))
            for name, value in record.items():
                if name == 'mIoU' or name.startswith('loss'):
                    curves.setdefault(name, {})[record['step']] = value
    plot(curves, args.out)
    print(f'wrote {args.out}')
    return curves


if __name__ == '__main__':
    main()
