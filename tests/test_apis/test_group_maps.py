# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``image_group_maps`` on a hand-computed case: a stand-in image encoder
returns fixed soft assignments, so the expected pixel groups can be worked
out on paper (chaining, bilinear resizing, arg-max)."""
import mmcv
import numpy as np
import pytest
import torch
from mmengine import Config
from mmseg.models import SegDataPreProcessor
from torch import nn

from mmseg_groupvit.apis import image_group_maps

H, W = 4, 6

# Stage 1: [1, S1=2, S0=4] over the 2x2 patch grid (row-major); each
# column is a patch's distribution over the stage-1 groups. Both patches of
# the top row are (0.55, 0.45), both of the bottom row (0, 1).
A1 = torch.tensor([[[0.55, 0.55, 0.0, 0.0], [0.45, 0.45, 1.0, 1.0]]])
# Stage 2: [1, S2=2, S1=2]; stage-1 group 0 goes (0.3, 0.7) to the stage-2
# groups, stage-1 group 1 goes (0.6, 0.4).
A2 = torch.tensor([[[0.3, 0.6], [0.7, 0.4]]])

# Resizing the 2 patch rows to 4 pixel rows (bilinear, align_corners=False)
# samples source rows -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1):
# pixel row 1 is 3/4 top + 1/4 bottom, pixel row 2 is 1/4 top + 3/4 bottom.
# The columns are alike, so every pixel row is constant.
#
# Stage 1: top (0.55, 0.45), bottom (0, 1).
#   row 0: (0.55, 0.45)                      -> group 0
#   row 1: (0.4125, 0.5875)                  -> group 1 (nearest: 0)
#   rows 2, 3                                -> group 1
STAGE1_ROWS = [0, 1, 1, 1]
# Stage 2: a patch's stage-1 distribution (a, b) becomes
# a * (0.3, 0.7) + b * (0.6, 0.4): top (0.435, 0.565), bottom (0.6, 0.4).
#   row 0: (0.435, 0.565)                    -> group 1
#   row 1: (0.47625, 0.52375)                -> group 1
#   row 2: 1/4 top + 3/4 bottom = (0.55875, 0.44125) -> group 0
#   row 3: (0.6, 0.4)                        -> group 0
STAGE2_ROWS = [1, 1, 0, 0]


class StubEncoder(nn.Module):
    """Returns the fixed assignments; records the input it was given."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, inputs):
        self.inputs.append(inputs)
        return dict(soft_assigns=[A1, A2], grid=(2, 2))


class StubSegmentor(nn.Module):

    def __init__(self, annotations='LoadAnnotations'):
        super().__init__()
        self.cfg = Config(
            dict(test_pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type=annotations),
                dict(type='PackSegInputs'),
            ]))
        self.data_preprocessor = SegDataPreProcessor()
        self.image_encoder = StubEncoder()


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def expected(rows):
    return np.repeat(np.asarray(rows, dtype=np.int64)[:, None], W, axis=1)


def check(stages, model):
    assert len(stages) == 2
    for stage, rows in zip(stages, (STAGE1_ROWS, STAGE2_ROWS)):
        assert stage.num_groups == 2
        assert stage.groups.shape == (H, W)
        assert stage.groups.dtype == np.int64
        np.testing.assert_array_equal(stage.groups, expected(rows))
    # The whole image went through the encoder once, as [1, 3, H, W].
    assert [tuple(x.shape)
            for x in model.image_encoder.inputs] == [(1, 3, H, W)]


def test_hand_computed_groups_from_an_array(image):
    model = StubSegmentor()
    check(image_group_maps(model, image), model)
    # The BGR array reaches the encoder unchanged (no resize, no mean/std).
    encoded = model.image_encoder.inputs[0][0]
    np.testing.assert_array_equal(encoded.permute(1, 2, 0).numpy(), image)


@pytest.mark.parametrize('annotations', [
    'LoadAnnotations', 'mmseg.LoadAnnotations', 'mmcv.LoadAnnotations',
    'CheckedLoadAnnotations'
])
def test_hand_computed_groups_from_a_file(image, tmp_path, annotations):
    path = str(tmp_path / 'image.png')
    mmcv.imwrite(image, path)
    # The step loading the label map is dropped whatever its scope, or
    # its checked version (the rule of the ONNX export's check window).
    model = StubSegmentor(annotations)
    check(image_group_maps(model, path), model)
