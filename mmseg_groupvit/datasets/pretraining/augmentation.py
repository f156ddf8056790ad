# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmpretrain's training augmentation (``RandomResizedCrop``,
``RandAugment``, ``RandomErasing``, ``ColorJitter``) registered into mmseg's
``TRANSFORMS`` on import, compiled without the torchvision imports (which
does not install beside this PyTorch)."""
import ast
import os.path as osp
from typing import Optional, Sequence

from mmseg.registry import TRANSFORMS

#: The classes taken from ``processing.py`` (``auto_augment.py``: all).
PROCESSING = ('RandomResizedCrop', 'RandomErasing', 'ColorJitter')


def _compile_without_torchvision(path: str,
                                 keep: Optional[Sequence[str]]) -> None:
    """Execute an mmpretrain module without its torchvision and mmpretrain
    imports (``keep``: the classes to define, None for all)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    body = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ast.unparse(node)
            if 'torchvision' in names or 'mmpretrain' in names:
                continue
        elif isinstance(node, ast.ClassDef):
            if keep is not None and node.name not in keep:
                continue
        elif keep is not None and not isinstance(node, ast.FunctionDef):
            continue
        body.append(node)
    tree.body = body
    namespace = dict(
        TRANSFORMS=TRANSFORMS, __name__=f'mmpretrain_{osp.basename(path)}')
    exec(compile(tree, path, 'exec'), namespace)


def register_mmpretrain_transforms() -> None:
    """Register mmpretrain's augmentation in mmseg's ``TRANSFORMS`` (once)."""
    if TRANSFORMS.get('RandAugment') is not None:
        return
    import mmpretrain
    folder = osp.join(
        osp.dirname(mmpretrain.__file__), 'datasets', 'transforms')
    _compile_without_torchvision(osp.join(folder, 'auto_augment.py'), None)
    _compile_without_torchvision(osp.join(folder, 'processing.py'), PROCESSING)


register_mmpretrain_transforms()
