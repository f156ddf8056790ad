# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Record the trained GroupViT's architecture in its checkpoints."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ...weights.arch import HEADS, canonical, infer_arch


def model_arch(model) -> dict:
    """The architecture of a built GroupViT segmentor (or pretrainer), in
    the form ``tools/convert_weights.py`` records (``meta.groupvit_arch``):
    the shapes tell all but the head counts, read off the modules."""
    arch = infer_arch(model.state_dict())
    arch['image_encoder'][HEADS] = (
        model.image_encoder.stages[0].blocks[0].attn.num_heads)
    arch['text_encoder'][HEADS] = model.text_encoder.blocks[0].attn.num_heads
    return canonical(arch)


@HOOKS.register_module()
class GroupViTArchHook(Hook):
    """Write ``meta.groupvit_arch`` into every checkpoint saved, as the
    weights converter does, so that ``tools/test.py CONFIG CHECKPOINT``
    builds the trained architecture from any GroupViT config."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        checkpoint.setdefault('meta', {})['groupvit_arch'] = model_arch(model)
