# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``tools/demo.py --classify``: ranked classes with probabilities, checked
against the softmax of the scaled cosine recomputed from the model."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from mmseg_groupvit.apis import init_classifier
from tests.conftest import (PHOTOS, REPO, SMALL_ARCH, load_script,
                            varied_segmentor)

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


@pytest.fixture
def small(tmp_path):
    checkpoint = str(tmp_path / 'small.pth')
    torch.save(
        dict(state_dict=varied_segmentor(seed=2).state_dict()), checkpoint)
    config = str(tmp_path / 'small_cls.py')
    base = osp.join(REPO, 'configs', 'classification', 'groupvit_imagenet.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n'
                f'model = dict(image_encoder={SMALL_ARCH["image_encoder"]!r},'
                f' text_encoder={SMALL_ARCH["text_encoder"]!r})\n')
    return config, checkpoint


def test_classify_prints_the_ranked_probabilities(small, tmp_path, capsys):
    config, checkpoint = small
    photo = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')  # 448 x 448
    demo = load_script('tools/demo.py')
    demo.main([
        photo, '--classify', '--config', config, '--checkpoint', checkpoint,
        '--vocab', 'cat,dog|puppy,a red car', '--templates', 'simple',
        '--topk', '2', '--out',
        str(tmp_path / 'out')
    ])
    console = capsys.readouterr()
    printed = [
        line for line in console.out.splitlines() if line.startswith('   ')
    ]
    assert console.err.splitlines()[-1].startswith('classify: 1/1 images, ')

    # Independent: PIL resize to 256 and center crop 224, the model's
    # cosine, softmax at the clamped temperature.
    img = Image.open(photo).convert('RGB').resize((256, 256), Image.BILINEAR)
    img = (np.asarray(img, dtype=np.float64)[16:240, 16:240] - MEAN) / STD
    model = init_classifier(
        config,
        checkpoint,
        vocabulary=['cat', ['dog', 'puppy'], 'a red car'],
        templates='simple')
    with torch.no_grad():
        cosine = model(
            torch.from_numpy(img.transpose(2, 0, 1)).float()[None],
            mode='tensor')[0]
    scale = min(float(model.logit_scale.detach().exp()), 100.)
    probs = torch.softmax(cosine * scale, dim=0)
    order = probs.argsort(descending=True).tolist()
    names = ['cat', 'dog', 'a red car']
    expected = [f'{names[k]} {100 * float(probs[k]):.2f}%' for k in order[:2]]
    assert [' '.join(line.split()[1:]) for line in printed] == expected

    with open(tmp_path / 'out' / 'classification.json') as f:
        summary = json.load(f)
    ranked = summary['images'][0]['classes']
    assert [c['name'] for c in ranked] == [names[k] for k in order]
    assert sum(c['probability'] for c in ranked) == pytest.approx(1, abs=1e-6)
    assert next(c for c in ranked
                if c['name'] == 'dog')['synonyms'] == ['puppy']


def test_a_16_bit_gray_png_is_classified_as_its_8_bit_picture(small, tmp_path):
    """Pillow (the classification decoder) clipped 16-bit gray values at
    255, so a dark picture was classified as a white one: the 16-bit and
    8-bit files of one gray picture get the same probabilities."""
    config, checkpoint = small
    gray = np.asarray(
        Image.open(osp.join(PHOTOS, 'groupvit_demo_voc.jpg')).convert('L'))
    Image.fromarray(gray).save(tmp_path / 'gray8.png')
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / 'gray16.png')
    assert Image.open(tmp_path / 'gray16.png').mode.startswith('I;16')
    load_script('tools/demo.py').main([
        str(tmp_path / 'gray8.png'),
        str(tmp_path / 'gray16.png'), '--classify', '--config', config,
        '--checkpoint', checkpoint, '--vocab', 'cat,dog,a red car', '--out',
        str(tmp_path / 'out')
    ])
    with open(tmp_path / 'out' / 'classification.json') as f:
        eight, sixteen = json.load(f)['images']
    assert eight['classes'] == sixteen['classes']


def test_classify_names_an_unreadable_image(small, tmp_path, capsys):
    config, _ = small
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not an image')
    demo = load_script('tools/demo.py')
    with pytest.raises(SystemExit, match='^error: 1 of 1 image'):
        demo.main([
            str(bad), '--classify', '--config', config, '--vocab', 'cat,dog',
            '--random-weights', '--out',
            str(tmp_path / 'out')
        ])
    err = capsys.readouterr().err
    assert f'error: Cannot load image {bad}' in err


def test_bg_thresh_with_classify_is_refused(capsys):
    demo = load_script('tools/demo.py')
    with pytest.raises(SystemExit):
        demo.parse_args(['x.jpg', '--classify', '--bg-thresh', '0.5'])
    assert 'no background' in capsys.readouterr().err


@pytest.mark.slow
def test_classify_left_out_is_the_configs_weights(small, tmp_path, capsys):
    """Without --checkpoint, the config's load_from (as for segmentation);
    random weights only with --random-weights, and then said."""
    config, checkpoint = small
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(f'_base_ = [{config!r}]\nload_from = {checkpoint!r}\n')
    photo = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')
    demo = load_script('tools/demo.py')
    runs = {}
    for key, extra in [('given', ['--checkpoint', checkpoint]),
                       ('left_out', []), ('random', ['--random-weights'])]:
        capsys.readouterr()
        runs[key] = demo.main([
            photo, '--classify', '--config',
            str(leaf), '--vocab', 'cat,dog,a red car', '--out',
            str(tmp_path / key), *extra
        ])
        runs[key]['printed'] = capsys.readouterr().out
    assert runs['left_out']['checkpoint'] == checkpoint
    assert runs['left_out']['images'] == runs['given']['images']
    assert 'warning' not in runs['left_out']['printed']
    assert runs['random']['checkpoint'] == 'random'
    assert runs['random']['images'] != runs['given']['images']
    assert ('warning: RANDOM WEIGHTS: not a real prediction. Leave '
            '--random-weights out') in runs['random']['printed']


def test_classify_with_a_segmentation_config_is_one_line(tmp_path):
    """A segmentation config's pipeline loads label maps; a photo has none
    (this was a KeyError from mmseg's LoadAnnotations)."""
    demo = load_script('tools/demo.py')
    with pytest.raises(SystemExit) as error:
        demo.main([
            osp.join(PHOTOS,
                     'groupvit_demo_voc.jpg'), '--classify', '--config',
            osp.join(REPO, 'configs', 'groupvit_voc.py'), '--random-weights',
            '--out',
            str(tmp_path / 'out')
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message
    assert 'does not build a GroupViTClassifier' in message
    assert 'configs/classification/groupvit_imagenet.py' in message


def test_an_extra_class_repeating_a_builtin_one_is_refused(small, tmp_path):
    """``--extra-classes Goldfish`` over ImageNet's goldfish: refused by the
    vocabulary's duplicate rule, as for a segmentor (the two shared one
    embedding and split its probability); ImageNet's own repeats stay."""
    config, _ = small
    demo = load_script('tools/demo.py')
    with pytest.raises(SystemExit) as error:
        demo.main([
            osp.join(PHOTOS, 'groupvit_demo_voc.jpg'), '--classify',
            '--config', config, '--extra-classes', 'grass,Goldfish',
            '--random-weights', '--out',
            str(tmp_path / 'out')
        ])
    message = str(error.value.code)
    assert message.startswith('error: Duplicate class names in the '
                              'vocabulary ') and '\n' not in message
    assert "'goldfish' (vocabulary entry 1), 'Goldfish' (extra class 1)" \
        in message
    model = init_classifier(
        config, random_weights=True, extra_classes=['grass'])
    assert len(model.classes) == 1001 and model.class_names[-1] == 'grass'
