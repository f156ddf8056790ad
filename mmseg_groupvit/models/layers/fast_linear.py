# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Linear layers with the bias, activation or residual add fused in one
oneDNN kernel for fp32 inference on CPU; elsewhere ``F.linear`` plus the
same activation and addition."""
import functools
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn

#: transformers' ``hidden_act`` names: the config of mmseg's registry and
#: the oneDNN post-op ``(attr, algorithm)`` that fuses it, if any.
ACTIVATIONS = {
    'gelu': (dict(type='GELU'), ('gelu', 'none')),
    'gelu_new': (dict(type='GELU', approximate='tanh'), ('gelu', 'tanh')),
    'quick_gelu': (dict(type='QuickGELU'), None),
    'relu': (dict(type='ReLU'), ('relu', '')),
    'silu': (dict(type='SiLU'), None),
}
ACTIVATIONS['gelu_pytorch_tanh'] = ACTIVATIONS['gelu_new']


def build_activation(name: str) -> nn.Module:
    """The activation of a transformers ``hidden_act`` name."""
    if name not in ACTIVATIONS:
        raise ValueError(f'Unknown activation "{name}"; expected one of '
                         f'{sorted(ACTIVATIONS)}.')
    return MODELS.build(ACTIVATIONS[name][0])


_plain = functools.lru_cache(maxsize=None)(build_activation)


def fusable(name: Optional[str]) -> bool:
    """Whether activation ``name`` has a oneDNN post-op."""
    return ACTIVATIONS.get(name, (None, None))[1] is not None


def _has_onednn_linear() -> bool:
    try:
        return (torch.backends.mkldnn.is_available()
                and hasattr(torch.ops.mkldnn, '_linear_pointwise'))
    except (AttributeError, RuntimeError):
        return False


_STATE = dict(enabled=_has_onednn_linear())


def set_enabled(enabled: bool) -> bool:
    """Turn the fused path on (where the op exists) or off; returns the
    previous setting."""
    previous = _STATE['enabled']
    _STATE['enabled'] = bool(enabled) and _has_onednn_linear()
    return previous


def available(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` takes the fused path for these tensors."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad
                                              or weight.requires_grad)
    return (_STATE['enabled'] and x.device.type == 'cpu' and x.dim() >= 2
            and x.dtype == weight.dtype == torch.float32 and not needs_grad
            and not (torch.jit.is_tracing() or torch.jit.is_scripting())
            and not torch.is_autocast_enabled('cpu'))


def linear(x: torch.Tensor,
           weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None,
           activation: Optional[str] = None,
           residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``act(x @ weight.T + bias)`` or ``x @ weight.T + bias + residual``
    ``[..., out]`` of ``x`` ``[..., in]`` and ``weight`` ``[out, in]``;
    ``activation`` is :func:`fusable`, not given with ``residual``."""
    if activation is not None and residual is not None:
        raise ValueError('linear() fuses an activation or a residual '
                         'addition, not both.')
    if activation is not None and not fusable(activation):
        raise ValueError(f'Activation {activation!r} cannot be fused; '
                         f'expected one of '
                         f'{sorted(filter(fusable, ACTIVATIONS))}.')
    if available(x, weight) and (bias is None or not bias.requires_grad
                                 or not torch.is_grad_enabled()):
        try:
            return _onednn_linear(x, weight, bias, activation, residual)
        except RuntimeError as e:  # an ISA or layout oneDNN refuses
            _STATE['enabled'] = False
            warnings.warn(f'oneDNN fused linear failed ({e}); using '
                          f'F.linear from now on.')
    return _unfused(F.linear(x, weight, bias), activation, residual)


def apply(module: nn.Linear,
          x: torch.Tensor,
          activation: Optional[str] = None,
          residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`linear` with ``module``'s weights; ``module(x)`` (and its
    hooks) off the fused path."""
    if available(x, module.weight):
        return linear(x, module.weight, module.bias, activation, residual)
    return _unfused(module(x), activation, residual)


def _unfused(out: torch.Tensor, activation: Optional[str],
             residual: Optional[torch.Tensor]) -> torch.Tensor:
    if activation is not None:
        out = _plain(activation)(out)
    return out if residual is None else out + residual


def _onednn_linear(x, weight, bias, activation, residual):
    op = torch.ops.mkldnn._linear_pointwise
    if residual is not None:
        if residual.shape[:-1] != x.shape[:-1]:
            residual = residual.expand(*x.shape[:-1], weight.shape[0])
        return op.binary(x, residual.contiguous(), weight, bias, 'add')
    attr, algorithm = ACTIVATIONS.get(activation, (None, ('none', '')))[1]
    return op(x, weight, bias, attr, [], algorithm)
