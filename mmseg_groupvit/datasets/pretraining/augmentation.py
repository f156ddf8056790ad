# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The original's training augmentation (timm's DeiT recipe) from
mmpretrain 1.2.0: ``RandomResizedCrop``, ``RandAugment`` and its
operations, ``RandomErasing``, ``ColorJitter``. ``mmpretrain.datasets``
imports torchvision, which does not install beside this PyTorch, so the
installed mmpretrain modules are compiled without their torchvision and
mmpretrain imports, registering into mmseg's ``TRANSFORMS``. Importing this
module (the pretraining configs' ``custom_imports``) registers them."""
import ast
import os.path as osp
from typing import Optional, Sequence

from mmseg.registry import TRANSFORMS

#: The mmpretrain classes taken from ``processing.py``; ``auto_augment.py``
#: (no torchvision) is taken whole.
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
