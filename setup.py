# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Packaging for mmseg-groupvit.

mmcv is deliberately *not* an install requirement: ``mmcv`` (full build) and
``mmcv-lite`` install the same ``mmcv`` package, so requiring one would
overwrite the other. Pick one through an extra:

* ``pip install -e .[lite]``: mmcv-lite 2.1.0 (seconds); the compiled ops
  that GroupViT never uses are replaced by clear errors (see
  ``_mmseg_groupvit_mmcv_shim.py``).
* ``pip install -e .``: keeps an mmcv you already have, e.g. a full build.

``.[deploy]`` adds onnx and onnxruntime (CPU) for the ONNX export and its
PyTorch-free runner (docs/deployment.md); the tests need them too.
"""
import os.path as osp
from setuptools import find_packages, setup
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


def read_requirements(path):
    """Requirement lines of a file; ``-r other.txt`` includes another file
    of the same folder."""
    requirements = []
    with open(path) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line.startswith('-r '):
                requirements += read_requirements(
                    osp.join(osp.dirname(path), line[3:].strip()))
            elif line:
                requirements.append(line)
    return requirements


setup(
    name='mmseg-groupvit',
    version='0.1.0',
    description='GroupViT zero-shot semantic segmentation for MMSegmentation '
    '1.x',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    py_modules=['_mmseg_groupvit_mmcv_shim'],
    include_package_data=True,
    package_data={'mmseg_groupvit': ['utils/*.tsv']},
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={
        'lite': ['mmcv-lite==2.1.0'],
        'full': ['mmcv==2.1.0'],
        'tests': read_requirements('requirements/tests.txt'),
        'hub': read_requirements('requirements/hub.txt'),
        'deploy': read_requirements('requirements/deploy.txt'),
    },
    cmdclass={
        'build_py': BuildPyWithPth,
        'editable_wheel': EditableWheelWithPth
    },
    zip_safe=False,
)
