# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/deployment/onnx_segment.py: labels against mmseg's pipeline and
the reference fixture, no PyTorch in the process, one-line errors."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS
from PIL import Image

from tests.conftest import (CONTEXT_SAMPLE, PHOTOS, REPO, VOC_SAMPLE,
                            load_script, small_onnx_export)

pytest.importorskip('onnxruntime')
sys.path.insert(0, osp.join(REPO, 'tools', 'deployment'))

from groupvit_ort import OnnxSegmenter  # noqa: E402

TOOL = osp.join(REPO, 'tools', 'deployment', 'onnx_segment.py')
PHOTO = osp.join(PHOTOS, 'groupvit_demo_voc.jpg')
#: The share of pixels whose label must equal PyTorch's. The runtimes round
#: differently (about 3e-6 on the soft assignments of the sharp test model),
#: so a pixel whose two best groups tie to within that can change group; in
#: the runs of docs/deployment.md at most 10 pixels of an image did.
SAME_LABELS = 0.9999


@pytest.fixture(scope='module')
def voc_export(tmp_path_factory):
    return small_onnx_export(tmp_path_factory.mktemp('onnx_seg_voc'))


@pytest.fixture(scope='module')
def context_export(tmp_path_factory):
    return small_onnx_export(
        tmp_path_factory.mktemp('onnx_seg_context'), 'groupvit_context.py')


def mmseg_labels(model, path):
    """The labels tools/test.py writes with --out: mmseg's test pipeline,
    data preprocessor and ``predict``."""
    steps = [
        t for t in model.cfg.test_dataloader.dataset.pipeline
        if 'LoadAnnotations' not in t['type']
    ]
    batch = model.data_preprocessor(
        pseudo_collate([Compose(steps)(dict(img_path=path))]), False)
    with torch.no_grad():
        result = model.predict(batch['inputs'], batch['data_samples'])[0]
    return result.pred_sem_seg.data[0].numpy()


def first_ids(split, count=3):
    with open(split) as f:
        return f.read().split()[:count]


@pytest.mark.parametrize('dataset', ['voc', 'context'])
def test_labels_equal_mmseg_on_the_samples(dataset, request):
    if dataset == 'voc':
        exported = request.getfixturevalue('voc_export')
        root, split = VOC_SAMPLE, 'Segmentation/val.txt'
    else:
        exported = request.getfixturevalue('context_export')
        root, split = CONTEXT_SAMPLE, 'SegmentationContext/val.txt'
    model = exported['model']
    runner = OnnxSegmenter(exported['dir'], threads=2)
    protocol = runner.protocol
    assert protocol['bg_thresh'] == (0.95 if dataset == 'voc' else 0.35)
    class_embeds, _ = runner.class_embeddings(protocol['classes'])
    for name in first_ids(osp.join(root, 'ImageSets', split)):
        path = osp.join(root, 'JPEGImages', name + '.jpg')
        _, labels = runner.predict_file(path, class_embeds,
                                        protocol['bg_thresh'])
        expected = mmseg_labels(model, path)
        assert labels.shape == expected.shape
        assert len(np.unique(expected)) > 1, 'a trivial comparison'
        same = (labels == expected).mean()
        assert same >= SAME_LABELS, f'{name}: {same:.6f} of labels equal'


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
        assert (labels == mmseg_labels(model, path)).mean() >= SAME_LABELS


def test_runs_without_torch_and_writes_the_pictures(voc_export, tmp_path):
    out = tmp_path / 'out'
    # What the interpreter loaded at start-up (the mmcv-lite stand-in that
    # the package's .pth file registers as mmcv._ext, without importing
    # mmcv) is not the runner's doing.
    code = ('import sys; before = set(sys.modules)\n'
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
    labels = np.asarray(prediction)
    runner = OnnxSegmenter(voc_export['dir'])
    class_embeds, _ = runner.class_embeddings([['dog', 'puppy'], ['chair'],
                                               ['floor']])
    _, expected = runner.predict_file(PHOTO, class_embeds, 0.95)
    assert np.array_equal(labels, expected)
    with open(out / 'summary.json') as f:
        summary = json.load(f)
    assert summary['classes'] == ['background', 'dog', 'chair', 'floor']
    assert summary['images'][0]['legend'][1]['synonyms'] == ['puppy']
    assert json.loads(overlay.text['legend'])[3]['name'] == 'floor'


@pytest.mark.parametrize('case', [
    'vocab', 'vocab_file', 'bg_thresh', 'missing_image', 'not_export',
    'unreadable'
])
def test_bad_input_gives_the_demos_one_line_errors(case, voc_export, tmp_path):
    tool = load_script(TOOL, '_groupvit_onnx_segment')
    demo = load_script('tools/demo.py', '_groupvit_demo_for_onnx')
    bad_file = tmp_path / 'bad.jpg'
    bad_file.write_text('not an image')
    vocab_file = tmp_path / 'vocab.txt'
    vocab_file.write_text('cat\ndog\nCat\n')
    options = dict(
        vocab=['--vocab', 'cat,,dog'],
        vocab_file=['--vocab-file', str(vocab_file)],
        bg_thresh=['--bg-thresh', '1.5'],
        missing_image=[],
        not_export=[],
        unreadable=[])[case]
    images = dict(
        missing_image=[str(tmp_path / 'nope.jpg')],
        unreadable=[str(bad_file)]).get(case, [PHOTO])
    export = str(tmp_path) if case == 'not_export' else voc_export['dir']
    with pytest.raises(SystemExit) as exit_info:
        tool.main([export, *images, *options, '--out', str(tmp_path / 'o')])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    if case in ('vocab', 'vocab_file', 'bg_thresh', 'missing_image'):
        # The demo's check of the same input says the same.
        with pytest.raises(SystemExit) as demo_exit:
            demo.main([
                *images, *options, '--out',
                str(tmp_path / 'd'), '--random-weights'
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
        not_export='not an ONNX export', unreadable='could not be read')
    if case in expected:
        assert expected[case] in message
