# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/analysis_tools/plot_pretrain_curves.py reads mmengine's scalars
of every run in a work dir (a resumed run continues the curve)."""
import json
import os.path as osp

import pytest

from tests.conftest import REPO, load_script

pytest.importorskip('matplotlib')
tool = load_script(
    osp.join(REPO, 'tools', 'analysis_tools', 'plot_pretrain_curves.py'))


def test_curves_of_a_resumed_run(tmp_path):
    for run, records in (('20260101_000000', [
            dict(step=0, mIoU=1.0),
            dict(step=1, loss=3.0, loss_contrastive=2.0, lr=0.1)
    ]), ('20260101_010000', [dict(step=2, loss=2.5),
                             dict(step=1, mIoU=4.0)])):
        folder = tmp_path / run / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text('\n'.join(
            map(json.dumps, records)))
    out = tmp_path / 'curves.png'
    curves = tool.main([str(tmp_path), '--out', str(out)])
    assert curves == dict(
        mIoU={
            0: 1.0,
            1: 4.0
        },
        loss={
            1: 3.0,
            2: 2.5
        },
        loss_contrastive={1: 2.0})
    assert out.stat().st_size > 0


def test_no_scalars_is_one_error(tmp_path):
    with pytest.raises(SystemExit, match='error: no vis_data/scalars.json'):
        tool.main([str(tmp_path)])


@pytest.mark.parametrize('line', [
    '{"step": 1, "loss"', '[1, 2]', '{"x": 1}', '{"step": [1], "loss": 1}',
    '{"step": "2", "loss": 1}', '{"step": 2, "loss": "abc"}'
])
def test_a_damaged_line_is_one_error_line(tmp_path, line):
    folder = tmp_path / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text('{"step": 0, "mIoU": 1.0}\n' + line)
    with pytest.raises(SystemExit) as error:
        tool.main([str(tmp_path), '--out', str(tmp_path / 'curves.png')])
    assert str(error.value) == (
        f'error: {folder / "scalars.json"} line 2 is not a record of '
        f'mmengine\'s scalars (a JSON object with a step); the file was '
        f'damaged or cut: remove that line.')


def test_a_file_not_in_utf8_or_an_out_without_folder_is_one_error(tmp_path):
    """A scalars file of other bytes (a UnicodeDecodeError before), --out
    in a missing folder (a FileNotFoundError after reading)."""
    folder = tmp_path / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_bytes(b'\xff\xfe')
    with pytest.raises(SystemExit) as error:
        tool.main([str(tmp_path), '--out', str(tmp_path / 'curves.png')])
    assert str(error.value) == (
        f'error: the scalars file {folder / "scalars.json"} is not UTF-8 '
        f'text (byte 0); save it as UTF-8.')
    out = tmp_path / 'no' / 'curves.png'
    with pytest.raises(SystemExit) as error:
        tool.main([str(tmp_path), '--out', str(out)])
    assert str(error.value) == (
        f'error: --out {out}: no folder {out.parent}; give a path in an '
        f'existing folder.')
