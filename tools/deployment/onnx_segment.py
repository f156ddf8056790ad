# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot segmentation with an export of ``pytorch2onnx.py`` and
onnxruntime, without PyTorch (docs/deployment.md)."""
import argparse
import json
import os.path as osp
import sys

import numpy as np

from groupvit_common import drawing, image_files, palette, vocabulary
from groupvit_common.checks import check_bg_thresh
from groupvit_common.errors import (DataFileError, error_line,
                                    exit_on_user_error, interruptible)
from groupvit_common.files import check_out_dir
from groupvit_common.tool_options import (RANDOM_BANNER, picture_options,
                                          text_options)
from groupvit_ort import OnnxSegmenter, UnreadableImage

RANDOM_NOTE = [
    RANDOM_BANNER, 'Export a converted checkpoint (see docs/deployment.md).'
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GroupViT zero-shot segmentation with onnxruntime '
        '(no PyTorch).',
        parents=[
            text_options(extra_classes=False, templates=False),
            picture_options()
        ])
    add = parser.add_argument
    add('export', help='export folder (pytorch2onnx.py)')
    add('images', nargs='+', help='image files or folders')
    add('--out', default='outputs/onnx', help='output folder')
    add('--threads', type=int, help='onnxruntime threads (default: all)')
    add('--window-batch',
        type=int,
        default=2,
        help='windows per image-graph call (default 2)')
    return parser.parse_args(argv)


@interruptible
def main(argv=None):
    args = parse_args(argv)
    with exit_on_user_error(FileNotFoundError, ValueError, TypeError):
        images = image_files.list_images(args.images)
        classes = vocabulary.read_vocab_options(args.vocab, args.vocab_file)
        if args.bg_thresh is not None:
            check_bg_thresh(args.bg_thresh, '--bg-thresh')
        model = OnnxSegmenter(
            args.export, threads=args.threads, window_batch=args.window_batch)
        protocol, with_bg = model.protocol, model.protocol['with_bg']
        if args.bg_thresh is not None and not with_bg:
            raise ValueError(
                f'--bg-thresh does not apply to this export: its head has no '
                f'background channel (with_bg is false in {args.export}/'
                f'deploy.json, e.g. PASCAL Context 59 or ADE20K); leave it '
                f'out.')
        bg_thresh = protocol['bg_thresh'] if args.bg_thresh is None else \
            args.bg_thresh
        if classes is not None:
            classes = vocabulary.split_background(classes, with_bg)[0]
            vocabulary.check_background(classes)
        classes = protocol['classes'] if classes is None else classes
        class_embeds, cut = model.class_embeddings(classes)
    if cut:
        print(f'warning: {len(cut)} prompt(s) are longer than '
              f'{protocol["context_length"]} tokens and were cut, e.g. '
              f'"{cut[0][:80]}...".')
    weights = str(model.meta.get('weights', 'random'))
    note = RANDOM_NOTE if weights.startswith('random') else None
    if note:
        print('warning: ' + ' '.join(note))
    colours = np.asarray(
        palette.class_palette(len(classes) + with_bg, with_bg), np.uint8)
    names = ['background'] * with_bg + [c[0] for c in classes]
    synonyms = [[]] * with_bg + [c[1:] for c in classes]
    text = dict(
        Software='mmseg-groupvit tools/deployment/onnx_segment.py',
        weights=weights)
    with exit_on_user_error():  # made once the inputs are known good
        check_out_dir(args.out, '--out')
    results, failed, refused, unwritten = [], [], [], []
    for path, stem in zip(images, image_files.unique_stems(images)):
        try:
            rgb, labels = model.predict_file(path, class_embeds, bg_thresh)
        except UnreadableImage as e:
            failed.append(path)
            print(error_line(e), file=sys.stderr)
            continue
        except ValueError as e:  # e.g. a panorama below the window
            refused.append(path)
            print(error_line(f'{path}: {e}'), file=sys.stderr)
            continue
        legend = drawing.class_legend(names, synonyms, with_bg, labels,
                                      colours)
        pictures = drawing.prediction_pictures(
            ('prediction', 'overlay'), dict(text, source=osp.abspath(path)),
            rgb, labels, colours, args.opacity, with_bg, legend, False, note)
        try:
            files = drawing.save_pngs(args.out, stem, pictures)
        except DataFileError as e:  # a file of the user's in the way
            unwritten.append(path)
            print(error_line(e), file=sys.stderr)
            continue
        result = dict(image=osp.abspath(path), size=list(rgb.shape[1::-1]))
        results.append(dict(result, outputs=files, legend=legend))
    summary = dict(
        export=osp.abspath(args.export),
        weights=model.meta.get('weights', 'random'),
        classes=names,
        templates=protocol['templates'],
        bg_thresh=bg_thresh,
        images=results,
        failed=failed + refused + unwritten)
    with open(osp.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    for result in results:
        print('Wrote:\n  ' + '\n  '.join(result['outputs'].values()))
    problems = [
        f'{len(paths)} of {len(images)} image(s) {what}: {", ".join(paths)}'
        for paths, what in [(failed, 'could not be read'),
                            (refused, 'could not be segmented with this export'
                             ), (unwritten, 'were not written')] if paths
    ]
    if problems:
        sys.exit(error_line('; '.join(problems)))
    return summary


if __name__ == '__main__':
    main()
