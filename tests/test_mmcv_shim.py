# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The mmcv-lite stand-in (``_mmseg_groupvit_mmcv_shim.py``) keeps what mmcv
and mmengine report about the build true, and its errors name the mmcv op
the user called. Run in a fresh interpreter: the stand-in is installed at
interpreter start."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = r'''
import json
import torch
import _mmseg_groupvit_mmcv_shim as shim
if shim.has_compiled_ops():
    print(json.dumps(dict(full=True)))
    raise SystemExit
import mmcv.utils
from mmengine.utils.dl_utils import mmcv_full_available
import mmseg.models  # imports mmcv.ops, which loads mmcv._ext
from mmcv.ops import DeformConv2d, nms
env = mmcv.utils.collect_env()
errors = []
for call in (lambda: DeformConv2d(4, 4, 3, padding=1)(
        torch.zeros(1, 4, 5, 5), torch.zeros(1, 18, 5, 5)),
             lambda: nms(torch.rand(3, 4), torch.rand(3), 0.5)):
    try:
        call()
    except RuntimeError as e:
        errors.append(str(e))
print(json.dumps(dict(
    full=False,
    compiler=env['MMCV Compiler'],
    cuda_compiler=env['MMCV CUDA Compiler'],
    mmcv_full_available=mmcv_full_available(),
    errors=errors)))
'''


def test_stand_in_reports_the_truth():
    proc = subprocess.run([sys.executable, '-c', SCRIPT],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report['full']:
        pytest.skip('a full mmcv build is installed: no stand-in')
    # What mmcv-lite alone reports (mmcv/utils/env.py's fallback).
    assert report['compiler'] == 'n/a'
    assert report['cuda_compiler'] == 'n/a'
    assert report['mmcv_full_available'] is False
    deform, nms_error = report['errors']
    assert deform.startswith('mmcv.ops.deform_conv.DeformConv2d.forward '
                             'needs the compiled mmcv op '
                             '"deform_conv_forward"')
    assert nms_error.startswith('mmcv.ops.nms.nms needs the compiled mmcv '
                                'op "nms"')
    assert 'pip uninstall -y mmcv-lite' in deform
