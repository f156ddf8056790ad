# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The original's training augmentation, from mmpretrain 1.2.0.

GroupViT trains with timm's DeiT recipe: ``create_transform(224,
is_training=True, color_jitter=0.4, auto_augment='rand-m9-mstd0.5-inc1',
re_prob=0.25, re_mode='pixel', re_count=1, interpolation='bilinear')``.
timm needs torchvision, which does not install beside this PyTorch, so the
transforms come from mmpretrain (OpenMMLab's port of the same recipe, as
mmcv-style transforms): ``RandomResizedCrop``, ``RandAugment`` with its
``timm_increasing`` policies (and the operations it draws from),
``RandomErasing`` and ``ColorJitter``.

mmpretrain 1.2.0 installs here (no other torch, no mmcv), but its
``mmpretrain.datasets.transforms`` package imports torchvision for other
transforms. So the classes are read from the installed mmpretrain files
themselves: each module is compiled without its torchvision and registry
imports, and only classes that use neither are taken (nothing of it is
copied into this repository). Their registration decorators put them in
mmseg's ``TRANSFORMS``, where configs and ``RandAugment`` (which builds its
operations by name) find them. Importing this module registers them; the
pretraining configs do so through ``custom_imports``.
"""
import ast
import os.path as osp
from typing import Optional, Sequence

from mmseg.registry import TRANSFORMS

#: The mmpretrain classes taken from ``processing.py``; ``auto_augment.py``
#: (no torchvision) is taken whole.
PROCESSING = ('RandomResizedCrop', 'RandomErasing', 'ColorJitter')


def _compile_without_torchvision(path: str,
                                 keep: Optional[Sequence[str]]) -> None:
    """Execute an mmpretrain module with its torchvision and mmpretrain
    imports removed, registering into mmseg's ``TRANSFORMS`` (``keep``: the
    classes to define, None for all)."""
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
