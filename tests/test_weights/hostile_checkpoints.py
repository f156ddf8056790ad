# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Checkpoints crafted to run code when they are loaded.

Each payload, if it ran, would create the file ``MARKER``. The attacker is
given every advantage: the class with a malicious ``__setstate__`` lives in
a module that the victim can import (:data:`PAYLOAD_MODULE`, written beside
the files), and every payload but the numpy ones sits inside an otherwise
valid GroupViT checkpoint.
"""
import os
import os.path as osp
import sys

import torch

# A module an attacker could get onto the victim's path (an installed
# package, say): an innocent-looking class whose __setstate__ runs code.
PAYLOAD_MODULE = '''
class Options:
    def __setstate__(self, state):
        open(state['marker'], 'w').close()
'''


class Call:
    """Pickles as ``func(*args)``: the REDUCE opcode."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args):
        """Only so that pickle accepts a Call as another Call's function
        (it then pickles the inner call, whose result is called)."""
        raise NotImplementedError


def _getattr_chain(marker: str):
    """exec reached from an allowed class through attribute lookups:
    ``HistoryBuffer.__init__.__globals__['__builtins__']['exec']``."""
    from mmengine.logging import HistoryBuffer
    globals_ = Call(getattr, Call(getattr, HistoryBuffer, '__init__'),
                    '__globals__')
    builtins = Call(Call(getattr, globals_, 'get'), '__builtins__')
    exec_ = Call(Call(getattr, builtins, 'get'), 'exec')
    return Call(exec_, f'open({marker!r}, "w").close()')


def _payloads(marker: str, module_dir: str) -> dict:
    sys.path.insert(0, module_dir)
    try:
        import hostile_options
    finally:
        sys.path.remove(module_dir)
    # Pickled as NEWOBJ Options + BUILD {'marker': ...}: unpickling it
    # calls Options.__setstate__.
    options = hostile_options.Options.__new__(hostile_options.Options)
    options.marker = marker
    return {
        'reduce_os_system': Call(os.system, f'touch {marker}'),
        'reduce_exec': Call(exec, f'open({marker!r}, "w").close()'),
        'build_setstate': options,
        'getattr_chain': _getattr_chain(marker),
        'nested_containers': {
            'a': [{
                'b': (Call(exec, f'open({marker!r}, "w").close()'), )
            }]
        },
    }


def write_hostile_checkpoints(folder: str, state_dict: dict) -> tuple:
    """Write one checkpoint per route, each a valid checkpoint of
    ``state_dict`` with the payload in its ``meta``.

    Args:
        folder (str): Where to write ``<route>.pth``, ``hostile_options.py``
            and where ``MARKER`` would appear.
        state_dict (dict): Real weights of a small model.

    Returns:
        tuple: ``(paths, marker)``: ``{route: path}`` and the marker path.
    """
    marker = osp.join(folder, 'MARKER')
    with open(osp.join(folder, 'hostile_options.py'), 'w') as f:
        f.write(PAYLOAD_MODULE)
    paths = {}
    for route, payload in _payloads(marker, folder).items():
        path = osp.join(folder, f'{route}.pth')
        torch.save(dict(state_dict=state_dict, meta=dict(hook=payload)), path)
        paths[route] = path
    return paths, marker
