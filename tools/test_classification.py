# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluate zero-shot image classification (top-1 / top-5) with mmengine's
runner::

    python tools/test_classification.py \\
        configs/classification/groupvit_imagenet.py \\
        [CHECKPOINT | --random-weights [--seed N]] [--work-dir DIR] \\
        [--cfg-options KEY=VALUE ...] [--verbose]

``tools/test.py`` runs the same command for classification configs (a
``GroupViTClassifier`` model), so
``python tools/test.py configs/classification/groupvit_imagenet.py CKPT``
works too. The command lives in the package
(:func:`mmseg_groupvit.engine.classification_main`).

Without CHECKPOINT the config's weights are used (its ``load_from``, the
published release, downloaded once); ``--random-weights`` runs a random
model (seeded with ``--seed``) instead, and the output says so: the
accuracy then measures nothing. ``WORK_DIR/results.json``
records the config, checkpoint, protocol, metrics, images and seconds. The
console shows what is run, a progress bar over the images, the metrics and
the files written; mmengine's full log goes to the log file in the work
dir, and to the console with ``--verbose``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import _mmseg_groupvit_mmcv_shim

_mmseg_groupvit_mmcv_shim.install()


def main(argv=None):
    from mmseg_groupvit.engine.classification_test import classification_main
    return classification_main(argv)


if __name__ == '__main__':
    main()
