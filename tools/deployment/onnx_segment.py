# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot segmentation with an ONNX export, without PyTorch.

Usage::

    python tools/deployment/onnx_segment.py DIR IMAGE_OR_FOLDER [...]
        [--vocab "cat,dog|puppy" | --vocab-file FILE] [--bg-thresh T]
        [--out OUT] [--threads N] [--window-batch 2] [--opacity 0.5]

``DIR`` is an export of ``tools/deployment/pytorch2onnx.py``. Imports only
onnxruntime, numpy, Pillow and the standard library (plus the torch-free
``groupvit_common``: vocabulary, threshold and drawing), and
runs the config's protocol: keep-ratio resize, normalisation, slide
windows averaged as mmseg does, resize back, argmax. For every image it
writes into ``--out``:

- ``<name>_prediction.png``: the label map at the image's size (a palette
  PNG: pixel value = label, ``background`` = 0 when the export has one);
- ``<name>_overlay.png``: the prediction over the photo with a legend, as
  ``tools/demo.py`` draws it;

and ``summary.json``. Without ``--vocab`` the export's vocabulary and
threshold are used. See docs/deployment.md.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
from PIL import Image

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)

from groupvit_common import checks as config_checks
from groupvit_common import drawing, image_files
from groupvit_common import palette as palettes
from groupvit_common import vocabulary
from groupvit_ort import OnnxSegmenter, UnreadableImage

RANDOM_NOTE = [
    'RANDOM WEIGHTS: not a real prediction.',
    'Export a converted checkpoint (see docs/deployment.md).'
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GroupViT zero-shot segmentation with onnxruntime '
        '(no PyTorch).')
    parser.add_argument('export', help='export folder (pytorch2onnx.py)')
    parser.add_argument('images', nargs='+', help='image files or folders')
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument(
        '--vocab',
        help='comma-separated classes, "|" between synonyms of one class '
        '(default: the export\'s classes)')
    vocab.add_argument(
        '--vocab-file',
        help='text file, one class per line, commas between synonyms')
    parser.add_argument(
        '--bg-thresh',
        type=float,
        help='background threshold in [0, 1] (the export\'s when omitted)')
    parser.add_argument('--out', default='outputs/onnx', help='output folder')
    parser.add_argument(
        '--threads', type=int, help='onnxruntime threads (default: all)')
    parser.add_argument(
        '--window-batch',
        type=int,
        default=2,
        help='windows per image-graph call (default 2)')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='colour weight of the overlay (default 0.5)')
    args = parser.parse_args(argv)
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be in [0, 1], got {args.opacity}')
    return args


def unique_stems(paths):
    """Output name stems, made unique when two inputs share a name."""
    stems, seen = [], {}
    for path in paths:
        stem = osp.splitext(osp.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f'{stem}_{seen[stem]}')
    return stems


def check_inputs(args):
    """Images, vocabulary and threshold, checked before the export is
    loaded. Returns ``(images, classes or None, bg_thresh or None)``."""
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


def palette_png(labels, palette):
    """A label map as a palette PNG (pixel value = label); beyond 256
    labels, a 16-bit grey PNG."""
    if len(palette) > 256:
        return Image.fromarray(labels.astype(np.uint16))
    picture = Image.fromarray(labels.astype(np.uint8), mode='P')
    flat = np.zeros((256, 3), np.uint8)
    flat[:len(palette)] = np.asarray(palette, np.uint8)[:256]
    picture.putpalette(flat.flatten().tolist())
    return picture


def legend_of(classes, with_bg, labels, palette):
    """``summary.json``'s legend (every class) and the picture's entries
    and closing line (the classes present, most pixels first, and how many
    are absent: the demo's legend)."""
    names = [c[0] for c in classes]
    synonyms = [c[1:] for c in classes]
    if with_bg:
        names, synonyms = ['background'] + names, [[]] + synonyms
    shares = np.bincount(
        labels.ravel(), minlength=len(names)) / max(labels.size, 1)
    legend = [
        dict(
            name=name,
            synonyms=synonyms[i],
            color=None if (with_bg and i == 0) else palette[i].tolist(),
            share=round(float(shares[i]), 6)) for i, name in enumerate(names)
    ]
    return legend, drawing.legend_entries(legend)


def write_outputs(out_dir, stem, rgb, labels, legend_info, palette, note, text,
                  opacity, with_bg):
    legend, (entries, footer) = legend_info
    files = {}
    path = osp.join(out_dir, f'{stem}_prediction.png')
    palette_png(labels, palette).save(
        path, pnginfo=drawing.png_text(dict(text, legend=legend)))
    files['prediction'] = path
    blended = drawing.overlay_labels(rgb, labels, palette, opacity,
                                     0 if with_bg else None)
    picture, top = Image.fromarray(blended), 0
    if note:
        picture, top = drawing.draw_banner(picture, note)
    path = osp.join(out_dir, f'{stem}_overlay.png')
    drawing.draw_legend(
        picture, entries, top, footer=footer).save(
            path, pnginfo=drawing.png_text(dict(text, legend=legend)))
    files['overlay'] = path
    return files


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
            # The package's rule of a leading 'background' (label 0).
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
    for path, stem in zip(images, unique_stems(images)):
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
        legend_info = legend_of(classes, with_bg, labels, palette)
        text = dict(
            Software='mmseg-groupvit tools/deployment/onnx_segment.py',
            source=osp.abspath(path),
            weights=str(weights))
        files = write_outputs(args.out, stem, rgb, labels, legend_info,
                              palette, note, text, args.opacity, with_bg)
        results.append(
            dict(
                image=osp.abspath(path),
                size=[rgb.shape[1], rgb.shape[0]],
                outputs=files,
                legend=legend_info[0]))
    summary = dict(
        export=osp.abspath(args.export),
        weights=weights,
        classes=(['background'] if with_bg else []) + [c[0] for c in classes],
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
