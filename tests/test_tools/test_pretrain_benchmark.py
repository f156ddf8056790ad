# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/analysis_tools/pretrain_benchmark.py: both variants time the same
step on the same batch with the same threads, the first step left out.
(The dry run as a script: tests/test_tools/test_gpu_report.py.)"""
import pytest
import torch

from tests.conftest import load_script


class Queue:

    def put(self, item):
        self.item = item


def fake_variant(draws, seen):
    """A stand-in for ``_ours`` / ``_plain``: a one-weight model that draws
    ``draws`` numbers from the global generator when built (as models do,
    each its own count) and records every batch its loss sees."""

    def build(arch):
        torch.rand(draws)
        model = torch.nn.Linear(1, 1)

        def losses(images, tokens):
            seen.append((images.clone(), tokens.clone()))
            return model.weight.sum() * images.mean()

        return model, losses

    return build


@pytest.mark.parametrize('repeat', [1, 3])
def test_both_variants_time_the_same_batch_without_the_first_step(
        monkeypatch, repeat):
    tool = load_script('tools/analysis_tools/pretrain_benchmark.py')
    seen = dict(ours=[], plain=[])
    monkeypatch.setattr(tool, '_ours', fake_variant(1000, seen['ours']))
    monkeypatch.setattr(tool, '_plain', fake_variant(7, seen['plain']))
    results = {}
    threads = torch.get_num_threads()
    try:
        for who in seen:
            queue = Queue()
            tool._measure(who, None, 2, 'cpu', 'fp32', repeat, 1, queue)
            results[who] = queue.item
    finally:
        torch.set_num_threads(threads)
    for who, result in results.items():
        # One untimed first step, then ``repeat`` timed ones.
        assert len(seen[who]) == 1 + repeat
        assert len(result['runs']) == repeat
        assert result['seconds'] == min(result['runs'])
        assert result['first_step_seconds'] > 0
        assert result['threads'] == 1
    (images, tokens), *rest = seen['ours'] + seen['plain']
    assert images.shape == (2, 3, 224, 224)
    assert tokens.shape == (2, 1 + tool.PROMPTS, 77)
    assert all(
        torch.equal(i, images) and torch.equal(t, tokens) for i, t in rest)
    assert results['ours']['inputs'] == results['plain']['inputs']


def test_threads_must_be_a_count(capsys):
    tool = load_script('tools/analysis_tools/pretrain_benchmark.py')
    with pytest.raises(SystemExit):
        tool.main(['--threads', '0'])
    assert 'argument --threads: must be 1 or more, got 0' in \
        capsys.readouterr().err


def test_a_device_this_machine_lacks_is_one_error_line():
    """Refused before the variants' processes start (each failed with a
    traceback of its own)."""
    tool = load_script('tools/analysis_tools/pretrain_benchmark.py')
    with pytest.raises(SystemExit) as exit_:
        tool.main(['--device', 'cuda:99', '--arch', 'small'])
    message = str(exit_.value.code)
    assert message.startswith('error: --device cuda:99: this machine has')
    assert '\n' not in message
