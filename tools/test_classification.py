# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluate zero-shot image classification (top-1 / top-5)::

    python tools/test_classification.py \\
        configs/classification/groupvit_imagenet.py \\
        [CHECKPOINT | --random-weights [--seed N]] [--work-dir DIR] \\
        [--cfg-options KEY=VALUE ...] [--verbose]

The command of ``tools/test.py``, which runs classification configs (a
``GroupViTClassifier`` model) too: ``WORK_DIR/results.json`` records the
config, checkpoint, protocol, metrics, images and seconds; with
``--random-weights`` the output says that the accuracy measures nothing.
"""
import os.path as osp
import runpy


def main(argv=None):
    test = runpy.run_path(
        osp.join(osp.dirname(osp.abspath(__file__)), 'test.py'))
    return test['main'](argv)


if __name__ == '__main__':
    main()
