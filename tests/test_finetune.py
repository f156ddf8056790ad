# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Fine-tuning GroupViT with mmseg heads: every config in
``configs/finetune`` trains (one step, gradients where they belong), and a
short run of ``tools/train.py`` on the real VOC sample lowers the loss and
saves a checkpoint that reloads to the same predictions.

The architecture is shrunk to ``SMALL_ARCH`` and the crops to 64x64 so
that training fits in seconds on a CPU; the configs are otherwise used as
shipped.
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmseg.registry import MODELS

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.engine import tool_config
from mmseg_groupvit.utils.distributed import replace_sync_bn
from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE,
                            build_small_segmentor, load_script)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

FINETUNE_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'finetune', '*.py')))
RELEASED_WIDTH = 384
SMALL_WIDTH = SMALL_ARCH['image_encoder']['hidden_size']
CROP = (64, 64)


def shrink(cfg):
    """Swap the released width (384) for the small one in every
    ``in_channels`` / ``out_channels`` and make the heads narrow."""

    def small(width):
        return SMALL_WIDTH if width == RELEASED_WIDTH else width

    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key in ('in_channels', 'out_channels'):
                cfg[key] = [small(v) for v in value] if isinstance(
                    value, list) else small(value)
            elif key == 'channels':
                cfg[key] = 16
            else:
                shrink(value)
    elif isinstance(cfg, list):
        for value in cfg:
            shrink(value)


def small_config(path, checkpoint=None):
    """A shipped fine-tuning config with the small architecture, 64x64
    crops and (optionally) a converted checkpoint of that architecture."""
    cfg = Config.fromfile(path)
    model = cfg.model
    encoder = 'backbone' if 'backbone' in model else 'image_encoder'
    model[encoder].update(SMALL_ARCH['image_encoder'])
    if 'text_encoder' in model:
        model.text_encoder.update(SMALL_ARCH['text_encoder'])
    for key in ('neck', 'decode_head', 'auxiliary_head'):
        shrink(model.get(key))
    model.data_preprocessor.size = CROP
    if encoder == 'backbone':
        model.backbone.init_cfg.checkpoint = checkpoint
        if checkpoint is None:
            model.backbone.init_cfg = None
    else:
        model.init_cfg.checkpoint = checkpoint
        if checkpoint is None:
            model.init_cfg = None
    return cfg


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """A small-architecture checkpoint in the converter's layout
    (``image_encoder.*``, ``text_encoder.*``, ``decode_head.*``)."""
    init_default_scope('mmseg')
    model = build_small_segmentor(seed=3)
    path = str(tmp_path_factory.mktemp('ckpt') / 'groupvit_small.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path, model.state_dict()


def voc_batch(names=('2007_000033', '2007_000042')):
    """Two real VOC pairs resized to the crop, packed as mmseg does."""
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='Resize', scale=CROP, keep_ratio=False),
        dict(type='PackSegInputs')
    ])
    samples = []
    for name in names:
        samples.append(
            pipeline(
                dict(
                    img_path=osp.join(VOC_SAMPLE, 'JPEGImages', name + '.jpg'),
                    seg_map_path=osp.join(VOC_SAMPLE, 'SegmentationClass',
                                          name + '.png'),
                    reduce_zero_label=False,
                    seg_fields=[])))
    return pseudo_collate(samples)


def test_voc_batch_has_objects():
    """The pairs used below hold foreground classes (the contrastive loss
    needs some)."""
    batch = voc_batch()
    for sample in batch['data_samples']:
        labels = set(sample.gt_sem_seg.data.unique().tolist()) - {0, 255}
        assert labels


@pytest.mark.parametrize(
    'path', FINETUNE_CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_config_trains_one_step(path, converted):
    """Build, load the converted weights through the config's own
    ``init_cfg``, run one forward/backward pass on real VOC pairs; every
    trainable parameter gets a gradient, no frozen one does. Every other
    config also freezes the first stage (``frozen_stages=1``)."""
    frozen_stages = 1 if FINETUNE_CONFIGS.index(path) % 2 else -1
    torch.set_num_threads(1)  # tiny ops: see test_train_fcn_on_voc_sample
    checkpoint, state = converted
    cfg = small_config(path, checkpoint)
    encoder = 'backbone' if 'backbone' in cfg.model else 'image_encoder'
    cfg.model[encoder].frozen_stages = frozen_stages
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg.model))
    model.init_weights()
    backbone = getattr(model, encoder)
    # Pretrained weights reached every encoder key.
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state[f'image_encoder.{key}']), key

    model.train()
    data = model.data_preprocessor(voc_batch(), True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()

    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    for name, param in model.named_parameters():
        if name in frozen:
            assert param.grad is None, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, \
                name
    # What the config freezes.
    stem = {f'{encoder}.pos_embed'} | {
        n
        for n, _ in model.named_parameters()
        if n.startswith(f'{encoder}.patch_embed.')
    }
    stage0 = {
        n
        for n, _ in model.named_parameters()
        if n.startswith(f'{encoder}.stages.0.')
    }
    if frozen_stages == 1:
        assert stem | stage0 <= frozen
    else:
        assert not (stem | stage0) & frozen
    if encoder == 'image_encoder':
        # Zero-shot parts: the text encoder and the head are frozen, the
        # projector unless the contrastive loss trains it.
        assert model.text_encoder.frozen and not model.text_encoder.training
        names = {n for n, _ in model.named_parameters()}
        text_and_head = {
            n
            for n in names if n.startswith(('text_encoder.', 'decode_head.'))
        }
        assert text_and_head <= frozen
        projector = {
            n
            for n in names if n.startswith('image_encoder.projector.')
        }
        with_contrastive = model.contrastive_loss_weight > 0
        assert bool(projector & frozen) is not with_contrastive
        assert ('loss_contrastive' in log_vars) is with_contrastive
        # Zero-shot prediction still works on the trained model.
        model.eval()
        with torch.no_grad():
            pred = model.test_step(voc_batch(('2007_000129', )))[0]
        assert pred.seg_logits.data.shape == (21, *pred.ori_shape)
    else:
        assert not frozen - stem - stage0


def test_aux_segmentor_loads_a_zero_shot_checkpoint(converted, tmp_path):
    """A converted zero-shot checkpoint loads strictly into the zero-shot
    parts and leaves the auxiliary head as initialised; a checkpoint that
    lacks a key of those parts is refused, naming it."""
    checkpoint, state = converted
    path = [p for p in FINETUNE_CONFIGS if 'fcn-aux_' in p][0]
    cfg = small_config(path, checkpoint)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg.model))
    model.init_weights()
    own = model.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key
    aux = [k for k in own if k.startswith('auxiliary_head.')]
    assert aux and not set(aux) & set(state)

    bad = dict(state)
    bad.pop('text_encoder.final_norm.weight')
    torch.save(dict(state_dict=bad), str(tmp_path / 'bad.pth'))
    cfg = small_config(path, str(tmp_path / 'bad.pth'))
    model = MODELS.build(ConfigDict(cfg.model))
    with pytest.raises(CheckpointError, match='final_norm'):
        model.init_weights()


def test_aux_segmentor_loading_leaves_the_state_dict_unchanged():
    """Loading zero-shot weights alone reports nothing missing and adds no
    auxiliary-head keys to the caller's state dict."""
    path = [p for p in FINETUNE_CONFIGS if 'fcn-aux_' in p][0]
    model = MODELS.build(ConfigDict(small_config(path).model))
    state = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if not k.startswith('auxiliary_head.')
    }
    keys = list(state)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(state) == keys


def test_aux_segmentor_needs_dense_outputs():
    path = [p for p in FINETUNE_CONFIGS if 'fcn-aux_' in p][0]
    cfg = small_config(path)
    cfg.model.image_encoder.with_zero_shot = False
    with pytest.raises(ValueError, match='with_zero_shot=True'):
        MODELS.build(ConfigDict(cfg.model))


def test_contrastive_loss_by_hand():
    """The multi-label contrastive loss against a numpy computation."""
    path = [p for p in FINETUNE_CONFIGS if 'contrastive' in p][0]
    cfg = small_config(path)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg.model)).eval()
    batch = model.data_preprocessor(voc_batch(), False)
    embeds = torch.randn(2, 32)
    got = model._contrastive_loss(embeds, batch['data_samples'])
    classes = model.text_encoder().numpy()
    img = embeds.numpy() / np.linalg.norm(
        embeds.numpy(), axis=1, keepdims=True)
    logits = model.decode_head.temperature.item() * img @ classes.T
    present = np.zeros_like(logits)
    for i, sample in enumerate(batch['data_samples']):
        for label in np.unique(sample.gt_sem_seg.data.numpy()):
            if 1 <= label <= 20:
                present[i, label - 1] = 1

    def log_softmax(x, axis):
        x = x - x.max(axis=axis, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))

    per_image = -(present * log_softmax(logits, 1)).sum(1) / present.sum(1)
    cols = present.sum(0) > 0
    per_class = -(present * log_softmax(logits, 0)).sum(0)[cols] / \
        present.sum(0)[cols]
    expected = (per_image.mean() + per_class.mean()) / 2 * 0.1
    assert got['loss_contrastive'].item() == pytest.approx(expected, rel=1e-5)


def _train_config(tmp_path, checkpoint, iters):
    path = [p for p in FINETUNE_CONFIGS if osp.basename(p).startswith('fcn')]
    cfg = small_config(path[0], checkpoint)
    cfg.model.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(
            type='RandomResize',
            scale=(128, 96),
            ratio_range=(0.75, 1.25),
            keep_ratio=True),
        dict(type='RandomCrop', crop_size=CROP, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(128, 96), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]
    voc = dict(
        type='PascalVOCDataset',
        data_root=VOC_SAMPLE,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt')
    cfg.train_dataloader = dict(
        batch_size=4,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(voc, pipeline=train_pipeline))
    cfg.val_dataloader = dict(
        batch_size=1,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(voc, indices=4, pipeline=test_pipeline))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = [
        dict(type='ConstantLR', factor=1., by_epoch=False, begin=0, end=iters)
    ]
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 10
    cfg.randomness = dict(seed=0)
    cfg_path = str(tmp_path / 'fcn_small.py')
    cfg.dump(cfg_path)
    return cfg_path


def test_train_fcn_on_voc_sample(converted, tmp_path):
    """tools/train.py: GroupViT + FCNHead from a converted checkpoint, 40
    iterations on the 25 real VOC pairs (batch 4, 64x64 crops)."""
    checkpoint, _ = converted
    # The ops are tiny: one thread avoids thread hand-over costs that
    # dominate on a shared machine (about 3x faster here).
    torch.set_num_threads(1)
    iters = 40
    cfg_path = _train_config(tmp_path, checkpoint, iters)
    work_dir = str(tmp_path / 'work')
    runner = load_script('tools/train.py').main(
        [cfg_path, '--work-dir', work_dir])

    losses, _ = runner.message_hub.get_scalar('train/loss').data
    losses = np.asarray(losses)
    assert len(losses) == iters and np.all(np.isfinite(losses))
    first, last = losses[:10].mean(), losses[-10:].mean()
    print(f'\nFCN on the VOC sample: mean loss of iterations 1-10 '
          f'{first:.3f}, 31-40 {last:.3f}')
    assert last < 0.8 * first

    ckpt = osp.join(work_dir, f'iter_{iters}.pth')
    assert osp.isfile(ckpt)
    val = runner.message_hub.get_scalar('val/mIoU').current()

    # The trained model in memory vs a fresh one loaded from the file.
    cfg = Config.fromfile(cfg_path)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    trained = runner.model.eval()
    fresh = MODELS.build(ConfigDict(cfg.model))
    load_checkpoint(fresh, ckpt, map_location='cpu')
    fresh.eval()
    with torch.no_grad():
        for batch in loader:
            before, after = trained.test_step(batch), fresh.test_step(batch)
            for a, b in zip(before, after):
                assert torch.equal(a.seg_logits.data, b.seg_logits.data)
                assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)

    # tools/test.py on the saved checkpoint gives the final validation's
    # metrics: the safe loader reads mmengine's training state in it.
    metrics = load_script('tools/test.py').main(
        [cfg_path, ckpt, '--work-dir',
         str(tmp_path / 'test')])
    assert metrics['mIoU'] == pytest.approx(val)

    # --resume picks up the last checkpoint and trains on from there.
    cfg_more = Config.fromfile(cfg_path)
    cfg_more.train_cfg.max_iters = iters + 2
    cfg_more.train_cfg.val_interval = 1000
    cfg_more.param_scheduler[0].end = iters + 2
    cfg_more.dump(str(tmp_path / 'fcn_more.py'))
    resumed = load_script('tools/train.py').main(
        [str(tmp_path / 'fcn_more.py'), '--work-dir', work_dir, '--resume'])
    assert resumed.iter == iters + 2


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='checks the message shown without GPU')
def test_train_amp_without_gpu_is_refused():
    train = load_script('tools/train.py')
    path = [p for p in FINETUNE_CONFIGS if osp.basename(p).startswith('fcn')]
    with pytest.raises(SystemExit, match='--amp needs a GPU'):
        train.enable_amp(
            tool_config(train.parse_args([path[0], '--amp']), test=False))


def test_train_missing_inputs_are_named(converted, tmp_path):
    train = load_script('tools/train.py')
    path = [p for p in FINETUNE_CONFIGS if osp.basename(p).startswith('fcn')]
    missing = str(tmp_path / 'missing.pth')
    args = train.parse_args([
        path[0], '--cfg-options', f'model.backbone.init_cfg.checkpoint='
        f'{missing}'
    ])
    with pytest.raises(
            SystemExit,
            match=f'pretrained checkpoint not found: {missing} '
            r'\(model.backbone.init_cfg.checkpoint\)'):
        train.check_inputs(tool_config(args, test=False))
    args = train.parse_args([
        path[0], '--cfg-options',
        f'model.backbone.init_cfg.checkpoint={converted[0]}',
        f'train_dataloader.dataset.datasets.0.data_root={tmp_path}',
        f'train_dataloader.dataset.datasets.1.data_root={tmp_path}/voc'
    ])
    with pytest.raises(
            SystemExit,
            match=r'data root not found: .*/voc '
            r'\(train_dataloader.dataset.datasets.1.data_root\)'):
        train.check_inputs(tool_config(args, test=False))


def test_sync_bn_becomes_bn_for_cpu_processes():
    path = [p for p in FINETUNE_CONFIGS if 'upernet' in p][0]
    cfg = Config.fromfile(path)
    assert replace_sync_bn(cfg.model) == 2
    assert 'SyncBN' not in str(cfg.model)


def test_smoke_config_trains_on_the_shipped_samples(tmp_path, monkeypatch,
                                                    capsys):
    """configs/finetune/fcn_groupvit_voc-sample_smoke.py runs tools/train.py
    from the repository root on samples/ as shipped (small architecture,
    random weights): the sample's 25 pairs, its 4 iterations, a validation
    on 5 images and a checkpoint; the console keeps the logged iterations
    and drops mmengine's set-up log."""
    monkeypatch.chdir(REPO)
    torch.set_num_threads(1)
    path = osp.join(REPO, 'configs', 'finetune',
                    'fcn_groupvit_voc-sample_smoke.py')
    cfg = small_config(path)
    # The shipped crops (small_config's are smaller).
    cfg.model.data_preprocessor.size = Config.fromfile(
        path).model.data_preprocessor.size
    with open(osp.join(VOC_SAMPLE, 'ImageSets', 'Segmentation',
                       'val.txt')) as f:
        pairs = len(f.read().split())
    config = str(tmp_path / 'smoke.py')
    cfg.dump(config)
    work_dir = str(tmp_path / 'work')
    runner = load_script('tools/train.py').main(
        [config, '--work-dir', work_dir])
    assert len(runner.train_dataloader.dataset) == pairs == 25
    assert len(runner.val_dataloader.dataset) == 5
    losses, _ = runner.message_hub.get_scalar('train/loss').data
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    assert runner.message_hub.get_scalar('val/mIoU').current() >= 0
    out = capsys.readouterr().out
    assert 'Iter(train) [4/4]' in out and 'Iter(val) [5/5]' in out
    assert 'Config:' not in out and 'before_run:' not in out


@pytest.mark.parametrize('content, words',
                         [(b'', 'model must be a dict with a type, got None'),
                          (b'model = dict(\n', 'fix the Python syntax'),
                          (b'\xff\xd8\xff\xe0JFIF', 'not a text file')])
def test_train_tool_reads_a_bad_config_as_one_line(tmp_path, content, words):
    """tools/train.py reads its config as tools/test.py does: a file that is
    no config is one line, not mmengine's traceback."""
    config = tmp_path / 'bad.py'
    config.write_bytes(content)
    train = load_script('tools/train.py', 'groupvit_train_tool')
    with pytest.raises(SystemExit) as error:
        train.main([str(config), '--work-dir', str(tmp_path / 'work')])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    assert words in message, message


@pytest.mark.parametrize('loader', ['train_dataloader', 'val_dataloader'])
@pytest.mark.parametrize('option, words', [
    ('num_workers=0', '{}.persistent_workers=True keeps worker processes, '
     'but {}.num_workers is 0'),
    ('batch_size=0', '{}.batch_size must be a positive integer'),
])
def test_dataloader_settings_that_cannot_work_are_one_line(
        tmp_path, loader, option, words):
    """--cfg-options LOADER.num_workers=0 on a config with persistent
    workers, or LOADER.batch_size=0: one line naming the fix, not
    PyTorch's ValueError traceback when the loader is built."""
    train = load_script('tools/train.py', 'groupvit_train_tool')
    path = [p for p in FINETUNE_CONFIGS if osp.basename(p).startswith('fcn')]
    with pytest.raises(SystemExit) as error:
        train.main([
            path[0], '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', f'{loader}.{option}'
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and '\n' not in message, message
    assert words.format(loader, loader) in message, message


@pytest.mark.parametrize('path', [
    p for p in FINETUNE_CONFIGS
    if 'aux' in osp.basename(p) or osp.basename(p).startswith('upernet')
])
def test_aux_head_of_another_class_count_is_one_line(tmp_path, path):
    """The auxiliary FCN head learns the labels the decode head scores
    (VOC's 20 classes plus background, zero-shot or UPerNet's): 20 is
    refused when the config is read, with the count to set, before any
    data is looked for (UPerNet's was not compared)."""
    train = load_script('tools/train.py', 'groupvit_train_tool')
    with pytest.raises(SystemExit) as error:
        train.main([
            path, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            'model.auxiliary_head.num_classes=20'
        ])
    message = str(error.value.code)
    assert message.startswith('error: model.auxiliary_head.num_classes is 20 '
                              'but the decode head scores 21 classes')
    assert message.endswith('model.auxiliary_head.num_classes=21.')
    assert '\n' not in message and not (tmp_path / 'work').exists()
