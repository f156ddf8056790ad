# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Validate before the first training step."""
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ValidateFirstHook(Hook):
    """Run the validation loop once before training starts (at step 0, or
    at the step a resumed run starts from), so that a learning curve has
    its starting point."""

    def before_train(self, runner) -> None:
        if runner.val_loop is not None:
            runner.val_loop.run()
