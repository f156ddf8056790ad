# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Shared test fixtures: paths, the reference fixture of the original code,
and small GroupViT models built from configs."""
import contextlib
import functools
import gzip
import hashlib
import http.server
import importlib.util
import io
import math
import os
import os.path as osp
import shutil
import signal
import sys
import threading
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_groupvit  # noqa: F401  (registers the components)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SAMPLES = osp.join(REPO, 'samples')
VOC_SAMPLE = osp.join(SAMPLES, 'voc2012_sample', 'VOCdevkit', 'VOC2012')
CONTEXT_SAMPLE = osp.join(SAMPLES, 'context_sample', 'VOCdevkit', 'VOC2010')
COCO_SAMPLE = osp.join(SAMPLES, 'coco_sample')
PHOTOS = osp.join(SAMPLES, 'images')
# The large reference fixtures live outside the repository, in ../shared
# (override with GROUPVIT_FIXTURES).
FIXTURE_A = os.environ.get(
    'GROUPVIT_FIXTURES',
    osp.join(osp.dirname(REPO), 'shared', 'fixtures', 'groupvit-original-A'))

# A small architecture for fast tests (two grouping stages, 4 heads).
SMALL_ARCH = dict(
    image_encoder=dict(
        hidden_size=64,
        intermediate_size=128,
        depths=[1, 1, 1],
        num_group_tokens=[8, 4, 0],
        num_output_groups=[8, 4],
        num_attention_heads=4,
        projection_dim=32,
        projection_intermediate_dim=64),
    text_encoder=dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        projection_dim=32,
        projection_intermediate_dim=64))

# SMALL_ARCH as a transformers GroupViTConfig's arguments.
HF_SMALL = dict(
    vision_config=dict(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        depths=[1, 1, 1],
        num_hidden_layers=3,
        num_group_tokens=[8, 4, 0],
        num_output_groups=[8, 4, 4]),
    text_config=dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2),
    projection_dim=32,
    projection_intermediate_dim=64)


def started_progress(progress):
    """A progress folder prepared for a new run of made-up inputs (its
    ``meta.json`` ties the records written there to that run)."""
    from mmseg_groupvit.evaluation import prepare_progress
    run = dict(
        model='m',
        dataset='d',
        evaluator='e',
        checkpoint='c',
        files={},
        output_dir=None)
    prepare_progress(str(progress), run, False)
    return str(progress)


def swaps_of_a_test_run(progress):
    """What a shipped VOC config's test run changes, one line each as
    ``tools/test.py`` logs it (``progress``: the run's progress folder)."""
    return [
        'test_dataloader.dataset.pipeline.0: LoadImageFromFile -> '
        'RobustLoadImageFromFile',
        'test_dataloader.dataset.pipeline.2: LoadAnnotations -> '
        'CheckedLoadAnnotations',
        f'test_evaluator.progress_dir: None -> {progress}',
        'test_dataloader.sampler: DefaultSampler -> SkipDoneSampler (skips '
        f'the images recorded in {progress})'
    ]


def load_script(path, name=None):
    """Import a script by path (``tools/`` is not a package), its folder on
    ``sys.path`` as when Python runs it (its sibling modules import).

    Args:
        path (str): The script, absolute or relative to the repository.
        name (str, optional): Module name; derived from the path if None.
            The module is registered in ``sys.modules`` so that worker
            processes can unpickle its functions.
    """
    path = path if osp.isabs(path) else osp.join(REPO, path)
    if osp.dirname(path) not in sys.path:
        sys.path.append(osp.dirname(path))
    name = name or '_groupvit_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def shell_signals():
    """``preexec_fn`` of a process a test interrupts: SIGINT as a shell gives
    it (default, unblocked), whatever an earlier in-process run of this
    worker left."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_main(path, argv, name=None):
    """Run a tool's ``main(argv)`` in this process with one torch thread, as
    a subprocess test would: ``(result, console text)``, the result being
    ``main``'s return value or the code it exits with."""
    tool = load_script(path, name)
    out, threads = io.StringIO(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            result = tool.main([str(a) for a in argv])
    except SystemExit as e:
        result = e.code
    finally:
        torch.set_num_threads(threads)
    return result, out.getvalue()


#: Threads per test process: the machine's 2 cores, shared among the
#: pytest-xdist workers when there are several.
TORCH_THREADS = max(1,
                    2 // int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', 1)))


@pytest.fixture(autouse=True)
def _mmseg_scope():
    """mmseg's registry scope for each test, and after it for the next
    module's fixtures, which pytest sets up before this one."""
    init_default_scope('mmseg')
    torch.set_num_threads(TORCH_THREADS)
    yield
    init_default_scope('mmseg')


# A worker's first module-scoped fixture runs before any test's.
init_default_scope('mmseg')


@pytest.fixture(scope='session', autouse=True)
def _progress_key(tmp_path_factory):
    """The secret key of progress records in a test folder, not the user's
    cache (the tools run as subprocesses inherit it)."""
    previous = os.environ.get('MMSEG_GROUPVIT_PROGRESS_KEY')
    os.environ['MMSEG_GROUPVIT_PROGRESS_KEY'] = str(
        tmp_path_factory.mktemp('key') / 'progress.key')
    yield
    if previous is None:
        del os.environ['MMSEG_GROUPVIT_PROGRESS_KEY']
    else:
        os.environ['MMSEG_GROUPVIT_PROGRESS_KEY'] = previous


@pytest.fixture(scope='session')
def fixture_a():
    """Path of the original code's reference fixture (skips when absent)."""
    if not osp.isdir(FIXTURE_A):
        pytest.skip(f'reference fixture not found at {FIXTURE_A}: it ships '
                    f'beside the repository in shared/fixtures (or set '
                    f'GROUPVIT_FIXTURES)')
    return FIXTURE_A


def build_small_segmentor(config='groupvit_voc.py', seed=0, **overrides):
    """A randomly initialised small GroupViT segmentor built from a shipped
    config, in eval mode."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    cfg.model.image_encoder.update(SMALL_ARCH['image_encoder'])
    cfg.model.text_encoder.update(SMALL_ARCH['text_encoder'])
    for key, value in overrides.items():
        cfg.model[key].update(value)
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(cfg.model))
    model.init_weights()
    randomise_batchnorm(model, seed)
    return model.eval()


def voc_subset(root, names):
    """Copy the VOC sample's pairs ``names`` into a VOC layout under
    ``root`` (JPEGImages, SegmentationClass, the val split); return it."""
    for folder, suffix in (('JPEGImages', '.jpg'), ('SegmentationClass',
                                                    '.png')):
        (root / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(
                osp.join(VOC_SAMPLE, folder, name + suffix), root / folder)
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (root / 'ImageSets' / 'Segmentation' /
     'val.txt').write_text('\n'.join(names) + '\n')
    return root


def varied_segmentor(seed=0, text_encoder=False):
    """A small random GroupViT whose labels vary with the image: at the
    usual init scale (std 0.02) random weights give one class everywhere,
    which would make every comparison trivial. See :func:`vary_weights`."""
    return vary_weights(build_small_segmentor(seed=seed), seed, text_encoder)


def vary_weights(model, seed=0, text_encoder=False):
    """Make a random segmentor's labels vary with the image, in place:
    matrices of the image encoder (and of the text encoder when asked) are
    drawn at std 0.2, and the head's temperature is the clamp, 100."""
    gen = torch.Generator().manual_seed(seed)
    encoders = [model.image_encoder]
    if text_encoder:
        encoders.append(model.text_encoder)
    with torch.no_grad():
        for encoder in encoders:
            for param in encoder.parameters():
                if param.dim() >= 2:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
        model.decode_head.logit_scale.fill_(math.log(100))
    return model


def randomise_batchnorm(model, seed=0):
    """Give BatchNorm layers non-trivial running statistics and affine
    parameters, so projections are not near-identity."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


@torch.no_grad()
def randomise_hf(hf, seed=0, logit_scale=None):
    """Move every tensor that transformers initialises to a constant (zero
    biases and group tokens, unit norms, zero position table, fresh
    BatchNorm statistics) to random values, so nothing passes by accident."""
    gen = torch.Generator().manual_seed(seed)

    def randn(t, std, mean=0.):
        return torch.randn(t.shape, generator=gen) * std + mean

    for name, param in hf.named_parameters():
        if name == 'logit_scale':
            if logit_scale is not None:
                param.fill_(logit_scale)
        elif name.endswith('.bias'):
            param.copy_(randn(param, 0.02))
        elif 'group_token' in name or 'position_embeddings' in name:
            param.copy_(randn(param, 0.2))
    for module in hf.modules():
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
            module.weight.copy_(randn(module.weight, 0.1, 1.))
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(randn(module.running_mean, 0.2))
            module.running_var.copy_(
                torch.rand(module.running_var.shape, generator=gen) + 0.5)
            module.num_batches_tracked.fill_(7)


class _FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, and ``/MODE/NAME`` as a server or network that
    fails would: ``truncated`` announces NAME's length and sends half;
    ``nolength`` sends half without a length; ``lying`` announces half and
    sends all; ``gzip`` sends it gzip-encoded; ``chunked`` sends half in
    chunks and closes; ``stall`` sends half, then nothing for a minute;
    ``once`` is ``nolength`` on the first request, whole afterwards;
    ``/named/NAME/ANY`` sends NAME whole under any name; ``endless`` sends
    zeros without a length until the client hangs up (or 60 s pass);
    ``trickle`` announces NAME's length and sends a byte every 0.1 s;
    ``loop`` redirects to itself, ``elsewhere`` to a ``file://`` URL. Every
    GET path is recorded."""

    MODES = ('truncated', 'nolength', 'lying', 'gzip', 'chunked', 'stall',
             'once', 'named', 'endless', 'trickle', 'loop', 'elsewhere')

    def do_GET(self):
        self.server.requests.append(self.path)
        mode, _, name = self.path.lstrip('/').partition('/')
        if mode not in self.MODES:
            return super().do_GET()
        if mode in ('loop', 'elsewhere'):
            self.send_response(302)
            self.send_header(
                'Location',
                self.path if mode == 'loop' else 'file:///etc/hostname')
            return self.end_headers()
        name = name.split('/')[0]
        with open(osp.join(self.directory, name), 'rb') as f:
            data = f.read()
        if mode == 'once':
            mode = 'nolength' if self.server.requests.count(
                self.path) == 1 else 'named'
        body, headers = data[:len(data) // 2], {}
        if mode in ('truncated', 'stall'):
            headers['Content-Length'] = len(data)
        elif mode in ('lying', 'named'):
            body = data
            headers['Content-Length'] = len(data) // (2 if mode == 'lying' else
                                                      1)
        elif mode == 'gzip':
            body = gzip.compress(data)
            headers = {'Content-Encoding': 'gzip', 'Content-Length': len(body)}
        elif mode == 'chunked':
            headers['Transfer-Encoding'] = 'chunked'
            body = b'%x\r\n%s\r\n' % (len(body), body)
        if mode == 'trickle':
            headers['Content-Length'] = len(data)
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.end_headers()
        if mode in ('endless', 'trickle'):
            chunk = bytes(1 << 16) if mode == 'endless' else data[:1]
            deadline = time.time() + 60
            try:
                while time.time() < deadline:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(0.1 * (mode == 'trickle'))
            except OSError:  # the client hung up
                pass
            self.close_connection = True
            return
        try:
            self.wfile.write(body)
            if mode == 'stall':
                self.wfile.flush()
                time.sleep(60)
        except OSError:  # a client that refused the file hung up
            pass
        self.close_connection = True

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folder(folder):
    """An HTTP server on 127.0.0.1 serving ``folder`` from a thread; yields
    ``(base_url, requests)``, the list of the paths requested."""
    handler = functools.partial(_FileHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def release_name(path, stem):
    """Rename ``path`` to ``stem-<first 8 hex of its SHA-256>.pth``, the
    release naming; returns the new path."""
    digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()[:8]
    target = osp.join(osp.dirname(path), f'{stem}-{digest}.pth')
    os.replace(path, target)
    return target


def hub_cache(hub, repo_id, folder):
    """Make ``hub`` (a Hugging Face cache folder, ``HF_HUB_CACHE``) hold
    ``folder``'s files as ``repo_id``'s main revision, in the layout
    huggingface_hub writes: ``refs/main`` names a snapshot folder."""
    commit = '0' * 40
    repo = osp.join(hub, 'models--' + repo_id.replace('/', '--'))
    snapshot = osp.join(repo, 'snapshots', commit)
    os.makedirs(snapshot)
    os.makedirs(osp.join(repo, 'refs'))
    with open(osp.join(repo, 'refs', 'main'), 'w') as f:
        f.write(commit)
    for name in os.listdir(folder):
        shutil.copy(osp.join(folder, name), osp.join(snapshot, name))


def small_onnx_export(root, config='groupvit_voc.py', seed=0):
    """Export a :func:`varied_segmentor` (image and text encoders varied)
    with the architecture of :data:`SMALL_ARCH` over a shipped config.

    Returns:
        dict: ``dir`` (the export), ``model`` (the PyTorch segmentor, with
        ``cfg``), ``config`` and ``checkpoint`` paths.
    """
    from mmseg_groupvit.deployment import export_onnx
    init_default_scope('mmseg')
    root = str(root)
    model = varied_segmentor(seed=seed, text_encoder=True)
    checkpoint = osp.join(root, 'small.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    leaf = osp.join(root, osp.basename(config))
    with open(leaf, 'w') as f:
        f.write(f"_base_ = ['{osp.join(REPO, 'configs', config)}']\n"
                f"model = dict(image_encoder="
                f"{SMALL_ARCH['image_encoder']!r}, text_encoder="
                f"{SMALL_ARCH['text_encoder']!r})\n")
    import warnings

    from mmseg_groupvit.apis import init_groupvit
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = init_groupvit(leaf, checkpoint)
    cfg = model.cfg
    out = osp.join(root, 'export')
    export_onnx(
        model,
        cfg,
        out,
        osp.join(PHOTOS, 'groupvit_demo_voc.jpg'),
        weights=checkpoint)
    return dict(dir=out, model=model, config=leaf, checkpoint=checkpoint)


@pytest.fixture(scope='session')
def voc_onnx_export(tmp_path_factory):
    """:func:`small_onnx_export` of the VOC config, once per session (tests
    that change its model restore it)."""
    return small_onnx_export(tmp_path_factory.mktemp('onnx_voc'))


#: The largest difference between the soft assignments of the exported
#: graph and of PyTorch, on any window: the runtimes' kernels round
#: differently. test_graph_moves_a_pixel_only_where_pytorch_ties and the
#: export's tests assert every window meets it.
ASSIGNMENT_ROUNDING = 1e-5
#: The same bound for scores (class probabilities) of pixels in the same
#: group.
SCORE_ROUNDING = 1e-4


def mmseg_batch(model, path):
    """mmseg's test pipeline (without annotations) and data preprocessor
    on one image."""
    steps = [
        t for t in model.cfg.test_dataloader.dataset.pipeline
        if 'LoadAnnotations' not in t['type']
    ]
    return model.data_preprocessor(
        pseudo_collate([Compose(steps)(dict(img_path=path))]), False)


def mmseg_result(model, path):
    """What tools/test.py computes for one image: ``(labels, scores)``,
    the label map it writes with --out and the full-size scores
    (``[C, H, W]``) whose argmax they are."""
    batch = mmseg_batch(model, path)
    with torch.no_grad():
        result = model.predict(batch['inputs'], batch['data_samples'])[0]
    return (result.pred_sem_seg.data[0].numpy(),
            result.seg_logits.data.numpy())


def tied_hard_choices(soft_assigns):
    """``(stage, patch)`` of every patch whose two best groups in a grouping
    stage (of the first window) are within :data:`ASSIGNMENT_ROUNDING`: its
    hard (argmax) assignment is a tie."""
    ties = []
    for stage, soft in enumerate(soft_assigns):
        top_two = soft[0].topk(2, dim=0).values
        ties += [(stage, int(p))
                 for p in torch.nonzero(top_two[0] -
                                        top_two[1] <= ASSIGNMENT_ROUNDING)]
    return ties


def _window_ties(head, inputs, bg_thresh=None):
    """``[B, H, W]``: True at the pixels of a window whose scores depend on
    a choice that PyTorch makes between values closer than the runtimes'
    rounding can tell apart. Such choices are: the pixel's group (two best
    group maps within twice :data:`ASSIGNMENT_ROUNDING`, the resize being a
    convex combination, plus the resize's own rounding), its group's
    background decision (best score within :data:`SCORE_ROUNDING` of the
    threshold), and, for the whole window, any hard assignment of a
    grouping stage or the top-k class gate (image-level logits within
    :data:`SCORE_ROUNDING`)."""
    from mmseg_groupvit.models.decode_heads.groupvit_head import group_maps
    images, feats, class_embeds = inputs
    maps = group_maps(feats['soft_assigns'], feats['grid'], images.shape[-2:])
    top = maps.topk(2, dim=1).values if maps.shape[1] > 1 else None
    tied = torch.zeros(maps.shape[:1] + maps.shape[2:], dtype=torch.bool)
    if top is not None:
        tied |= top[:, 0] - top[:, 1] <= 2 * ASSIGNMENT_ROUNDING + 1e-6
    scores = head.group_class_scores(feats['group_embeds'],
                                     feats['image_embeds'], class_embeds)
    pixel_group = maps.argmax(1)
    if head.with_bg:
        thresh = head.bg_thresh if bg_thresh is None else bg_thresh
        top_score = scores.flatten(1).max(dim=1).values
        row_max = scores.max(dim=-1).values
        near = ((row_max - top_score.clamp(max=thresh)[:, None]).abs()
                <= SCORE_ROUNDING) & (
                    row_max != top_score[:, None])
        tied |= near.gather(1, pixel_group.flatten(1)).view_as(tied)
    # The gate keeps the top-k classes of the image-level logits.
    logits = (
        torch.nn.functional.normalize(feats['image_embeds'], dim=-1)
        @ class_embeds.t() * head.temperature)
    for b in range(len(images)):
        gate = logits[b].sort(descending=True).values
        gate_tie = (
            len(gate) > head.topk
            and gate[head.topk - 1] - gate[head.topk] <= SCORE_ROUNDING)
        soft = [s[b:b + 1] for s in feats['soft_assigns']]
        if gate_tie or tied_hard_choices(soft):
            tied[b] = True
    return tied


def pytorch_ties(model, path, scores):
    """``[H, W]``: True at the pixels of an image whose label from
    tools/test.py depends on PyTorch's kernels: a pixel that takes scores
    from a tied window pixel (:func:`_window_ties`, carried through
    mmseg's own window averaging and resize), or whose two best final
    ``scores`` (``[C, H, W]``, :func:`mmseg_result`) are within
    :data:`SCORE_ROUNDING`."""
    swapped_encode_decode = load_script(
        'tools/analysis_tools/bench_common.py').swapped_encode_decode
    head = model.decode_head

    def tie_channels(model, windows, metas):
        inputs = [windows, model.extract_feat(windows), model.text_encoder()]
        tied = _window_ties(head, inputs, model.test_cfg.get('bg_thresh'))
        return tied[:, None].float().expand(-1, head.num_classes, -1, -1)

    batch = mmseg_batch(model, path)
    with torch.no_grad(), swapped_encode_decode(model, tie_channels):
        carried = model.predict(batch['inputs'], batch['data_samples'])[0]
    top_two = np.sort(scores, axis=0)[-2:]
    return (carried.seg_logits.data[0].numpy() > 0) | (
        top_two[1] - top_two[0] <= SCORE_ROUNDING)


def assert_labels_equal_but_ties(labels, model, path):
    """Assert ``labels`` are tools/test.py's for the image at ``path``
    except at pixels where PyTorch's own answer depends on its kernels
    (:func:`pytorch_ties`): a runtime that rounds differently may answer
    either way there, and nowhere else.

    Returns:
        tuple[int, int]: Pixels that differ, pixels tied.
    """
    expected, scores = mmseg_result(model, path)
    assert labels.shape == expected.shape, path
    assert len(np.unique(expected)) > 1, f'{path}: a trivial comparison'
    tied = pytorch_ties(model, path, scores)
    wrong = (labels != expected) & ~tied
    assert not wrong.any(), (
        f'{path}: {int(wrong.sum())} pixels differ from tools/test.py where '
        f'PyTorch does not tie, the first at {np.argwhere(wrong)[0]}')
    return int((labels != expected).sum()), int(tied.sum())
