# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Export a GroupViT config (and checkpoint) to ONNX, checked against
PyTorch (docs/deployment.md)."""
import argparse
import os.path as osp
import sys
import warnings

# PyTorch, mmseg and this package are imported after the command line.
from groupvit_common.errors import (ExportCheckError, error_line,
                                    exit_on_user_error)
from groupvit_common.tool_options import (CHECKPOINT_HELP, RANDOM_BANNER,
                                          check_paths, text_options, tolerance,
                                          weight_options, weights_label)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a GroupViT segmentor to ONNX (image and text '
        'graphs plus the protocol), checked against PyTorch.',
        parents=[weight_options(),
                 text_options(extra_classes=False)])
    add = parser.add_argument
    add('config', help='config file')
    add('checkpoint',
        nargs='?',
        help=CHECKPOINT_HELP + ' (default: load_from)')
    add('--out', required=True, help='export folder')
    add('--check-image',
        default=osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg'),
        help='photo whose first window is compared with PyTorch')
    add('--atol',
        type=tolerance,
        default=1e-4,
        help='largest allowed difference from PyTorch (default 1e-4)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if problem := check_paths(args.config, args.checkpoint,
                              args.random_weights):
        sys.exit(error_line(problem))
    from mmseg_groupvit.apis import init_groupvit
    from mmseg_groupvit.deployment import export_onnx
    from mmseg_groupvit.utils.console import quiet_warnings
    from mmseg_groupvit.utils.text_options import read_text_options
    quiet_warnings()
    with exit_on_user_error(FileNotFoundError, ValueError, TypeError,
                            ExportCheckError):
        if not osp.isfile(args.check_image):
            raise FileNotFoundError(
                f'Check image not found: {args.check_image}. Pass a photo '
                f'with --check-image.')
        text = read_text_options(args.vocab, args.vocab_file, None,
                                 args.templates)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='No checkpoint given')
            model = init_groupvit(
                args.config,
                args.checkpoint,
                bg_thresh=args.bg_thresh,
                seed=args.seed,
                random_weights=args.random_weights,
                **text._asdict())
        # The file init_groupvit loaded; none: random weights.
        weights = model.cfg.get('load_from')
        if not weights:
            print(f'warning: {RANDOM_BANNER} The export is a seeded random '
                  f'model (--random-weights): a trial of the export, not a '
                  f'segmenter; leave --random-weights out for the config\'s '
                  f'weights.')
        meta = export_onnx(
            model,
            model.cfg,
            args.out,
            args.check_image,
            atol=args.atol,
            weights=weights_label(weights and osp.abspath(weights), args.seed))
    check = meta['check']
    print(f'Exported to {args.out}: image.onnx, text.onnx, deploy.json '
          f'(opset {meta["opset"]}, window '
          f'{"x".join(map(str, meta["protocol"]["crop_size"]))}).')
    print(f'Checked against PyTorch on {check["image"]}: window scores max '
          f'abs diff {check["window_scores_max_abs_diff"]:.1e}, text '
          f'features {check["text_features_max_abs_diff"]:.1e} (<= '
          f'{check["atol"]:.0e}), labels {100 * check["labels_equal"]:.3f}% '
          f'equal.')
    return meta


if __name__ == '__main__':
    main()
