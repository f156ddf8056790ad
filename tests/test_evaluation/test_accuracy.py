# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Top-k accuracy against hand-counted cases."""
import pytest
import torch

from mmseg_groupvit.evaluation import Accuracy


def run(scores, labels, topk):
    metric = Accuracy(topk=topk)
    metric.dataset_meta = dict(classes=[str(i) for i in range(6)])
    metric.process(None, [
        dict(pred_score=torch.tensor(s), gt_label=torch.tensor([g]))
        for s, g in zip(scores, labels)
    ])
    return metric.evaluate(len(scores))


def test_hand_counted_top1_top5():
    scores = [
        [.9, .1, 0, 0, 0, 0],  # label 0: rank 1
        [.1, .2, .3, .4, .5, .6],  # label 0: rank 6 (outside the top 5)
        [.1, .2, .3, .4, .5, .6],  # label 1: rank 5
        [.3, .1, .2, 0, 0, .05],  # label 2: rank 2
    ]
    result = run(scores, [0, 0, 1, 2], (1, 5))
    assert result == {'accuracy/top1': 25.0, 'accuracy/top5': 75.0}


def test_topk_above_the_class_count_is_an_error():
    with pytest.raises(ValueError, match='top-5 needs more than the 3'):
        Accuracy(topk=(1, 5)).compute_metrics(
            [dict(pred_score=torch.tensor([.2, .3, .5]), gt_label=0)])


@pytest.mark.parametrize('topk', [(0, ), True, (1, 2.0), 1.5, ()])
def test_topk_must_be_positive(topk):
    """A bool or a float is no k (torch's topk refused them after every
    image was scored)."""
    with pytest.raises(ValueError, match='positive'):
        Accuracy(topk=topk)
