# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The one build step that pyproject.toml cannot declare.

All metadata is in ``pyproject.toml``. This file only places
``mmseg_groupvit_mmcv.pth`` at the root of site-packages (wheel and editable
installs), so that the mmcv-lite stand-in (``_mmseg_groupvit_mmcv_shim``) is
installed when the interpreter starts and a plain ``import mmseg.models``
or ``from mmseg.apis import init_model`` works before anything imports
``mmseg_groupvit``. The stand-in does nothing when a full mmcv is installed.
"""
import os.path as osp
from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH_FILE = 'mmseg_groupvit_mmcv.pth'


class BuildPyWithPth(build_py):
    """Also place the ``.pth`` start-up hook at the root of site-packages."""

    def run(self):
        super().run()
        self.copy_file(PTH_FILE, osp.join(self.build_lib, PTH_FILE))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [
            osp.join(self.build_lib, PTH_FILE)
        ]


class _StrategyWithPth:
    """Wrap an editable-install strategy to add the ``.pth`` hook too."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        with open(PTH_FILE) as f:
            wheel.writestr(PTH_FILE, f.read())


class EditableWheelWithPth(editable_wheel):
    """``pip install -e .`` places the ``.pth`` hook as well."""

    def _select_strategy(self, *args, **kwargs):
        return _StrategyWithPth(super()._select_strategy(*args, **kwargs))


setup(cmdclass={
    'build_py': BuildPyWithPth,
    'editable_wheel': EditableWheelWithPth
})
