# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot segmentation with an ONNX export, without PyTorch.

Usage::

    python tools/deployment/onnx_segment.py DIR IMAGE_OR_FOLDER [...]
        [--vocab "cat,dog|puppy" | --vocab-file FILE] [--bg-thresh T]
        [--out OUT] [--threads N] [--window-batch 2] [--opacity 0.5]

``DIR`` is an export of ``tools/deployment/pytorch2onnx.py``; only
onnxruntime, numpy, Pillow and the torch-free ``groupvit_common`` are
imported. Writes ``<name>_prediction.png`` (palette PNG, pixel value =
label), ``<name>_overlay.png`` (with the demo's legend) and
``summary.json`` into ``--out``. See docs/deployment.md.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np

from groupvit_common import checks as config_checks
from groupvit_common import drawing, image_files
from groupvit_common import palette as palettes
from groupvit_common import vocabulary
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
    parser.add_argument('export', help='export folder (pytorch2onnx.py)')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument('--out', default='outputs/onnx', help='output folder')
    parser.add_argument(
        '--threads', type=int, help='onnxruntime threads (default: all)')
    parser.add_argument(
        '--window-batch',
        type=int,
        default=2,
        help='windows per image-graph call (default 2)')
    return parser.parse_args(argv)


def check_inputs(args):
    """``(images, classes or None, bg_thresh or None)``, checked before the
    export is loaded."""
    images = image_files.list_images(args.images)
    classes = None
    if args.vocab is not None:
        classes = vocabulary.parse_class_list(args.vocab, '--vocab')
    elif args.vocab_file is not None:
        classes = vocabulary.load_vocabulary(args.vocab_file)
    bg_thresh = None
    if args.bg_thresh is not None:
        bg_thresh = config_checks.check_bg_thresh(args.bg_thresh,
                                                  '--bg-thresh')
    return images, classes, bg_thresh


def main(argv=None):
    args = parse_args(argv)
    try:
        images, classes, bg_thresh = check_inputs(args)
        model = OnnxSegmenter(
            args.export, threads=args.threads, window_batch=args.window_batch)
        protocol = model.protocol
        if classes is None:
            classes = protocol['classes']
        else:
            classes, _ = vocabulary.split_background(classes,
                                                     protocol['with_bg'])
        if bg_thresh is None:
            bg_thresh = protocol['bg_thresh']
        elif not protocol['with_bg']:
            raise ValueError(
                f'--bg-thresh does not apply to this export: its head has no '
                f'background channel (with_bg is false in {args.export}/'
                f'deploy.json, e.g. PASCAL Context 59 or ADE20K); leave it '
                f'out.')
        class_embeds, cut = model.class_embeddings(classes)
    except (FileNotFoundError, ValueError, TypeError) as e:
        sys.exit(f'error: {e}')
    if cut:
        print(f'warning: {len(cut)} prompt(s) are longer than '
              f'{protocol["context_length"]} tokens and were cut, e.g. '
              f'"{cut[0][:80]}...".')
    weights = model.meta.get('weights', 'random')
    note = RANDOM_NOTE if str(weights).startswith('random') else None
    if note:
        print('warning: ' + ' '.join(RANDOM_NOTE))
    with_bg = protocol['with_bg']
    palette = np.asarray(
        palettes.class_palette(len(classes) + int(with_bg), with_bg), np.uint8)
    os.makedirs(args.out, exist_ok=True)
    results, failed, refused = [], [], []
    names = (['background'] if with_bg else []) + [c[0] for c in classes]
    synonyms = ([[]] if with_bg else []) + [c[1:] for c in classes]
    text = dict(
        Software='mmseg-groupvit tools/deployment/onnx_segment.py',
        weights=str(weights))
    for path, stem in zip(images, image_files.unique_stems(images)):
        try:
            rgb, labels = model.predict_file(path, class_embeds, bg_thresh)
        except UnreadableImage as e:
            failed.append(path)
            print(f'error: {e}', file=sys.stderr)
            continue
        except ValueError as e:
            # The export cannot take this image (e.g. a panorama whose
            # resized short side is below the window).
            refused.append(path)
            print(f'error: {path}: {e}', file=sys.stderr)
            continue
        legend = drawing.class_legend(names, synonyms, with_bg, labels,
                                      palette)
        info = drawing.png_text(
            dict(text, source=osp.abspath(path), legend=legend))
        files = {
            kind: osp.join(args.out, f'{stem}_{kind}.png')
            for kind in ('prediction', 'overlay')
        }
        drawing.palette_png(labels, palette).save(
            files['prediction'], pnginfo=info)
        drawing.labelled_overlay(
            rgb, labels, palette, args.opacity, with_bg, legend,
            note=note).save(
                files['overlay'], pnginfo=info)
        results.append(
            dict(
                image=osp.abspath(path),
                size=[rgb.shape[1], rgb.shape[0]],
                outputs=files,
                legend=legend))
    summary = dict(
        export=osp.abspath(args.export),
        weights=weights,
        classes=names,
        templates=protocol['templates'],
        bg_thresh=bg_thresh,
        images=results,
        failed=failed + refused)
    with open(osp.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    for result in results:
        print('Wrote:\n  ' + '\n  '.join(result['outputs'].values()))
    problems = [(failed, 'could not be read'),
                (refused, 'could not be segmented with this export')]
    problems = [
        f'{len(paths)} of {len(images)} image(s) {what}: '
        f'{", ".join(paths)}' for paths, what in problems if paths
    ]
    if problems:
        sys.exit('error: ' + '; '.join(problems))
    return summary


if __name__ == '__main__':
    main()
