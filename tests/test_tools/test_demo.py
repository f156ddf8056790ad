# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/demo.py on real photos: the files it writes, their sizes, legends,
label and group maps, and its messages for bad input."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.apis import init_model
from mmseg.datasets import PascalVOCDataset
from PIL import Image

from groupvit_common.drawing import draw_legend, legend_entries
from tests.conftest import (REPO, SAMPLES, SMALL_ARCH, VOC_SAMPLE,
                            build_small_segmentor, load_script)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

PHOTO_DIRS = [
    osp.join(osp.dirname(REPO), 'shared', 'data', 'images'),
    osp.join(SAMPLES, 'images')
]
# 500 x 375: a non-square photo, so width and height cannot be swapped
# unnoticed (the shared photos are 448 x 448).
WIDE_PHOTO = osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000033.jpg')
VOCAB = 'dog|puppy,potted plant,curtain,carpet'
CLASSES = ['background', 'dog', 'potted plant', 'curtain', 'carpet']
CLASSES_VOC = list(PascalVOCDataset.METAINFO['classes'])

demo = load_script(osp.join(REPO, 'tools', 'demo.py'), 'groupvit_demo')


def shared_photo(name='groupvit_demo_voc.jpg'):
    for folder in PHOTO_DIRS:
        if osp.isfile(osp.join(folder, name)):
            return osp.join(folder, name)
    pytest.skip(f'sample photo {name} not found in {PHOTO_DIRS}')


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A seeded small two-stage GroupViT saved as a checkpoint, and its
    config (the VOC config with the small architecture)."""
    tmp = tmp_path_factory.mktemp('demo_model')
    init_default_scope('mmseg')
    model = build_small_segmentor(seed=0)
    checkpoint = str(tmp / 'small.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    config = tmp / 'small.py'
    base = osp.join(REPO, 'configs', 'groupvit_voc.py')
    arch = SMALL_ARCH
    config.write_text(f'_base_ = [{base!r}]\n'
                      f'model = dict(image_encoder={arch["image_encoder"]!r}, '
                      f'text_encoder={arch["text_encoder"]!r})\n')
    return str(config), checkpoint


def load_picture(path):
    """A picture read fully (its file closed)."""
    with Image.open(path) as picture:
        picture.load()
        return picture


def packed(picture):
    """An RGB picture's pixels as ints ``r << 16 | g << 8 | b``."""
    rgb = np.asarray(picture).reshape(-1, 3).astype(np.int64)
    return rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]


def recomputed_groups(model, path):
    """Per stage, the group of every pixel computed here from the image
    encoder's soft assignments: chained with explicit products, resized
    bilinearly to the photo, arg-maxed."""
    pipeline = [
        t for t in model.cfg.test_pipeline if t['type'] != 'LoadAnnotations'
    ]
    data = Compose(pipeline)(dict(img_path=path))
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    with torch.no_grad():
        feats = model.image_encoder(batch['inputs'])
    h, w = feats['grid']
    size = batch['data_samples'][0].ori_shape
    maps, chained = [], None
    for assign in feats['soft_assigns']:
        step = assign[0].t()  # [tokens, groups]
        chained = step if chained is None else chained @ step
        grid = chained.t().reshape(1, -1, h, w)
        up = F.interpolate(
            grid, size=size, mode='bilinear', align_corners=False)
        maps.append(up[0].argmax(0).numpy())
    return maps


def test_demo_on_real_photos(small, tmp_path):
    config, checkpoint = small
    photos = [shared_photo(), WIDE_PHOTO]
    summary = demo.main(photos + [
        '--config', config, '--checkpoint', checkpoint, '--vocab', VOCAB,
        '--show', 'overlay,prediction,groups,panel', '--legend', 'all',
        '--out',
        str(tmp_path)
    ])
    model = init_model(config, checkpoint, device='cpu')
    assert summary['classes'] == CLASSES
    for photo in photos:
        stem = osp.splitext(osp.basename(photo))[0]
        width, height = load_picture(photo).size
        files = {
            kind: tmp_path / f'{stem}_{kind}.png'
            for kind in ('overlay', 'prediction', 'groups_stage1',
                         'groups_stage2', 'panel')
        }
        assert all(f.is_file() for f in files.values())
        for kind, f in files.items():
            if kind != 'panel':
                assert load_picture(f).size == (width, height), kind
        # Panel: photo, prediction, first and final groups, titled.
        panel = load_picture(files['panel'])
        assert panel.width == 4 * width + 3 * 6
        assert height < panel.height < height + 60

        # The legend lists exactly the vocabulary, background first.
        overlay = load_picture(files['overlay'])
        legend = json.loads(overlay.text['legend'])
        assert [e['name'] for e in legend] == CLASSES
        assert legend[1]['synonyms'] == ['puppy']
        assert json.loads(load_picture(
            files['prediction']).text['legend']) == legend
        # Every class's exact colour is drawn (its legend swatch, with
        # --legend all); the colours differ.
        pixels = packed(overlay.convert('RGB'))
        colours = [tuple(e['color']) for e in legend[1:]]
        assert legend[0]['color'] is None and len(set(colours)) == 4
        for r, g, b in colours:
            assert (pixels == (r << 16 | g << 8 | b)).sum() >= 36, (r, g, b)

        # The prediction PNG holds labels, its palette the legend colours,
        # and the legend's shares are the labels' pixel shares.
        prediction = load_picture(files['prediction'])
        labels = np.asarray(prediction)
        assert prediction.mode == 'P' and labels.max() < len(CLASSES)
        lut = np.array(prediction.getpalette()[:15]).reshape(5, 3)
        assert [tuple(c) for c in lut[1:]] == colours
        shares = np.bincount(labels.ravel(), minlength=5) / labels.size
        np.testing.assert_allclose([e['share'] for e in legend],
                                   shares,
                                   atol=1e-6)

        # Group maps: one colour per non-empty group, and the groups are
        # those computed here from the encoder.
        expected = recomputed_groups(model, photo)
        for stage, groups in enumerate(expected, 1):
            picture = load_picture(files[f'groups_stage{stage}'])
            ids = np.asarray(picture)
            np.testing.assert_array_equal(ids, groups)
            rgb = packed(picture.convert('RGB'))
            # (group, colour) pairs: one per group and one per colour.
            pairs = np.unique(ids.ravel().astype(np.int64) << 24 | rgb)
            non_empty = len(np.unique(ids))
            assert len(np.unique(rgb)) == non_empty == len(pairs)
            assert int(picture.text['non_empty']) == non_empty
        assert len(np.unique(expected[0])) >= 4  # the groups vary
        assert all(f.read_bytes() for f in files.values())
        assert load_picture(files['panel']).text['weights'] == checkpoint


def test_ctrl_c_is_one_line(monkeypatch, capsys):

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, 'list_images', interrupt)
    with pytest.raises(SystemExit) as exit_:
        demo.main([WIDE_PHOTO, '--random-weights', '--vocab', 'cat'])
    assert exit_.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        'interrupted (Ctrl-C); what was written so far is kept.'
    ]


def test_legend_lists_the_classes_present_largest_first():
    """The picture's legend: the classes present, most pixels first (ties
    in vocabulary order), then how many are absent; every class with
    ``--legend all``."""

    def entry(i, share):
        return dict(name=f'c{i}', synonyms=[], color=[i, i, i], share=share)

    shares = {3: 0.25, 7: 0.5, 20: 0.25}
    legend = [entry(i, shares.get(i, 0.0)) for i in range(21)]
    entries, footer = legend_entries(legend)
    assert entries == [('c7', [7, 7, 7], 0.5), ('c3', [3, 3, 3], 0.25),
                       ('c20', [20, 20, 20], 0.25)]
    assert footer == '+18 classes absent'
    entries, footer = legend_entries(legend, every_class=True)
    assert [e[0] for e in entries] == [f'c{i}' for i in range(21)]
    assert footer is None
    one = [entry(0, 0.0), entry(1, 1.0)]
    assert legend_entries(one)[1] == '+1 class absent'


def test_legend_of_a_voc_picture_is_small():
    """21 VOC classes, 3 present, on a 448x448 picture: the legend (the
    pixels it changes) covers under a tenth of the photo; listing every
    class covers several times more."""
    picture = Image.fromarray(np.full((448, 448, 3), 90, np.uint8))
    shares = {0: 0.6, 12: 0.3, 15: 0.1}
    legend = [
        dict(
            name=name,
            synonyms=[],
            color=None if i == 0 else [i * 10, 200 - i * 5, 40],
            share=shares.get(i, 0.0)) for i, name in enumerate(CLASSES_VOC)
    ]

    def covered(every_class):
        entries, footer = legend_entries(legend, every_class)
        drawn = draw_legend(picture, entries, footer=footer)
        changed = (np.asarray(drawn) != np.asarray(picture)).any(2)
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(
            changed.any(0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        return box / changed.size

    assert covered(False) < 0.1
    assert covered(True) > 3 * covered(False)


def test_out_folder_equal_to_the_input_folder(small, tmp_path):
    """Run twice with --out the input folder: the second run segments the
    photos only, not the pictures the first one wrote there."""
    config, checkpoint = small
    Image.open(WIDE_PHOTO).save(tmp_path / 'photo.jpg')
    args = [
        str(tmp_path), '--config', config, '--checkpoint', checkpoint,
        '--show', 'overlay,prediction', '--out',
        str(tmp_path)
    ]
    first = demo.main(args)
    second = demo.main(args)
    for summary in (first, second):
        assert [r['image']
                for r in summary['images']] == [str(tmp_path / 'photo.jpg')]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'photo.jpg', 'photo_overlay.png', 'photo_prediction.png',
        'summary.json'
    ]


def test_pictures_never_replace_a_users_file_or_another_inputs(
        small, tmp_path):
    """``x.jpg``, ``sub/x.jpg`` and ``x_2.jpg`` get pictures of their own
    (the second ``x`` is ``x_3``); a photo of the user's named
    ``a_overlay.png`` in the --out folder is kept, ``a.jpg`` named and none
    of its pictures written."""
    config, checkpoint = small
    (tmp_path / 'sub').mkdir()
    photos = [tmp_path / 'x.jpg', tmp_path / 'sub' / 'x.jpg']
    photos.append(tmp_path / 'x_2.jpg')
    for i, path in enumerate(photos):  # three different photos
        Image.open(WIDE_PHOTO).rotate(90 * i, expand=True).save(path)
    Image.open(WIDE_PHOTO).save(tmp_path / 'a.jpg')
    own = tmp_path / 'a_overlay.png'
    Image.open(WIDE_PHOTO).save(own)
    before = own.read_bytes()
    with pytest.raises(SystemExit) as exc:
        demo.main([
            *map(str, photos),
            str(tmp_path / 'a.jpg'), '--config', config, '--checkpoint',
            checkpoint, '--show', 'overlay,prediction', '--out',
            str(tmp_path)
        ])
    assert own.read_bytes() == before
    assert not (tmp_path / 'a_prediction.png').exists()  # none of a's
    assert str(exc.value.code).startswith('error: 1 of 4 image(s) could not')
    assert str(exc.value.code).endswith(str(tmp_path / 'a.jpg'))
    with open(tmp_path / 'summary.json') as f:
        summary = json.load(f)
    written = {}
    for entry in summary['images']:
        written[entry['image']] = osp.basename(entry['outputs']['prediction'])
        with Image.open(entry['outputs']['overlay']) as picture:
            assert picture.size == Image.open(entry['image']).size
    assert written == {
        str(photos[0]): 'x_prediction.png',
        str(photos[1]): 'x_3_prediction.png',
        str(photos[2]): 'x_2_prediction.png'
    }


def test_console_lists_every_file_written(small, tmp_path, capsys):
    config, checkpoint = small
    demo.main([
        WIDE_PHOTO, '--config', config, '--checkpoint', checkpoint, '--show',
        'overlay', '--out',
        str(tmp_path)
    ])
    out = capsys.readouterr()
    wrote = out.out.split('Wrote:\n', 1)[1].split()
    assert sorted(wrote) == sorted(str(p) for p in tmp_path.iterdir())
    assert 'pkg_resources' not in out.err and 'build_loss' not in out.err


def test_demo_with_a_thousand_classes(small, tmp_path):
    """A 1000-class vocabulary file: the segmentor's compact path, a 16-bit
    label PNG, and a legend whose shares are the labels' pixel shares."""
    config, checkpoint = small
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('\n'.join(f'object number {i}' for i in range(1000)))
    summary = demo.main([
        WIDE_PHOTO, '--config', config, '--checkpoint', checkpoint,
        '--vocab-file',
        str(vocab), '--show', 'overlay,prediction', '--out',
        str(tmp_path)
    ])
    assert len(summary['classes']) == 1001
    prediction = load_picture(tmp_path / '2007_000033_prediction.png')
    labels = np.asarray(prediction)
    assert prediction.mode == 'I;16' and labels.shape == (366, 500)
    legend = json.loads(prediction.text['legend'])
    shares = np.bincount(labels.ravel(), minlength=1001) / labels.size
    np.testing.assert_allclose([e['share'] for e in legend], shares, atol=1e-6)
    overlay = load_picture(tmp_path / '2007_000033_overlay.png')
    assert overlay.size == (500, 366)


def test_readme_command_says_random_weights(tmp_path):
    """The docs' offline command: default architecture, random weights, a
    panel."""
    photo = shared_photo()
    summary = demo.main([
        photo, '--random-weights', '--vocab',
        'dog,plant,flower pot,curtain,carpet,chair', '--show',
        'panel,final_groups', '--out',
        str(tmp_path)
    ])
    stem = osp.splitext(osp.basename(photo))[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f'{stem}_panel.png', f'{stem}_groups_stage2.png', 'summary.json'])
    panel = load_picture(tmp_path / f'{stem}_panel.png')
    assert panel.text['weights'] == 'random'
    # The red band across the top.
    top = np.asarray(panel.convert('RGB'))[2]
    assert (top == (180, 0, 0)).all(1).mean() > 0.9
    assert summary['checkpoint'] is None
    assert summary['images'][0]['groups'][-1]['groups'] == 8


def test_extra_classes_and_templates(small, tmp_path):
    config, checkpoint = small
    summary = demo.main([
        WIDE_PHOTO, '--config', config, '--checkpoint', checkpoint,
        '--extra-classes', 'grass,sky', '--templates', 'a photo of a {}.',
        'art of the {}.', '--bg-thresh', '0.5', '--show', 'overlay', '--out',
        str(tmp_path)
    ])
    assert summary['classes'][-3:] == ['monitor', 'grass', 'sky']
    assert len(summary['classes']) == 23
    assert summary['templates'] == ['a photo of a {}.', 'art of the {}.']
    assert summary['bg_thresh'] == 0.5


def test_unreadable_image_is_reported_and_others_are_written(small, tmp_path):
    config, checkpoint = small
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'a_broken.jpg').write_bytes(b'not an image')
    Image.open(WIDE_PHOTO).save(folder / 'b_good.jpg')
    # Decodes, but too elongated for the resize to a short side of 448.
    Image.new('RGB', (60000, 10)).save(folder / 'c_strip.png')
    with pytest.raises(SystemExit) as exc:
        demo.main([
            str(folder), '--config', config, '--checkpoint', checkpoint,
            '--show', 'prediction', '--out',
            str(tmp_path / 'out')
        ])
    assert str(exc.value.code).startswith(
        'error: 2 of 3 image(s) could not be read or segmented')
    assert 'a_broken.jpg' in str(exc.value.code)
    assert 'c_strip.png' in str(exc.value.code)
    assert (tmp_path / 'out' / 'b_good_prediction.png').is_file()
    with open(tmp_path / 'out' / 'summary.json') as f:
        summary = json.load(f)
    assert [osp.basename(r['image'])
            for r in summary['images']] == ['b_good.jpg']
    assert [osp.basename(p)
            for p in summary['failed']] == ['a_broken.jpg', 'c_strip.png']


#: Devices torch names but cannot compute on here (meta: no data; mps: on
#: a machine without Apple's GPU).
NO_MPS = pytest.param(['PHOTO', '--device', 'mps'],
                      '--device mps: this machine cannot compute on it',
                      marks=pytest.mark.skipif(
                          torch.backends.mps.is_available(),
                          reason='this machine has an MPS device'))


@pytest.mark.parametrize('args, message', [
    (['missing.jpg'], 'No such image or folder: missing.jpg'),
    (['PHOTO', '--checkpoint', 'nope.pth'], 'checkpoint not found'),
    (['PHOTO', '--config', 'nope.py'], 'config not found'),
    (['PHOTO', '--vocab', 'cat,,dog'], 'empty class name'),
    (['PHOTO', '--vocab', 'cat,Cat'], 'Duplicate class names'),
    (['PHOTO', '--vocab-file', 'nope.txt'], 'does not exist'),
    (['PHOTO', '--templates', 'fancy'], 'Unknown prompt template set'),
    (['PHOTO', '--templates', 'a photo'], 'Unknown prompt template set'),
    (['PHOTO', '--bg-thresh', '1.5'], 'bg_thresh must be a number in'),
    (['PHOTO', '--bg-thresh', 'nan'], 'bg_thresh must be a number in'),
    (['PHOTO', '--device', 'cuda:7'], '--device cuda:7: this machine has'),
    (['PHOTO', '--device', 'gpu'], "--device 'gpu' is not a device name"),
    (['PHOTO', '--device', 'meta'], '--device meta: this machine cannot'),
    NO_MPS,
    (['PHOTO', '--extra-classes', 'grass,background'
      ], '"background" is a name of the prompted class'),
    (['PHOTO', '--vocab', 't-shirt,t - shirt'
      ], "tokenize the same and would give identical prompts: 't-shirt' and "
     "'t - shirt'"),
])
def test_bad_input_gives_one_clear_error(args, message, tmp_path):
    args = [WIDE_PHOTO if a == 'PHOTO' else a for a in args]
    with pytest.raises(SystemExit) as exc:
        demo.main(args + ['--out', str(tmp_path), '--random-weights'])
    assert str(exc.value.code).startswith('error: ')
    assert message in str(exc.value.code)


def test_unknown_show_item(capsys):
    with pytest.raises(SystemExit):
        demo.main([WIDE_PHOTO, '--show', 'overlay,heatmap'])
    assert "unknown item(s) ['heatmap']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.main([WIDE_PHOTO, '--show', ' , '])
    assert '--show: nothing given; choose from overlay,' in \
        capsys.readouterr().err
