# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/deployment/onnx_segment.py: labels against mmseg's pipeline and
the reference fixture, no PyTorch in the process, one-line errors."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from PIL import Image

from groupvit_common import export_format
from mmseg_groupvit.models.decode_heads.groupvit_head import group_maps
from mmseg_groupvit.models.layers import grouping
from mmseg_groupvit.models.layers.grouping import chain_assignments
from tests.conftest import (ASSIGNMENT_ROUNDING, CONTEXT_SAMPLE, PHOTOS, REPO,
                            SCORE_ROUNDING, VOC_SAMPLE,
                            assert_labels_equal_but_ties, load_script,
                            mmseg_batch, mmseg_result, pytorch_ties,
                            small_onnx_export, tied_hard_choices)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

pytest.importorskip('onnxruntime')

from groupvit_common.window_grid import window_boxes  # noqa: E402
from groupvit_ort import ExportError, OnnxSegmenter  # noqa: E402
from groupvit_ort.image_ops import read_rgb  # noqa: E402

TOOL = osp.join(REPO, 'tools', 'deployment', 'onnx_segment.py')
PHOTO = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')


@pytest.fixture
def voc_export(voc_onnx_export):
    return voc_onnx_export


@pytest.fixture(scope='module')
def context59_export(tmp_path_factory):
    """A head without a background channel: its graph has no threshold
    input."""
    return small_onnx_export(
        tmp_path_factory.mktemp('onnx_seg_context59'), 'groupvit_context59.py')


@pytest.fixture(scope='module')
def context_export(tmp_path_factory):
    return small_onnx_export(
        tmp_path_factory.mktemp('onnx_seg_context'), 'groupvit_context.py')


def sample_paths(dataset, count=None):
    root, split = dict(
        voc=(VOC_SAMPLE, 'Segmentation/val.txt'),
        context=(CONTEXT_SAMPLE, 'SegmentationContext/val.txt'))[dataset]
    with open(osp.join(root, 'ImageSets', split)) as f:
        names = f.read().split()[:count]
    return [osp.join(root, 'JPEGImages', name + '.jpg') for name in names]


def exported_for(dataset, request):
    return request.getfixturevalue(f'{dataset}_export')


@pytest.mark.parametrize('dataset', ['voc', 'context'])
def test_labels_equal_mmseg_on_the_samples(dataset, request):
    exported = exported_for(dataset, request)
    model = exported['model']
    runner = OnnxSegmenter(exported['dir'], threads=2)
    protocol = runner.protocol
    assert protocol['bg_thresh'] == (0.95 if dataset == 'voc' else 0.35)
    class_embeds, _ = runner.class_embeddings(protocol['classes'])
    for path in sample_paths(dataset, 3):
        _, labels = runner.predict_file(path, class_embeds,
                                        protocol['bg_thresh'])
        differ, tied = assert_labels_equal_but_ties(labels, model, path)
        print(f'{path}: {differ} pixels differ, {tied} tied')


def test_a_label_changed_where_pytorch_does_not_tie_fails(voc_export):
    """The comparison above is not vacuous: one pixel moved to another
    label where PyTorch does not tie makes it fail; the runner's labels
    differ only inside the tied pixels."""
    model = voc_export['model']
    path = sample_paths('voc', 1)[0]
    expected, scores = mmseg_result(model, path)
    tied = pytorch_ties(model, path, scores)
    assert 0 < tied.sum() < tied.size / 2, 'the tied pixels are not few'
    for y, x in (np.argwhere(~tied)[0], np.argwhere(~tied)[-1]):
        labels = expected.copy()
        labels[y, x] = (labels[y, x] + 1) % scores.shape[0]
        with pytest.raises(AssertionError, match='1 pixels differ'):
            assert_labels_equal_but_ties(labels, model, path)
    labels = expected.copy()
    labels[tied] = (labels[tied] + 1) % scores.shape[0]
    assert assert_labels_equal_but_ties(labels, model, path) == \
        (tied.sum(), tied.sum())


@pytest.mark.parametrize('dataset', ['voc', 'context'])
def test_runner_steps_reproduce_mmseg_exactly(dataset, request, monkeypatch):
    """Everything the runner does around the image graph (decoding, resize,
    normalisation, windows, averaging, resize back, argmax) gives
    tools/test.py's labels bit for bit when the graph's window scores are
    PyTorch's: on every shipped sample, no pixel differs."""
    exported = exported_for(dataset, request)
    model = exported['model']
    runner = OnnxSegmenter(exported['dir'], threads=2)
    calls = []

    def pytorch_window_scores(windows, class_embeds, bg_thresh):
        assert bg_thresh == model.test_cfg['bg_thresh']
        calls.append(len(windows))
        metas = [dict(img_shape=windows.shape[-2:])] * len(windows)
        # Contiguous, as the graph gets them: PyTorch's convolution takes
        # another kernel for a channels-last array, whose rounding can move
        # a pixel that ties between two groups.
        windows = torch.from_numpy(np.ascontiguousarray(windows))
        with torch.no_grad():
            return model.encode_decode(windows, metas).numpy()

    # Only their count matters here: PyTorch scores the windows with the
    # model's own text encoder.
    class_embeds, _ = runner.class_embeddings(runner.protocol['classes'])
    monkeypatch.setattr(runner, 'window_scores', pytorch_window_scores)
    varied = 0
    for path in sample_paths(dataset):
        # The averaged window scores, before the resize back: every float.
        batch = mmseg_batch(model, path)
        pixels = runner.preprocess(read_rgb(path))
        assert np.array_equal(pixels, batch['inputs'].numpy())
        with torch.no_grad():
            canvas = model.inference(batch['inputs'],
                                     [batch['data_samples'][0].metainfo])
        assert np.array_equal(
            runner.slide(pixels, class_embeds, runner.protocol['bg_thresh']),
            canvas[0].numpy())
        _, labels = runner.predict_file(path, class_embeds,
                                        runner.protocol['bg_thresh'])
        expected, _ = mmseg_result(model, path)
        varied += len(np.unique(expected)) > 1
        assert np.array_equal(labels, expected), \
            f'{path}: {int((labels != expected).sum())} pixels differ'
    assert varied >= len(sample_paths(dataset)) // 2, 'trivial comparisons'
    assert max(calls) == 2 and len(calls) > len(sample_paths(dataset))


def pytorch_window(model, inputs, flip=None):
    """PyTorch's scores, soft group maps and chained assignments of one
    window; with ``flip=(stage, patch)``, that patch's hard assignment in
    that grouping stage goes to its second-best group."""

    def forward(run):
        stages = []

        def one_hot(soft, dim):
            # grouping.straight_through_one_hot, but for the flipped patch.
            index = soft.argmax(dim, keepdim=True)
            if flip is not None and len(stages) == flip[0]:
                second = soft.topk(2, dim=dim).indices[:, 1:2, flip[1]]
                index[..., flip[1]] = second
            stages.append(dim)
            hard = torch.zeros_like(soft).scatter_(dim, index, 1.0)
            return hard - soft.detach() + soft

        with torch.no_grad(), mock.patch.object(grouping,
                                                'straight_through_one_hot',
                                                one_hot):
            return run()

    metas = [dict(img_shape=inputs.shape[2:])]
    scores = forward(lambda: model.encode_decode(inputs, metas)).numpy()
    feats = forward(lambda: model.extract_feat(inputs))
    maps = group_maps(feats['soft_assigns'], feats['grid'],
                      inputs.shape[2:])[0].numpy()
    chained = chain_assignments(feats['soft_assigns']).numpy()
    return scores, maps, chained, feats['soft_assigns']


@pytest.mark.parametrize('dataset', ['voc', 'context'])
def test_graph_moves_a_pixel_only_where_pytorch_ties(dataset, request):
    """Where the runner's labels may differ from tools/test.py's. On every
    window of every shipped sample, the graph's soft assignments are
    PyTorch's to within the runtimes' rounding, and it gives a pixel
    another group only where PyTorch's two best groups are closer than
    that rounding can tell apart (twice the largest difference, plus the
    resize's rounding); every other pixel has PyTorch's scores.

    Where the soft assignments differ more, a grouping stage's hard
    assignment is itself a tie in PyTorch, and the graph sent that patch to
    the other group (which changes every group token after it): PyTorch run
    with that one choice flipped gives the graph's assignments, and the
    window is then checked pixel by pixel as the others."""
    exported = exported_for(dataset, request)
    model = exported['model']
    runner = OnnxSegmenter(exported['dir'], threads=2)
    protocol = runner.protocol
    class_embeds, _ = runner.class_embeddings(protocol['classes'])
    bg_thresh = np.array(protocol['bg_thresh'], np.float32)
    windows = flipped = moved_total = 0
    for path in sample_paths(dataset):
        pixels = runner.preprocess(read_rgb(path))
        for y1, y2, x1, x2 in window_boxes(*pixels.shape[2:],
                                           protocol['crop_size'],
                                           protocol['stride']):
            windows += 1
            window = np.ascontiguousarray(pixels[:, :, y1:y2, x1:x2])
            scores, pixel_group, assignments = runner.image.run(
                ['scores', 'pixel_group', 'assignments'],
                dict(
                    pixels=window,
                    class_embeds=class_embeds,
                    bg_thresh=bg_thresh))
            inputs = torch.from_numpy(window)
            expected, maps, chained, soft = pytorch_window(model, inputs)
            rounding = np.abs(assignments - chained).max()
            if rounding > ASSIGNMENT_ROUNDING:
                where = f'{path} window {(y1, x1)}'
                for tie in tied_hard_choices(soft):
                    expected, maps, chained, _ = pytorch_window(
                        model, inputs, flip=tie)
                    rounding = np.abs(assignments - chained).max()
                    if rounding <= ASSIGNMENT_ROUNDING:
                        break
                assert rounding <= ASSIGNMENT_ROUNDING, \
                    f'{where}: no tied hard assignment explains the graph'
                flipped += 1
            top_two = np.sort(maps, axis=0)[-2:]
            margin = top_two[1] - top_two[0]
            moved = pixel_group[0] != maps.argmax(0)
            assert margin[moved].max(initial=0) <= 2 * rounding + 1e-6, path
            assert np.abs(scores - expected)[0].max(0)[~moved].max() <= \
                SCORE_ROUNDING
            moved_total += moved.sum()
    print(f'{dataset}: {windows} windows, {flipped} with a tied hard '
          f'assignment, {moved_total} pixels moved at a tie')


def test_labels_equal_the_reference_fixture(fixture_a, tmp_path_factory):
    """The fixture's architecture, vocabulary and threshold: the original
    code's label maps, with the bound our PyTorch path meets
    (tests/test_reference_fixture.py), and our PyTorch path's labels."""
    from mmseg_groupvit.deployment import export_onnx
    from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
    out = tmp_path_factory.mktemp('onnx_fixture')
    reference = np.load(osp.join(fixture_a, 'reference.npz'))
    hf = convert_checkpoint(osp.join(fixture_a, 'hf'), str(out / 'hf.pth'))
    cfg = Config.fromfile(hf['config'])
    model = MODELS.build(ConfigDict(cfg.model))
    load_checkpoint(model, str(out / 'hf.pth'), map_location='cpu')
    model.cfg = cfg
    model.eval()
    shared = osp.dirname(osp.dirname(fixture_a))
    paths = [osp.join(shared, str(f)) for f in reference['image_files']]
    export_onnx(model, cfg, str(out / 'export'), paths[0])
    runner = OnnxSegmenter(str(out / 'export'), threads=2)
    class_embeds, _ = runner.class_embeddings(runner.protocol['classes'])
    for i, path in enumerate(paths):
        _, labels = runner.predict_file(path, class_embeds,
                                        runner.protocol['bg_thresh'])
        assert labels.shape == reference[f'img{i}_label'].shape
        assert (labels == reference[f'img{i}_label']).mean() >= 0.999
        assert_labels_equal_but_ties(labels, model, path)


def test_runs_without_torch_and_writes_the_pictures(voc_export, tmp_path):
    out = tmp_path / 'out'
    # What the interpreter loaded at start-up (the mmcv-lite stand-in that
    # the package's .pth file registers as mmcv._ext, without importing
    # mmcv) is not the runner's doing.
    code = (
        'import sys; before = set(sys.modules)\n'
        # sys.path[0]: the script's folder, as `python TOOL` has it.
        f'sys.path[0] = {osp.dirname(TOOL)!r}\n'
        f'import runpy; sys.argv = {[TOOL, voc_export["dir"], PHOTO]!r}'
        f' + ["--vocab", "dog|puppy,chair,floor", "--out", {str(out)!r},'
        f' "--threads", "2"]\n'
        f'runpy.run_path({TOOL!r}, run_name="__main__")\n'
        'banned = ("torch", "mmcv", "mmengine", "mmseg", "mmseg_groupvit",'
        ' "cv2")\n'
        'print("IMPORTED", [m for m in sys.modules'
        ' if m.split(".")[0] in banned and m not in before])\n'
        'print("AT START", sorted(m for m in before'
        ' if m.split(".")[0] in banned))\n')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'IMPORTED []' in proc.stdout, proc.stdout
    assert "AT START ['mmcv._ext']" in proc.stdout or \
        'AT START []' in proc.stdout, proc.stdout
    width, height = Image.open(PHOTO).size
    prediction = Image.open(out / 'groupvit_demo_voc_prediction.png')
    overlay = Image.open(out / 'groupvit_demo_voc_overlay.png')
    assert prediction.size == overlay.size == (width, height)
    # The labels written are PyTorch's with the same vocabulary (but at
    # its ties).
    model = voc_export['model']
    model.set_vocabulary([['dog', 'puppy'], ['chair'], ['floor']])
    try:
        assert_labels_equal_but_ties(np.asarray(prediction), model, PHOTO)
    finally:
        model.set_vocabulary(dataset_name='voc')
    with open(out / 'summary.json') as f:
        summary = json.load(f)
    assert summary['classes'] == ['background', 'dog', 'chair', 'floor']
    assert summary['images'][0]['legend'][1]['synonyms'] == ['puppy']
    assert json.loads(overlay.text['legend'])[3]['name'] == 'floor'


@pytest.mark.parametrize('case', [
    'vocab', 'vocab_file', 'vocab_file_bar', 'bg_thresh', 'missing_image',
    'not_export', 'unreadable', 'out_is_a_file', 'background_later',
    'background_synonym'
])
def test_bad_input_gives_the_demos_one_line_errors(case, voc_export, tmp_path):
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    demo = load_script('tools/demo.py', '_groupvit_demo_for_onnx')
    bad_file = tmp_path / 'bad.jpg'
    bad_file.write_text('not an image')
    vocab_file = tmp_path / 'vocab.txt'
    vocab_file.write_text('cat\ndog\nCat\n')
    bar_file = tmp_path / 'bar.txt'  # --vocab's synonym syntax in a file
    bar_file.write_text('cat\ndog|puppy\n')
    options = dict(
        vocab=['--vocab', 'cat,,dog'],
        vocab_file=['--vocab-file', str(vocab_file)],
        vocab_file_bar=['--vocab-file', str(bar_file)],
        background_later=['--vocab', 'dog,background'],
        background_synonym=['--vocab', 'BACKGROUND|bg,dog'],
        bg_thresh=['--bg-thresh', '1.5'],
        missing_image=[],
        not_export=[],
        unreadable=[],
        out_is_a_file=[])[case]
    images = dict(
        missing_image=[str(tmp_path / 'nope.jpg')],
        unreadable=[str(bad_file)]).get(case, [PHOTO])
    export = str(tmp_path) if case == 'not_export' else voc_export['dir']
    out = {'out_is_a_file': bad_file}.get(case, tmp_path / 'o')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([export, *images, *options, '--out', str(out)])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    if case in ('vocab', 'vocab_file', 'vocab_file_bar', 'bg_thresh',
                'missing_image', 'out_is_a_file'):
        # The demo's check of the same input says the same.
        with pytest.raises(SystemExit) as demo_exit:
            demo.main([
                *images, *options, '--out',
                str({'out_is_a_file': bad_file}.get(case, tmp_path / 'd')),
                '--random-weights'
            ])
        demo_message = str(demo_exit.value.code)
        if case == 'bg_thresh':
            # Each names the setting it was given as: the runner its
            # --bg-thresh, the demo the model's test_cfg key it sets.
            assert message.startswith('error: --bg-thresh must be')
            assert demo_message.startswith(
                'error: model.test_cfg.bg_thresh must be')
            message, demo_message = (
                m.split(' must be ', 1)[1] for m in (message, demo_message))
        assert demo_message == message
    expected = dict(
        not_export='not an ONNX export',
        unreadable='could not be read',
        out_is_a_file='bad.jpg is a file, not a folder',
        vocab_file_bar=f"{bar_file}, line 2: 'dog|puppy' holds \"|\"",
        background_later='"background" is a name of the prompted class '
        '"background", but it may only be the first class',
        background_synonym='"background" is a name of the prompted class '
        '"BACKGROUND, bg"')
    if case in expected:
        assert expected[case] in message


def test_bad_opacity_is_refused(capsys):
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(['export', PHOTO, '--opacity', '1.5'])
    assert exit_info.value.code == 2
    # argparse names the program after sys.argv[0].
    assert ': error: argument --opacity: must be in [0, 1], got 1.5' in \
        capsys.readouterr().err


@pytest.mark.parametrize('option,value,message', [
    ('--threads', '0', 'threads must be an integer >= 1 (leave --threads '
     'out for all cores), got 0'),
    ('--threads', '-1', 'threads must be an integer >= 1 (leave --threads '
     'out for all cores), got -1'),
    ('--window-batch', '0', 'window batch must be an integer >= 1 '
     '(--window-batch), got 0'),
])
def test_runtime_options_are_checked_by_the_runner(option, value, message,
                                                   voc_export, tmp_path):
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            voc_export['dir'], PHOTO, option, value, '--out',
            str(tmp_path / 'o')
        ])
    assert str(exit_info.value.code) == f'error: {message}'
    # The same check for API callers (a bool is not a count).
    options = dict(threads=True) if 'threads' in option else dict(
        window_batch=True)
    with pytest.raises(ValueError, match=message.split(' (')[0]):
        OnnxSegmenter(voc_export['dir'], **options)


def test_out_folder_equal_to_the_input_folder(voc_export, tmp_path):
    """Run twice with --out the input folder: the second run segments the
    photo only, not the pictures the first one wrote there (the demo's
    rule)."""
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    shutil.copy(PHOTO, tmp_path / 'photo.jpg')
    args = [voc_export['dir'], str(tmp_path), '--out', str(tmp_path)]
    for _ in range(2):
        summary = tool.main(args)
        assert [r['image']
                for r in summary['images']] == [str(tmp_path / 'photo.jpg')]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'photo.jpg', 'photo_overlay.png', 'photo_prediction.png',
        'summary.json'
    ]


def test_pictures_never_replace_a_users_file(voc_export, tmp_path, capsys):
    """A photo of the user's named as a picture the runner would write is
    kept, and its image named (the demo's rule)."""
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    shutil.copy(PHOTO, tmp_path / 'photo.jpg')
    own = tmp_path / 'photo_overlay.png'
    Image.open(PHOTO).save(own)
    before = own.read_bytes()
    with pytest.raises(SystemExit) as exc:
        tool.main([
            voc_export['dir'],
            str(tmp_path / 'photo.jpg'), '--out',
            str(tmp_path)
        ])
    assert own.read_bytes() == before
    assert exc.value.code == (f'error: 1 of 1 image(s) were not written: '
                              f'{tmp_path / "photo.jpg"}')
    assert f'{own} exists and was not written by this package' in \
        capsys.readouterr().err


@pytest.mark.parametrize('size', [(1500, 300), (300, 1500)])
def test_panorama_below_the_window_is_refused(size, voc_export, tmp_path):
    """A photo more elongated than the resize scale (2048x448) has a
    resized short side below the 448-pixel window: PyTorch runs smaller
    windows, the graph cannot. It is named and skipped; the others are
    written."""
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    panorama = tmp_path / 'panorama.png'
    Image.fromarray(
        np.random.RandomState(0).randint(0, 255, size[::-1] + (3, ),
                                         np.uint8)).save(panorama)
    out = tmp_path / 'o'
    with pytest.raises(SystemExit) as exit_info:
        tool.main([voc_export['dir'], str(panorama), PHOTO, '--out', str(out)])
    assert str(exit_info.value.code) == (
        f'error: 1 of 2 image(s) could not be segmented with this export: '
        f'{panorama}')
    assert (out / 'groupvit_demo_voc_prediction.png').is_file()
    assert not (out / 'panorama_prediction.png').exists()
    with open(out / 'summary.json') as f:
        assert json.load(f)['failed'] == [str(panorama)]
    runner = OnnxSegmenter(voc_export['dir'])
    class_embeds, _ = runner.class_embeddings([['cat']])
    # 1500x300 resizes to 2048x410 (the long side reaches 2048 first).
    with pytest.raises(
            ValueError, match=r'smaller than the export\'s '
            r'448x448 window'):
        runner.predict_file(str(panorama), class_embeds, 0.5)


@pytest.mark.parametrize('key,value,says', [
    ('stride', [0, 224], 'protocol.stride must be two positive integers'),
    ('stride', [224.5, 224], 'protocol.stride must be two positive'),
    ('stride', None, 'protocol.stride must be two positive integers'),
    ('stride', [True, 224], 'protocol.stride must be two positive'),
    ('stride', [500, 500], 'larger than protocol.crop_size'),
    ('crop_size', [448, 0], 'protocol.crop_size must be two positive'),
    ('crop_size', [448, 448, 448], 'protocol.crop_size must be two'),
    ('crop_size', [224, 224], "is not the image graph's window [448, 448]"),
    ('resize', dict(scale=[2048, -448], keep_ratio=True),
     'protocol.resize.scale must be two positive integers'),
    ('mean', [1, 2], 'protocol.mean must be three finite numbers'),
    ('std', [58.4, 0, 57.4], 'protocol.std must be positive'),
    ('std', [58.4, float('nan'), 57.4], 'NaN is not a JSON number'),
    ('with_bg', 'yes', 'protocol.with_bg must be true or false'),
    ('context_length', 0, 'protocol.context_length must be an integer'),
    ('templates', ['a photo.'], 'protocol.templates: Prompt template'),
    ('classes', [], 'protocol.classes must be a list of non-empty lists'),
    ('bg_thresh', 2, 'protocol.bg_thresh must be a number in [0, 1]'),
])
def test_damaged_protocol_is_refused(key, value, says, voc_export, tmp_path):
    """deploy.json may come from anyone: each value the runner uses is
    checked once, when the export is opened, with one error line."""
    export = tmp_path / 'export'
    shutil.copytree(voc_export['dir'], export)
    with open(export / 'deploy.json') as f:
        meta = json.load(f)
    meta['protocol'][key] = value
    # Digests computed again, as whoever crafts a folder can.
    meta['sha256'] = export_format.digests(
        meta['protocol'], {
            name: (export / name).read_bytes()
            for name in os.listdir(export) if name != 'deploy.json'
        })
    with open(export / 'deploy.json', 'w') as f:
        json.dump(meta, f)
    with pytest.raises(ExportError) as info:
        OnnxSegmenter(str(export))
    assert says in str(info.value)
    assert str(info.value).endswith(
        'export again with tools/deployment/pytorch2onnx.py.')
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(export), PHOTO, '--out', str(tmp_path / 'o')])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and says in message
    assert '\n' not in message and not (tmp_path / 'o').exists()


def test_head_without_background_exports_and_runs(context59_export, tmp_path):
    """PASCAL Context 59 (with_bg=False, as ADE20K, COCO-Stuff, Cityscapes
    and VOC20): the graph takes no threshold, the labels follow mmseg's, and
    a --bg-thresh, which cannot apply, is refused."""
    with open(osp.join(context59_export['dir'], 'deploy.json')) as f:
        meta = json.load(f)
    assert meta['image_graph']['inputs'] == ['pixels', 'class_embeds']
    assert not meta['protocol']['with_bg']
    model = context59_export['model']
    runner = OnnxSegmenter(context59_export['dir'], threads=2)
    class_embeds, _ = runner.class_embeddings(runner.protocol['classes'])
    assert len(class_embeds) == 59
    for path in sample_paths('context', 2):
        _, labels = runner.predict_file(path, class_embeds,
                                        runner.protocol['bg_thresh'])
        assert_labels_equal_but_ties(labels, model, path)
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            context59_export['dir'], PHOTO, '--bg-thresh', '0.5', '--out',
            str(tmp_path / 'o')
        ])
    assert str(exit_info.value.code).startswith(
        'error: --bg-thresh does not apply to this export: its head has no '
        'background channel')
    # A leading 'background' would shift every label by one: refused, in
    # the words of PyTorch's set_vocabulary.
    with pytest.raises(SystemExit) as exit_info:
        tool.main([
            context59_export['dir'], PHOTO, '--vocab', 'background,cat,dog',
            '--out',
            str(tmp_path / 'o')
        ])
    with pytest.raises(ValueError) as pytorch:
        model.set_vocabulary(['background', 'cat', 'dog'])
    assert 'every label would shift by one' in str(pytorch.value)
    assert str(exit_info.value.code) == f'error: {pytorch.value}'
    summary = tool.main(
        [context59_export['dir'], PHOTO, '--out',
         str(tmp_path / 'o')])
    # No background class in front of the vocabulary.
    assert summary['classes'] == [c[0] for c in meta['protocol']['classes']]


def test_legend_shows_the_classes_present_most_pixels_first():
    """As the demo's: the picture lists the classes present by share, then
    how many are absent; summary.json keeps every class."""
    from groupvit_common.drawing import class_legend, legend_entries
    labels = np.array([[0, 2, 2, 2], [2, 3, 3, 0]])
    palette = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
    legend = class_legend(['background', 'cat', 'dog', 'cow'],
                          [[], [], ['puppy'], []], True, labels, palette)
    entries, footer = legend_entries(legend)
    assert [e['name'] for e in legend] == ['background', 'cat', 'dog', 'cow']
    assert [e['share'] for e in legend] == [0.25, 0, 0.5, 0.25]
    assert entries == [('dog, puppy', [2, 2, 2], 0.5),
                       ('background', None, 0.25), ('cow', [3, 3, 3], 0.25)]
    assert footer == '+1 class absent'
