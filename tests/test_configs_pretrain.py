# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The pretraining configs carry the paper's recipe (NVlabs
configs/default.yml and group_vit_gcc_*_30e.yml), and their optimizer
decays exactly the tensors the original's ``set_weight_decay`` decays."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

from tests.conftest import REPO

PRETRAIN = osp.join(REPO, 'configs', 'pretrain')
LENGTHS = dict(
    gcc3m=2891445, gcc12m=11156203, yfcc14m=14615499, redcap12m=11866987)


@pytest.mark.parametrize('name,data', [
    ('groupvit_gcc-yfcc_30e.py', ('gcc3m', 'gcc12m', 'yfcc14m')),
    ('groupvit_gcc-redcaps_30e.py', ('gcc3m', 'gcc12m', 'redcap12m')),
])
def test_paper_schedule(name, data):
    cfg = Config.fromfile(osp.join(PRETRAIN, name))
    assert cfg.train_dataloader.batch_size * 16 == 4096
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=4096)
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper'
    assert optim.optimizer == dict(
        type='AdamW',
        lr=1.6e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05)
    assert optim.clip_grad == dict(max_norm=5.0)
    warmup, cosine = cfg.param_scheduler
    assert warmup.start_factor * 1.6e-3 == pytest.approx(4e-6)
    assert (warmup.begin, warmup.end, cosine.begin, cosine.end) == (0, 2, 2,
                                                                    30)
    assert cosine.eta_min_ratio * 1.6e-3 == pytest.approx(4e-5)
    assert cfg.train_cfg.max_epochs == 30 and cfg.train_cfg.val_interval == 1
    lengths = [d.length for d in cfg.train_dataloader.dataset.datasets]
    assert lengths == [LENGTHS[d] for d in data]
    assert cfg.train_dataloader.dataset.shuffle_buffer == 10000
    assert cfg.model.image_encoder.drop_path_rate == 0.1
    assert cfg.model.multi_label == 3 and cfg.sync_bn == 'torch'
    assert cfg.val_dataloader.dataset.type == 'PascalVOCDataset'


def original_decays(name, param):
    """NVlabs utils/optimizer.py set_weight_decay with empty skip lists."""
    return not (len(param.shape) == 1 or name.endswith('.bias'))


def test_weight_decay_groups_are_the_originals():
    cfg = Config.fromfile(osp.join(PRETRAIN, 'groupvit_samples_smoke.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    wrapper = build_optim_wrapper(model, optim_cfg)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            decay[id(param)] = group['weight_decay']
    names = dict(model.named_parameters())
    for name, param in names.items():
        expected = 0.05 if original_decays(name, param) else 0.0
        assert math.isclose(decay[id(param)], expected), name
    # Not vacuous: 0-D temperatures and embeddings are decayed.
    for name in ('decode_head.logit_scale', 'multi_label_logit_scale',
                 'image_encoder.pos_embed',
                 'image_encoder.stages.0.group_token'):
        assert decay[id(names[name])] == 0.05, name
