# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Segment (or classify) your own images with your own words
(docs/demo.md)."""
import argparse
import copy
import functools
import json
import os.path as osp
import sys
import warnings

import numpy as np
from PIL import Image

# PyTorch and mmseg are imported after the command line.
from groupvit_common.drawing import (class_legend, labelled_overlay,
                                     mark_boundaries, overlay_labels,
                                     palette_png, prediction_pictures,
                                     save_pngs, tile_panes)
from groupvit_common.errors import (USER_ERRORS, error_line,
                                    exit_on_user_error, interruptible)
from groupvit_common.files import check_out_dir
from groupvit_common.image_files import list_images, unique_stems
from groupvit_common.palette import distinct_colors
from groupvit_common.tool_options import (CHECKPOINT_HELP, RANDOM_BANNER,
                                          check_device, check_paths,
                                          picture_options, text_options,
                                          weight_options)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHOW_CHOICES = ('overlay', 'prediction', 'groups', 'final_groups', 'panel')
SEGMENT_CONFIG = osp.join(REPO, 'configs', 'groupvit_voc.py')
CLASSIFY_CONFIG = osp.join(REPO, 'configs', 'classification',
                           'groupvit_imagenet.py')
SOFTWARE = 'mmseg-groupvit tools/demo.py'
RANDOM_NOTE = [
    RANDOM_BANNER,
    'Leave --random-weights out (see docs/demo.md) for real results.'
]


def _weights_name(checkpoint):
    if not checkpoint:
        return 'random'
    return checkpoint if '://' in checkpoint else osp.abspath(checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GroupViT open-vocabulary segmentation demo: segment '
        'images with your own class names.',
        parents=[weight_options(),
                 text_options(),
                 picture_options()])
    add = parser.add_argument
    add('images', nargs='+', help='image files or folders')
    add('--config',
        help='config (default: configs/groupvit_voc.py, with --classify '
        'configs/classification/groupvit_imagenet.py)')
    add('--checkpoint', help=CHECKPOINT_HELP + ' (default: load_from)')
    add('--out', default='outputs/demo', help='output folder')
    add('--show',
        default='overlay,prediction,groups',
        help=f'comma-separated subset of {",".join(SHOW_CHOICES)} '
        '(default: overlay,prediction,groups)')
    add('--legend',
        choices=('present', 'all'),
        default='present',
        help='legend: the classes present (and how many are absent), or all')
    add('--classify',
        action='store_true',
        help='print each image\'s classes ranked instead (see '
        'docs/classification.md)')
    add('--topk', type=int, default=5, help='classes --classify prints')
    add('--device', default='cpu', help='torch device (cpu, cuda:0, ...)')
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = CLASSIFY_CONFIG if args.classify else SEGMENT_CONFIG
    if args.classify and args.bg_thresh is not None:
        parser.error('--bg-thresh is a segmentation setting; a classifier '
                     'has no background. Drop it or drop --classify.')
    if args.topk < 1:
        parser.error(f'--topk must be at least 1, got {args.topk}')
    args.show = [s.strip() for s in args.show.split(',') if s.strip()]
    unknown = sorted(set(args.show) - set(SHOW_CHOICES))
    if unknown or not args.show:
        what = f'unknown item(s) {unknown}' if unknown else 'nothing given'
        parser.error(f'--show: {what}; choose from {",".join(SHOW_CHOICES)}')
    return args


def segment(model, load, path, stem, args, note):
    """Segment one image and write its pictures; its summary entry."""
    from mmseg.apis import inference_model

    from mmseg_groupvit.apis import image_group_maps
    bgr = load(dict(img_path=path))['img']
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    labels = inference_model(model, bgr).pred_sem_seg.data[0].cpu().numpy()
    classes = model.dataset_meta['classes']
    palette = np.asarray(model.dataset_meta['palette'], np.uint8)
    with_bg = getattr(model.decode_head, 'with_bg', False)
    synonyms = [[]] * with_bg + [n[1:] for n in model.text_encoder.classes]
    legend = class_legend(classes, synonyms, with_bg, labels, palette)
    base = dict(
        Software=SOFTWARE,
        source=osp.abspath(path),
        weights=_weights_name(args.checkpoint))
    show = set(args.show)
    every = args.legend == 'all'
    kinds = [k for k in ('overlay', 'prediction') if k in show]
    pictures = prediction_pictures(kinds, base, rgb, labels, palette,
                                   args.opacity, with_bg, legend, every, note)
    panes, titles = [Image.fromarray(rgb)], ['image']
    if 'panel' in show:
        panes.append(
            labelled_overlay(rgb, labels, palette, args.opacity, with_bg,
                             legend, every))
        titles.append('prediction')
    groups_summary = []
    stages = image_group_maps(
        model, bgr) if {'groups', 'final_groups', 'panel'} & show else []
    for index, (groups, num_groups) in enumerate(stages, 1):
        final = index == len(stages)
        colours = distinct_colors(num_groups, seed=index)
        non_empty = len(np.unique(groups))
        counts = dict(stage=index, groups=num_groups, non_empty=non_empty)
        groups_summary.append(dict(counts, file=f'groups_stage{index}'))
        if 'groups' in show or (final and 'final_groups' in show):
            pictures[f'groups_stage{index}'] = (palette_png(groups, colours),
                                                dict(base, **counts))
        if 'panel' in show and (final or index == 1):
            overlay = overlay_labels(rgb, groups, colours, 0.6)
            panes.append(Image.fromarray(mark_boundaries(overlay, groups)))
            titles.append(f'{"final groups" if final else "groups"} '
                          f'(stage {index}): {non_empty} of {num_groups}')
    if 'panel' in show:
        pictures['panel'] = (tile_panes(panes, titles, note), base)
    files = save_pngs(args.out, stem, pictures)
    for entry in groups_summary:
        entry['file'] = files.get(entry['file'])
    result = dict(image=osp.abspath(path), size=list(rgb.shape[1::-1]))
    return dict(result, outputs=files, legend=legend, groups=groups_summary)


def build(init, args, errors=(), **options):
    """The model of ``init``; ``args.checkpoint`` becomes the file loaded."""
    with exit_on_user_error(*errors), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='No checkpoint given')
        options.update(seed=args.seed, random_weights=args.random_weights)
        model = init(args.config, args.checkpoint, args.device, **options)
    args.checkpoint = model.cfg.get('load_from')
    if not args.checkpoint:
        print('warning: ' + ' '.join(RANDOM_NOTE))
    return model


def classify(model, args, path, stem):
    """Print one image's ``--topk`` classes; its summary entry."""
    from mmseg_groupvit.apis import classify_image
    ranked = classify_image(model, path)
    print(f'{path}:')
    width = max(len(c['name']) for c in ranked[:args.topk])
    for rank, c in enumerate(ranked[:args.topk], 1):
        print(f'  {rank:>2}. {c["name"]:<{width}}  '
              f'{100 * c["probability"]:6.2f}%')
    return dict(image=path, classes=ranked)


@interruptible
def main(argv=None):
    args = parse_args(argv)
    if problem := check_paths(args.config, args.checkpoint,
                              args.random_weights, 'none', '--checkpoint'):
        sys.exit(error_line(problem))
    from mmseg_groupvit.utils.console import progress, quiet_warnings
    quiet_warnings()
    from mmseg_groupvit.apis import init_classifier, init_groupvit
    from mmseg_groupvit.utils.text_options import read_text_options
    with exit_on_user_error(FileNotFoundError, ValueError, TypeError):
        check_device(args.device)
        images = list_images(args.images)
        text = read_text_options(args.vocab, args.vocab_file,
                                 args.extra_classes, args.templates)
    options = text._asdict()
    if args.classify:
        model = build(init_classifier, args, (ValueError, TypeError),
                      **options)
        run = functools.partial(classify, model, args)
        summary = dict(checkpoint=_weights_name(args.checkpoint))
        name, what, doing = 'classification.json', 'classified', 'classify'
    else:
        model = build(init_groupvit, args, bg_thresh=args.bg_thresh, **options)
        from mmseg.registry import TRANSFORMS

        load = TRANSFORMS.build(copy.deepcopy(model.cfg.test_pipeline[0]))
        note = None if args.checkpoint else RANDOM_NOTE
        run = functools.partial(segment, model, load, args=args, note=note)
        summary = dict(
            checkpoint=_weights_name(args.checkpoint)
            if args.checkpoint else None,
            classes=model.dataset_meta['classes'],
            bg_thresh=model.test_cfg.get('bg_thresh'))
        name, what, doing = 'summary.json', 'segmented', 'segment'
    with exit_on_user_error():  # made once the inputs are known good
        check_out_dir(args.out, '--out')
    results, failed = [], []
    with progress(len(images), doing, 'images') as bar:
        for path, stem in zip(images, unique_stems(images)):
            try:
                results.append(run(path, stem))
            except USER_ERRORS as e:  # reported; the others go on
                failed.append(path)
                print(error_line(e), file=sys.stderr)
            bar.advance()
    summary = dict(
        config=osp.abspath(args.config),
        **summary,
        templates=model.text_encoder.templates,
        images=results,
        failed=failed)
    summary_path = osp.join(args.out, name)
    with open(summary_path, 'w') as f:
        json.dump(summary, f, indent=2)
    if not args.classify:
        print(f'Classes: {", ".join(summary["classes"])}')
        written = [p for r in results for p in r['outputs'].values()]
        print('Wrote:\n  ' + '\n  '.join(written + [summary_path]))
    if failed:
        sys.exit(
            error_line(f'{len(failed)} of {len(images)} image(s) could not '
                       f'be read or {what} (the reasons are above; the '
                       f'others are written): {", ".join(failed)}'))
    return summary


if __name__ == '__main__':
    main()
