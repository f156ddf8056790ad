# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Checks of a checkpoint's tensors and keys, on hand-made state dicts (no
model, no file)."""
import pytest
import torch

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights.check import (check_values, compare_state_dicts,
                                          describe_mismatch)


def test_plain_finite_tensors_pass():
    check_values({'w': torch.ones(2), 'n': torch.tensor(3)}, 'ckpt.pth')


def test_entries_that_are_not_tensors_are_named():
    with pytest.raises(CheckpointError) as error:
        check_values({'w': torch.ones(1), 'b': [1.0], 'a': 2}, 'ckpt.pth')
    message = str(error.value)
    assert message.startswith('ckpt.pth: 2 entr(y/ies)')
    assert "['a (int)', 'b (list)']" in message


def test_nonfinite_values_are_counted_and_listed_by_five():
    state = {f'k{i}': torch.tensor([float('nan')]) for i in range(7)}
    state['ok'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as error:
        check_values(state, 'ckpt.pth')
    assert ("7 tensor(s) hold NaN or Inf: ['k0', 'k1', 'k2', 'k3', 'k4'] "
            '...') in str(error.value)


def test_float64_that_overflows_float32_is_refused():
    # 1e300 is finite in float64 and Inf once held by a float32 model.
    state = {'w': torch.tensor([1e300], dtype=torch.float64)}
    with pytest.raises(CheckpointError, match=r"hold NaN or Inf: \['w'\]"):
        check_values(state, 'ckpt.pth')
    with pytest.raises(CheckpointError, match='NaN or Inf'):
        check_values(state, 'ckpt.pth', own={'w': torch.zeros(1)})
    # ... but not for a model that keeps float64.
    check_values(
        state, 'ckpt.pth', own={'w': torch.zeros(1, dtype=torch.float64)})


@pytest.mark.parametrize('theirs, ours', [
    (torch.int64, torch.float32),
    (torch.bool, torch.int64),
    (torch.float16, torch.bool),
])
def test_dtype_of_another_kind_is_refused(theirs, ours):
    with pytest.raises(CheckpointError) as error:
        check_values({'w': torch.zeros(2, dtype=theirs)},
                     'ckpt.pth',
                     own={'w': torch.zeros(2, dtype=ours)})
    assert (f'1 tensor(s) have a dtype of another kind than the model\'s: '
            f"['w ({theirs}, the model has {ours})']") in str(error.value)


def test_same_kind_other_precision_passes():
    check_values({'w': torch.zeros(2, dtype=torch.float16)},
                 'ckpt.pth',
                 own={'w': torch.zeros(2)})


def test_negative_batchnorm_variance_is_refused():
    state = {
        'bn.running_var': torch.tensor([1.0, -0.5]),
        'bn.weight': torch.tensor([-1.0, 1.0]),  # negative is fine here
    }
    with pytest.raises(
            CheckpointError,
            match=r"1 BatchNorm variance\(s\) hold negative "
            r"values: \['bn.running_var'\]"):
        check_values(state, 'ckpt.pth')


def test_compare_and_describe_key_differences():
    own = {'a': torch.zeros(2), 'b': torch.zeros(3), 'c': torch.zeros(1)}
    state = {'a': torch.zeros(4), 'c': torch.zeros(1), 'd': torch.zeros(1)}
    missing, unexpected, reshaped = compare_state_dicts(own, state)
    assert (missing, unexpected, reshaped) == (['b'], ['d'], ['a'])
    assert describe_mismatch(own, state, missing, unexpected, reshaped,
                             'model') == [
                                 "1 key(s) missing from the checkpoint: ['b']",
                                 "1 key(s) unexpected in the checkpoint: "
                                 "['d']",
                                 'shape mismatches: a (4,) vs model (2,)',
                             ]


def test_a_training_only_tensor_is_as_the_model_has_it():
    """The multi-label temperature (NVlabs' checkpoints keep it) is ignored
    by a model without it and may be missing from a checkpoint of a model
    with it."""
    from mmseg_groupvit.weights import check_state_dict
    own = {'image_encoder.weight': torch.zeros(2)}
    check_state_dict(own, dict(own, multi_label_logit_scale=torch.zeros(())))
    check_state_dict(dict(own, multi_label_logit_scale=torch.zeros(())), own)
    with pytest.raises(CheckpointError, match=r'1 key\(s\) unexpected'):
        check_state_dict(own, dict(own, other=torch.zeros(())))
