# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Strict comparison of a checkpoint with the model it is loaded into."""
from typing import Dict, List, Tuple

import torch
from torch import nn

from .arch import arch_diff, infer_arch
from .io import CheckpointError


def compare_state_dicts(
        own: Dict[str, torch.Tensor],
        state: Dict[str,
                    torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """Keys missing from ``state``, keys it has in excess, and keys whose
    shapes differ, each sorted."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(
        k for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape))
    return missing, unexpected, reshaped


def describe_mismatch(own: Dict[str, torch.Tensor], state: Dict[str,
                                                                torch.Tensor],
                      missing: List[str], unexpected: List[str],
                      reshaped: List[str], owner: str) -> List[str]:
    """Lines naming the first few missing, unexpected and reshaped keys."""
    lines = []
    for name, keys in (('missing from the checkpoint', missing),
                       ('unexpected in the checkpoint', unexpected)):
        if keys:
            lines.append(f'{len(keys)} key(s) {name}: {keys[:6]}'
                         f'{" ..." * (len(keys) > 6)}')
    if reshaped:
        lines.append('shape mismatches: ' + ', '.join(
            f'{k} {tuple(state[k].shape)} vs {owner} {tuple(own[k].shape)}'
            for k in reshaped[:6]))
    return lines


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the
    model's keys and shapes.

    The message names the differing architecture fields (read off the tensor
    shapes of both), the missing and unexpected keys, and the likely cause.

    Args:
        model (nn.Module): A GroupViT segmentor.
        state (dict[str, Tensor]): The checkpoint's state dict.
    """
    own = model.state_dict()
    missing, unexpected, reshaped = compare_state_dicts(own, state)
    if not (missing or unexpected or reshaped):
        return
    lines = []
    if not any(
            k.startswith(('image_encoder.', 'text_encoder.')) for k in state):
        raise CheckpointError(
            f'The checkpoint has none of the model\'s keys (e.g. '
            f'{sorted(state)[:3]}): it is not a converted GroupViT '
            f'checkpoint. Convert the published weights with '
            f'`python tools/convert_weights.py SRC DST.pth` first.')
    try:
        diff = arch_diff(infer_arch(own), infer_arch(state))
    except (KeyError, IndexError):
        diff = []
    if diff:
        lines.append('architecture fields that differ (config vs '
                     'checkpoint):\n  ' + '\n  '.join(diff))
    lines += describe_mismatch(own, state, missing, unexpected, reshaped,
                               'model')
    raise CheckpointError(
        'The checkpoint does not match the model built from the config:\n' +
        '\n'.join(lines) + '\nUse the config written next to the converted '
        'checkpoint (tools/convert_weights.py writes DST.py for '
        'non-default architectures), or set these fields in your config.')
