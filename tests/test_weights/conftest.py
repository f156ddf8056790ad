# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Small source checkpoints for the conversion tests, and the converter's
error line."""
import contextlib
import io
import shutil

import pytest
import torch

from tests.conftest import load_script


@pytest.fixture(scope='session')
def hf_folder(tmp_path_factory):
    """A small random transformers GroupViT saved with save_pretrained."""
    transformers = pytest.importorskip('transformers')
    root = tmp_path_factory.mktemp('hf_small')
    config = transformers.GroupViTConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            depths=[1, 1],
            num_hidden_layers=2,
            num_group_tokens=[4, 0],
            num_output_groups=[4, 4]),
        text_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2),
        projection_dim=16,
        projection_intermediate_dim=32)
    torch.manual_seed(0)
    transformers.GroupViTModel(config).save_pretrained(str(root / 'hf'))
    return root / 'hf'


@pytest.fixture
def hf_copy(hf_folder, tmp_path):
    """A copy of :func:`hf_folder` that a test may damage."""
    folder = tmp_path / 'hf'
    shutil.copytree(hf_folder, folder)
    return folder


def convert_error(*argv: str) -> str:
    """``tools/convert_weights.py ARGV`` (in this process), which must fail
    with one ``error:`` line on stderr: that line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(
            io.StringIO()):
        code = load_script('tools/convert_weights.py').main(list(argv))
    assert code == 1, err.getvalue()
    text = err.getvalue()
    assert text.startswith('error: ') and text.count('\n') == 1, text
    assert 'Traceback' not in text
    return text
