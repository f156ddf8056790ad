# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A realistic small checkpoint for the API tests: a randomly initialised
transformers ``GroupViTModel`` saved with ``save_pretrained`` and converted
with the converter, which writes the config of its architecture."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

from mmseg_groupvit.weights.convert_checkpoint import convert_checkpoint
from tests.conftest import VOC_SAMPLE, randomise_hf

transformers = pytest.importorskip('transformers')

# 2007_000129 is 334 wide and 500 high: two 448 windows after the resize.
PHOTO = osp.join(VOC_SAMPLE, 'JPEGImages', '2007_000129.jpg')

# One grouping stage (8 groups): with random weights a second stage merges
# everything into one group, and the label maps compared below would be
# uniform.
HF_ARCH = dict(
    vision_config=dict(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        depths=[1, 1],
        num_hidden_layers=2,
        num_group_tokens=[8, 0],
        num_output_groups=[8, 8]),
    text_config=dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2),
    projection_dim=32,
    projection_intermediate_dim=64)


@pytest.fixture(scope='session')
def small(tmp_path_factory):
    """``config`` (.py written by the converter), ``checkpoint`` (.pth) and
    the transformers model ``hf`` they came from (eval mode)."""
    tmp = tmp_path_factory.mktemp('groupvit_small')
    torch.manual_seed(0)
    hf = transformers.GroupViTModel(transformers.GroupViTConfig(**HF_ARCH))
    randomise_hf(hf)
    hf.eval()
    hf.save_pretrained(str(tmp / 'hf'))
    info = convert_checkpoint(str(tmp / 'hf'), str(tmp / 'groupvit.pth'))
    assert info['config'] is not None
    return SimpleNamespace(
        config=info['config'], checkpoint=str(tmp / 'groupvit.pth'), hf=hf)
