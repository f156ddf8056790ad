# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmseg's own inference APIs on GroupViT configs: ``init_model``,
``inference_model``, ``MMSegInferencer``, ``show_result_pyplot`` and
``tools/test.py --out/--show-dir`` (``SegLocalVisualizer``) agree on a real
photo, and name the classes after the vocabulary (config list, vocabulary
file, dataset names plus extras, or a vocabulary set on the built model)."""
import os.path as osp
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.apis import (MMSegInferencer, inference_model, init_model,
                        show_result_pyplot)
from PIL import Image

from mmseg_groupvit.utils import get_prompt_classes
from tests.conftest import REPO, VOC_SAMPLE, build_small_segmentor
from .conftest import PHOTO

# background + the 20 VOC prompt names (table, plant, monitor renamed).
VOC_CLASSES = list(get_prompt_classes('voc'))


def one_image_config(small, tmp_path):
    """The converter's config, evaluated on PHOTO alone."""
    split = tmp_path / 'val.txt'
    split.write_text(osp.splitext(osp.basename(PHOTO))[0] + '\n')
    path = tmp_path / 'one_image.py'
    path.write_text(f'_base_ = [{small.config!r}]\n'
                    'test_dataloader = dict(num_workers=0, '
                    'persistent_workers=False, dataset=dict('
                    f'data_root={VOC_SAMPLE!r}, ann_file={str(split)!r}))\n')
    return str(path)


def load_picture(path):
    """A picture read fully (its file closed)."""
    with Image.open(path) as picture:
        picture.load()
        return picture


def labels_of(result):
    return result.pred_sem_seg.data[0].cpu().numpy()


def vocabulary_config(small, **text_encoder):
    """The converter's config with text-encoder overrides (the head's
    class count is left to the caller)."""
    cfg = Config.fromfile(small.config)
    cfg.model.text_encoder.update(text_encoder)
    return cfg


@pytest.mark.slow
def test_every_api_gives_the_label_map_of_test_py(small, tmp_path):
    config = one_image_config(small, tmp_path)
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), config, small.checkpoint,
        '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(tmp_path / 'pred'), '--show-dir',
        str(tmp_path / 'show')
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = np.array(load_picture(tmp_path / 'pred' / '2007_000129.png'))
    width, height = load_picture(PHOTO).size
    assert reference.shape == (height, width)
    # Not a trivial map: several classes, background included.
    assert len(np.unique(reference)) >= 2 and (reference == 0).any()

    model = init_model(config, small.checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == VOC_CLASSES
    np.testing.assert_array_equal(
        labels_of(inference_model(model, PHOTO)), reference)

    inferencer = MMSegInferencer(config, small.checkpoint, device='cpu')
    out = inferencer(PHOTO, out_dir=str(tmp_path / 'inferencer'))
    np.testing.assert_array_equal(out['predictions'], reference)
    assert inferencer.visualizer.dataset_meta['classes'] == \
        VOC_CLASSES
    painted = load_picture(tmp_path / 'inferencer' / 'vis' / '2007_000129.jpg')
    assert painted.size == (width, height)

    # --show-dir: SegLocalVisualizer paints ground truth | prediction.
    shown = tmp_path / 'show' / 'vis_data' / 'vis_image'
    files = sorted(p.name for p in shown.iterdir())
    assert files == ['test_2007_000129.jpg_0.png']
    assert load_picture(shown / files[0]).size == (2 * width, height)


def test_vocabulary_list_in_config_names_the_classes(small, tmp_path):
    cfg = vocabulary_config(
        small, vocabulary=['cat', 'dog, puppy', ['grass', 'lawn']])
    cfg.model.decode_head.num_classes = 4
    model = init_model(cfg, small.checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == [
        'background', 'cat', 'dog', 'grass'
    ]
    assert model.text_encoder.classes == [['cat'], ['dog', 'puppy'],
                                          ['grass', 'lawn']]
    palette = np.array(model.dataset_meta['palette'])
    assert palette.shape == (4, 3) and len(np.unique(palette, axis=0)) == 4
    result = inference_model(model, PHOTO)
    assert set(np.unique(labels_of(result))) <= {0, 1, 2, 3}
    out_file = tmp_path / 'shown.png'
    show_result_pyplot(
        model, PHOTO, result, show=False, out_file=str(out_file))
    assert load_picture(out_file).size == load_picture(PHOTO).size


def test_vocabulary_file_in_config(small, tmp_path):
    path = tmp_path / 'classes.txt'
    path.write_text('background  # not prompted\nperson, man\nbicycle\n')
    cfg = vocabulary_config(small, vocabulary=str(path))
    cfg.model.decode_head.num_classes = 3
    model = init_model(cfg, small.checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == ['background', 'person', 'bicycle']


def test_dataset_names_plus_extras(small):
    cfg = vocabulary_config(small, extra_classes=['grass', 'sky, clouds'])
    cfg.model.decode_head.num_classes = 23
    model = init_model(cfg, small.checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == \
        VOC_CLASSES + ['grass', 'sky']
    assert model.text_encoder.classes[-1] == ['sky', 'clouds']
    # The same through the Python call on a built model.
    model.set_vocabulary(dataset_name='voc', extra_classes=['road'])
    assert model.dataset_meta['classes'][-2:] == ['monitor', 'road']
    assert model.decode_head.num_classes == 22


def test_extra_class_already_in_the_dataset_is_named(small):
    cfg = vocabulary_config(small, extra_classes=['grass', 'Dog'])
    cfg.model.decode_head.num_classes = 23
    with pytest.raises(ValueError, match="'dog'.*'Dog'"):
        init_model(cfg, small.checkpoint, device='cpu')


def test_mismatched_class_count_names_the_fix(small):
    """A config that still sets num_classes must agree with the vocabulary
    (2 classes plus background): it is refused when built, naming both
    numbers, never silently overridden."""
    cfg = vocabulary_config(small, vocabulary=['cat', 'dog'])
    cfg.model.decode_head.num_classes = 21
    with pytest.raises(
            ValueError,
            match='num_classes is 21 but the '
            'vocabulary has 2 classes plus background, so the '
            'head has 3 outputs'):
        init_model(cfg, small.checkpoint, device='cpu')


def test_vocabulary_alone_sets_the_classes(small):
    """No num_classes anywhere: the vocabulary decides the head's
    channels."""
    cfg = vocabulary_config(small, vocabulary=['cat', 'dog'])
    assert 'num_classes' not in cfg.model.decode_head
    model = init_model(cfg, small.checkpoint, device='cpu')
    assert model.num_classes == model.decode_head.num_classes == 3
    result = inference_model(model, PHOTO)
    assert result.seg_logits.data.shape[0] == 3


def test_inferencer_with_a_vocabulary_override(small, tmp_path):
    vocabulary = ['person', 'bicycle, bike', 'road']
    inferencer = MMSegInferencer(small.config, small.checkpoint, device='cpu')
    inferencer.model.set_vocabulary(vocabulary)
    out = inferencer(PHOTO, out_dir=str(tmp_path), return_vis=True)
    assert inferencer.visualizer.dataset_meta['classes'] == [
        'background', 'person', 'bicycle', 'road'
    ]
    # A model built with that vocabulary from the start agrees.
    cfg = vocabulary_config(small, vocabulary=vocabulary)
    cfg.model.decode_head.num_classes = 4
    fresh = init_model(cfg, small.checkpoint, device='cpu')
    np.testing.assert_array_equal(out['predictions'],
                                  labels_of(inference_model(fresh, PHOTO)))
    assert out['visualization'].shape[:2] == out['predictions'].shape


def test_dataset_meta_follows_the_vocabulary():
    model = build_small_segmentor()
    classes = model.dataset_meta['classes']
    assert classes == VOC_CLASSES
    # A meta with the model's classes keeps its palette ...
    palette = [[i, 255 - i, 7] for i in range(21)]
    model.dataset_meta = dict(classes=classes, palette=palette)
    assert model.dataset_meta['palette'] == palette
    # ... a guess with other names (what init_model assigns when a
    # checkpoint has no dataset_meta) is refused with a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model.dataset_meta = dict(
            classes=['road'] * 19, palette=[[0, 0, 0]] * 19)
    assert any('set_vocabulary' in str(w.message) for w in caught)
    assert model.dataset_meta['classes'] == classes
    # A new vocabulary drops the old palette.
    model.set_vocabulary(['cat', 'dog'])
    meta = model.dataset_meta
    assert meta['classes'] == ['background', 'cat', 'dog']
    assert meta['palette'][0] == [0, 0, 0] and len(meta['palette']) == 3
    assert model.num_classes == model.decode_head.num_classes == 3
    with torch.no_grad():
        assert model._forward(torch.randn(1, 3, 64, 64)).shape[1] == 3


def test_inference_model_names_a_batch_of_images_of_two_sizes(small):
    """mmseg's ``inference_model`` stacks a list of images as one batch:
    images of one size give a label map each, images of two sizes one error
    naming both (mmseg asserted)."""
    model = init_model(small.config, small.checkpoint, device='cpu')
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    results = inference_model(model, [wide, wide])
    assert [labels_of(r).shape for r in results] == [(30, 40)] * 2
    with pytest.raises(ValueError) as error:
        inference_model(model, [wide, tall])
    message = str(error.value)
    assert message.startswith('an image array (30x40, ')
    assert '; an image array (40x30, ' in message
    assert message.endswith('or give inference_model one image per call.')


def test_inferencer_names_its_batch_size_for_images_of_two_sizes(small):
    """``MMSegInferencer(..., batch_size=2)`` stacks two images per batch:
    images of two sizes give one error naming its ``batch_size``."""
    inferencer = MMSegInferencer(small.config, small.checkpoint, device='cpu')
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    results = inferencer([wide, wide], batch_size=2)
    assert [p.shape for p in results['predictions']] == [(30, 40)] * 2
    with pytest.raises(ValueError) as error:
        inferencer([wide, tall], batch_size=2)
    message = str(error.value)
    assert message.startswith('an image array (30x40, ')
    assert 'call MMSegInferencer with batch_size=1' in message
