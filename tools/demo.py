# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Segment your own images with your own words.

Usage::

    python tools/demo.py IMAGE_OR_FOLDER [...] [--config CFG]
        [--checkpoint CKPT] [--vocab "cat,dog,grass" | --vocab-file FILE]
        [--templates simple|subset|full] [--bg-thresh T] [--out DIR]
        [--show overlay,prediction,groups,final_groups,panel]

Writes PNGs into ``--out``: ``<name>_overlay.png`` (prediction over the
image, with a legend of class names and colours), ``<name>_prediction.png``
(the label map, palette PNG), ``<name>_groups_stage<i>.png`` (each pixel
coloured by the group it belongs to after grouping stage ``i``; ``groups``
writes every stage, ``final_groups`` the last) and ``<name>_panel.png``
(side by side). Without ``--checkpoint`` the weights are random and every
picture says so.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import _mmseg_groupvit_mmcv_shim  # noqa: E402

_mmseg_groupvit_mmcv_shim.install()

import mmcv  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402
from PIL import Image  # noqa: E402

from mmseg.apis import inference_model  # noqa: E402
from mmseg_groupvit.apis import image_group_maps, init_groupvit  # noqa: E402
from mmseg_groupvit.utils import load_vocabulary  # noqa: E402
from mmseg_groupvit.visualization import (draw_legend,  # noqa: E402
                                          group_palette, overlay_labels,
                                          stamp_text)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
SHOW_CHOICES = ('overlay', 'prediction', 'groups', 'final_groups', 'panel')
RANDOM_NOTE = [
    'RANDOM WEIGHTS: not a real prediction.',
    'Pass --checkpoint (see README) for real results.'
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GroupViT open-vocabulary segmentation demo')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument(
        '--config',
        default=osp.join(REPO, 'configs', 'groupvit_voc.py'),
        help='config (default: configs/groupvit_voc.py)')
    parser.add_argument('--checkpoint', help='converted checkpoint')
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument(
        '--vocab', help='comma-separated class names, e.g. "cat,dog,grass"')
    vocab.add_argument(
        '--vocab-file',
        help='one class per line; commas on a line give synonyms')
    parser.add_argument(
        '--templates', help='template set (simple, subset, full, identity)')
    parser.add_argument('--bg-thresh', type=float, help='background '
                        'threshold (the config\'s when omitted)')
    parser.add_argument('--out', default='outputs/demo', help='output dir')
    parser.add_argument(
        '--show',
        default='overlay,prediction,final_groups',
        help=f'comma-separated subset of {",".join(SHOW_CHOICES)}')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    args.show = [s for s in args.show.split(',') if s]
    unknown = sorted(set(args.show) - set(SHOW_CHOICES))
    if unknown:
        parser.error(f'unknown --show item(s) {unknown}; choose from '
                     f'{list(SHOW_CHOICES)}')
    return args


def list_images(paths):
    files = []
    for path in paths:
        if osp.isdir(path):
            files += sorted(
                osp.join(path, f) for f in os.listdir(path)
                if f.lower().endswith(IMAGE_EXTS))
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'No such image or folder: {path}')
    if not files:
        raise FileNotFoundError(f'No images found in {paths}')
    return files


def read_vocabulary(args):
    if args.vocab is not None:
        return load_vocabulary(
            [name.strip() for name in args.vocab.split(',')])
    if args.vocab_file is not None:
        return load_vocabulary(args.vocab_file)
    return None


def segment(model, path, args, note):
    """Run the model on one image and write the requested pictures."""
    stem = osp.splitext(osp.basename(path))[0]
    rgb = mmcv.imread(path, channel_order='rgb')
    result = inference_model(model, path)
    labels = result.pred_sem_seg.data[0].cpu().numpy()
    classes = model.dataset_meta['classes']
    palette = np.array(model.dataset_meta['palette'], dtype=np.uint8)
    with_bg = classes[0] == 'background'
    written, panels = [], []

    def save(image, suffix):
        if note:
            image = stamp_text(image, note)
        out = osp.join(args.out, f'{stem}_{suffix}.png')
        image.save(out)
        written.append(out)
        return image

    if {'overlay', 'panel'} & set(args.show):
        blended = overlay_labels(
            rgb, labels, palette, skip_label=0 if with_bg else None)
        legend = draw_legend(
            blended, [(name, palette[i]) for i, name in enumerate(classes)],
            title='classes')
        panels.append(Image.fromarray(blended))
        if 'overlay' in args.show:
            save(legend, 'overlay')
    if 'prediction' in args.show:
        label_png = Image.fromarray(labels.astype(np.uint8), mode='P')
        label_png.putpalette(palette.flatten().tolist())
        label_png.save(osp.join(args.out, f'{stem}_prediction.png'))
        written.append(osp.join(args.out, f'{stem}_prediction.png'))
    if {'groups', 'final_groups', 'panel'} & set(args.show):
        maps = image_group_maps(model, path)
        for stage, groups in enumerate(maps, 1):
            final = stage == len(maps)
            if not ('groups' in args.show or
                    (final and {'final_groups', 'panel'} & set(args.show))):
                continue
            colours = group_palette(int(groups.max()) + 1, seed=stage)
            picture = Image.fromarray(overlay_labels(rgb, groups, colours))
            if final:
                panels.append(picture)
            if 'groups' in args.show or (final
                                         and 'final_groups' in args.show):
                save(picture, f'groups_stage{stage}')
    if 'panel' in args.show:
        panel = Image.new('RGB', (sum(p.width for p in panels) + rgb.shape[1],
                                  rgb.shape[0]))
        x = 0
        for picture in [Image.fromarray(rgb)] + panels:
            panel.paste(picture, (x, 0))
            x += picture.width
        save(panel, 'panel')
    return written


def main(argv=None):
    args = parse_args(argv)
    try:
        images = list_images(args.images)
        vocabulary = read_vocabulary(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    model = init_groupvit(
        args.config,
        args.checkpoint,
        args.device,
        vocabulary=vocabulary,
        templates=args.templates,
        bg_thresh=args.bg_thresh)
    note = None if args.checkpoint else RANDOM_NOTE
    if note:
        print('warning: ' + ' '.join(RANDOM_NOTE))
    os.makedirs(args.out, exist_ok=True)
    progress = ProgressBar(len(images)) if len(images) > 1 else None
    written = []
    for path in images:
        written += segment(model, path, args, note)
        if progress:
            progress.update()
    print(f'\nClasses: {", ".join(model.dataset_meta["classes"])}')
    print('Wrote:\n  ' + '\n  '.join(written))
    return written


if __name__ == '__main__':
    main()
