# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Record the trained GroupViT's architecture in its checkpoints."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ...weights.arch import canonical_arch, infer_arch


def model_arch(model) -> dict:
    """The architecture of a built GroupViT segmentor (or pretrainer), in
    the form ``tools/convert_weights.py`` records (``meta.groupvit_arch``):
    the shapes tell all but the head counts, read off the modules."""
    return canonical_arch(
        infer_arch(
            model.state_dict(),
            vision_heads=model.image_encoder.stages[0].blocks[0].attn.
            num_heads,
            text_heads=model.text_encoder.blocks[0].attn.num_heads))


@HOOKS.register_module()
class GroupViTArchHook(Hook):
    """Write ``meta.groupvit_arch`` into every checkpoint saved, as the
    weights converter does, so that ``tools/test.py CONFIG CHECKPOINT``
    builds the trained architecture from any GroupViT config."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        checkpoint.setdefault('meta', {})['groupvit_arch'] = model_arch(model)
