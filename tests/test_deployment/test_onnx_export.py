# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""ONNX export: the graphs against the PyTorch segmentor, the protocol
written beside them, a failed check leaving nothing behind."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from groupvit_common.errors import ExportCheckError
from groupvit_common.export_format import FORMAT
from mmseg_groupvit.deployment import export_onnx, onnx_export
from mmseg_groupvit.models.decode_heads.groupvit_head import group_maps
from mmseg_groupvit.models.layers.grouping import chain_assignments
from tests.conftest import (ASSIGNMENT_ROUNDING, PHOTOS, SCORE_ROUNDING,
                            load_script)

ort = pytest.importorskip('onnxruntime')
PHOTO = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')


@pytest.fixture
def exported(voc_onnx_export):
    return voc_onnx_export


def session(path):
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def test_export_holds_graphs_protocol_and_check(exported):
    with open(osp.join(exported['dir'], 'deploy.json')) as f:
        meta = json.load(f)
    assert sorted(os.listdir(exported['dir'])) == [
        'bpe_simple_vocab_16e6.txt.gz', 'deploy.json', 'image.onnx',
        'text.onnx'
    ]
    protocol = meta['protocol']
    # The values of configs/_base_ (read from the files, not the model).
    assert protocol['mean'] == [123.675, 116.28, 103.53]
    assert protocol['std'] == [58.395, 57.12, 57.375]
    assert protocol['resize'] == dict(scale=[2048, 448], keep_ratio=True)
    assert protocol['crop_size'] == [448, 448]
    assert protocol['stride'] == [224, 224]
    assert protocol['bg_thresh'] == 0.95 and protocol['with_bg']
    assert protocol['templates'] == ['a photo of a {}.']
    assert protocol['classes'][:2] == [['aeroplane'], ['bicycle']]
    assert protocol['class_names'][0] == 'background'
    assert meta['opset'] == 17 and meta['weights'].endswith('small.pth')
    check = meta['check']
    assert check['window_scores_max_abs_diff'] <= 1e-4
    assert check['text_features_max_abs_diff'] <= 1e-4


@pytest.mark.parametrize('num_classes', [3, 30])
def test_one_image_graph_serves_every_vocabulary(exported, num_classes):
    """Vocabularies smaller than the top-k gate and larger than the one
    exported: the graph's scores against the PyTorch head's."""
    model = exported['model']
    names = [f'thing {i}' for i in range(num_classes)]
    model.set_vocabulary(names)
    try:
        window = onnx_export.check_window(model, model.cfg, PHOTO)
        window = torch.cat([window, window.flip(-1)])
        metas = [dict(img_shape=(448, 448), pad_shape=(448, 448))]
        with torch.no_grad():
            class_embeds = model.text_encoder()
            model.test_cfg['bg_thresh'] = 0.3
            expected = model.encode_decode(window, metas).numpy()
            feats = model.extract_feat(window)
            maps = group_maps(feats['soft_assigns'], feats['grid'],
                              window.shape[-2:]).numpy()
            chained = chain_assignments(feats['soft_assigns']).numpy()
        scores, pixel_group, assignments = session(
            osp.join(exported['dir'], 'image.onnx')).run(
                ['scores', 'pixel_group', 'assignments'],
                dict(
                    pixels=window.numpy(),
                    class_embeds=class_embeds.numpy(),
                    bg_thresh=np.array(0.3, np.float32)))
    finally:
        model.test_cfg['bg_thresh'] = 0.95
        model.set_vocabulary(dataset_name='voc')
    assert scores.shape == (2, num_classes + 1, 448, 448)
    # The runtimes round differently, so the soft assignments differ a
    # little; a pixel can only change group where PyTorch's two best groups
    # are closer than twice that (the resize to the window is a convex
    # combination), plus the resizes' own rounding.
    rounding = np.abs(assignments - chained).max()
    assert rounding <= ASSIGNMENT_ROUNDING
    top_two = np.sort(maps, axis=1)[:, -2:]
    moved = pixel_group != maps.argmax(1)
    assert (top_two[:, 1] - top_two[:, 0])[moved].max(initial=0) <= \
        2 * rounding + 1e-6
    # Every other pixel has the same scores.
    assert np.abs(scores - expected).max(axis=1)[~moved].max() <= \
        SCORE_ROUNDING
    # The varied model gives several classes and groups per window.
    assert len(np.unique(scores.argmax(1))) > 1
    assert len(np.unique(pixel_group)) > 1


def test_text_graph_equals_the_encoder(exported):
    text = exported['model'].text_encoder
    prompts = ['a photo of a cat.', 'a', 'a photo of a very small dog.']
    tokens = text.tokenize(prompts)
    with torch.no_grad():
        expected = text.encode_tokens(tokens).numpy()
    graph = session(osp.join(exported['dir'], 'text.onnx'))
    for length in (tokens.argmax(-1).max().item() + 1, 77):
        got = graph.run(None, dict(tokens=tokens[:, :length].numpy()))[0]
        assert np.abs(got - expected).max() <= 1e-4


def test_failed_check_leaves_nothing(exported, tmp_path):
    out = tmp_path / 'export'
    with pytest.raises(ExportCheckError, match='deleted'):
        export_onnx(
            exported['model'],
            exported['model'].cfg,
            str(out),
            PHOTO,
            atol=-1.0)
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_a_folder_with_other_files_is_refused(exported, tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match='not an ONNX export'):
        export_onnx(exported['model'], exported['model'].cfg, str(tmp_path),
                    PHOTO)
    assert os.listdir(tmp_path) == ['notes.txt']


def test_an_export_holding_other_files_is_not_replaced(exported, tmp_path):
    """The runner's pictures written into the export folder: exporting
    there again (which replaces the folder) is refused, nothing deleted."""
    out = tmp_path / 'export'
    shutil.copytree(exported['dir'], out)
    (out / 'photo_overlay.png').write_bytes(b'a picture')
    before = sorted(os.listdir(out))
    with pytest.raises(ValueError) as error:
        export_onnx(exported['model'], exported['model'].cfg, str(out), PHOTO)
    assert str(error.value) == (
        f'--out {out} is an ONNX export that also holds files of its own '
        f'(photo_overlay.png), which exporting again would delete; move them '
        f'away, or pass a new or empty folder.')
    assert sorted(os.listdir(out)) == before


def test_an_export_a_file_manager_has_shown_is_replaced(exported, tmp_path):
    """macOS Finder's ``.DS_Store`` is no file of the user's: exporting
    again replaces the folder (before, it was refused as one)."""
    out = tmp_path / 'export'
    shutil.copytree(exported['dir'], out)
    (out / '.DS_Store').write_bytes(b'Bud1')
    (out / 'deploy.json').write_text('{}')  # replaced, so not read
    export_onnx(exported['model'], exported['model'].cfg, str(out), PHOTO)
    files = ['deploy.json', *onnx_export.FILES]
    assert sorted(os.listdir(out)) == sorted(files)
    with open(out / 'deploy.json') as f:
        assert json.load(f)['format'] == FORMAT


@pytest.mark.parametrize('case', ['folder', 'link'])
def test_a_folder_named_as_a_file_managers_file_is_kept(
        case, exported, tmp_path):
    """A *folder* named ``.DS_Store`` is the user's, and a linked ``--out``
    would be replaced through its link: both refused, nothing deleted."""
    out = tmp_path / 'export'
    (out / '.DS_Store').mkdir(parents=True)
    (out / '.DS_Store' / 'thesis.txt').write_text('mine')
    if case == 'link':
        (out / '.DS_Store' / 'thesis.txt').unlink()
        (out / '.DS_Store').rmdir()
        (out / '.DS_Store').write_bytes(b'Bud1')
        (tmp_path / 'link').symlink_to(out)
        out = tmp_path / 'link'
    with pytest.raises(ValueError, match='not an ONNX export|is a file or a'):
        export_onnx(exported['model'], exported['model'].cfg, str(out), PHOTO)
    assert os.listdir(out) == ['.DS_Store']
    if case == 'folder':
        assert (out / '.DS_Store' / 'thesis.txt').read_text() == 'mine'


def test_whole_mode_is_refused(exported, tmp_path):
    model = exported['model']
    mode = model.test_cfg['mode']
    model.test_cfg['mode'] = 'whole'
    try:
        with pytest.raises(ValueError, match='slide inference'):
            export_onnx(model, model.cfg, str(tmp_path / 'x'), PHOTO)
    finally:
        model.test_cfg['mode'] = mode


@pytest.mark.parametrize(
    'case',
    ['config', 'checkpoint', 'image', 'vocab', 'empty', 'truncated', 'float'])
def test_tool_bad_input_gives_one_error_line(case, exported, tmp_path, capsys):
    """Also a check image that is empty, truncated or of floats (a cv2 or
    assertion traceback before), named before anything is exported."""
    tool = load_script('tools/deployment/pytorch2onnx.py')
    image = tmp_path / ('bad.tif' if case == 'float' else 'bad.jpg')
    if case == 'float':
        Image.fromarray(np.zeros((8, 8), np.float32)).save(image)
    else:
        with open(PHOTO, 'rb') as f:
            image.write_bytes(f.read(3000 if case == 'truncated' else 0))
    args = dict(
        config=[exported['config'], exported['checkpoint']],
        checkpoint=[exported['config'],
                    str(tmp_path / 'missing.pth')],
        image=[exported['config'], '--check-image',
               str(tmp_path / 'no.jpg')],
        vocab=[exported['config'], '--vocab', 'cat,,dog'],
        **dict.fromkeys(['empty', 'truncated', 'float'], [
            exported['config'], exported['checkpoint'], '--check-image',
            str(image)
        ]))[case]
    if case == 'config':
        args[0] = str(tmp_path / 'missing.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main(args + ['--out', str(tmp_path / 'out')])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    expected = dict(
        config='config not found',
        checkpoint='checkpoint not found',
        image='Check image not found',
        vocab='empty class name',
        empty='the file is empty',
        truncated='truncated or corrupt',
        float='32-bit integers or floats')[case]
    assert expected in message
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('mode', ['config_weights', 'random'])
def test_tool_exports_the_configs_weights(mode, exported, tmp_path, capsys):
    """Without CHECKPOINT the tool exports the config's load_from, as
    tools/test.py and the demo load it; --random-weights exports a seeded
    random model; deploy.json and the output say which."""
    config = tmp_path / 'with_weights.py'
    config.write_text(f'_base_ = [{exported["config"]!r}]\n'
                      f'load_from = {exported["checkpoint"]!r}\n')
    tool = load_script('tools/deployment/pytorch2onnx.py')
    extra = ['--random-weights', '--seed', '3'] if mode == 'random' else []
    meta = tool.main([str(config), '--out', str(tmp_path / 'out'), *extra])
    printed = capsys.readouterr().out
    # The graph against the export of the same checkpoint, on one window.
    window = np.random.RandomState(0).randn(1, 3, 448, 448).astype('float32')
    feeds = dict(
        pixels=window,
        class_embeds=exported['model'].text_encoder().detach().numpy(),
        bg_thresh=np.array(0.95, np.float32))
    ours, theirs = (
        session(osp.join(d, 'image.onnx')).run(['assignments'], feeds)[0]
        for d in (str(tmp_path / 'out'), exported['dir']))
    if mode == 'random':
        assert meta['weights'] == 'random (seed 3)'
        assert 'RANDOM WEIGHTS: not a real prediction.' in printed
        assert np.abs(ours - theirs).max() > 1e-3
    else:
        assert meta['weights'] == osp.abspath(exported['checkpoint'])
        assert 'RANDOM' not in printed
        assert np.abs(ours - theirs).max() <= 1e-6


def test_tool_takes_a_checkpoint_or_random_weights_not_both(exported):
    tool = load_script('tools/deployment/pytorch2onnx.py')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            exported['config'], exported['checkpoint'], '--random-weights',
            '--out', 'x'
        ])
    assert exit_info.value.code == ('error: give CHECKPOINT or '
                                    '--random-weights, not both.')
