# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The converter refuses sources and options it cannot turn into a model
that is known to be right: fields that cannot work, files that are not
architectures, incomplete checkpoints, another model's weights; it writes
a DST.py that still loads after being moved."""
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights import convert_checkpoint as converter
from mmseg_groupvit.weights.arch import canonical
from mmseg_groupvit.weights.convert_checkpoint import (convert_checkpoint,
                                                       weights_file)
from tests.conftest import SMALL_ARCH, build_small_segmentor
from tests.test_weights.conftest import convert_error


def converter_error(src, dst, *options) -> str:
    """``tools/convert_weights.py SRC DST [OPTIONS]``, which must fail with
    one ``error:`` line: that line."""
    return convert_error(str(src), str(dst), *map(str, options))


@pytest.fixture(scope='module')
def small_state():
    init_default_scope('mmseg')
    return build_small_segmentor().state_dict()


def edit_config(folder, part, **fields):
    path = folder / 'config.json'
    config = json.loads(path.read_text())
    config[part].update(fields)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize('part,field,value',
                         [('vision_config', 'num_attention_heads', 0),
                          ('vision_config', 'num_attention_heads', -2),
                          ('vision_config', 'num_attention_heads', 3),
                          ('text_config', 'num_attention_heads', 5),
                          ('text_config', 'num_attention_heads', 2.0),
                          ('vision_config', 'hidden_act', 'swish_plus'),
                          ('text_config', 'hidden_act', None),
                          ('vision_config', 'layer_norm_eps', 'abc'),
                          ('text_config', 'layer_norm_eps', 0),
                          ('vision_config', 'layer_norm_eps', None),
                          ('vision_config', 'dropout', -0.5),
                          ('text_config', 'attention_dropout', 1.0),
                          ('text_config', 'eos_token_id', -1)])
def test_field_that_cannot_work(hf_copy, tmp_path, part, field, value):
    edit_config(hf_copy, part, **{field: value})
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(hf_copy), str(tmp_path / 'out.pth'))
    ours = 'image_encoder' if part == 'vision_config' else 'text_encoder'
    assert f'{ours}.{field}={value!r}' in str(info.value)
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('content', [[1, 2], {'lr': 0.1}, {'model': {}}])
def test_arch_config_that_is_not_an_architecture(hf_folder, tmp_path, content):
    path = tmp_path / 'arch.json'
    path.write_text(json.dumps(content))
    with pytest.raises(CheckpointError, match=f'{path}.*'):
        convert_checkpoint(
            str(hf_folder), str(tmp_path / 'out.pth'), arch_config=str(path))


@pytest.mark.slow
def test_arch_config_nested_too_deeply_or_with_nan(hf_copy, tmp_path):
    path = tmp_path / 'arch.json'
    path.write_text('[' * 100000 + ']' * 100000)
    message = converter_error(hf_copy, tmp_path / 'out.pth', '--arch-config',
                              path)
    assert f'{path} nests deeper than' in message
    edit_config(hf_copy, 'vision_config', dropout=float('nan'))
    message = converter_error(hf_copy, tmp_path / 'out.pth')
    assert 'config.json is not valid JSON (NaN is not a JSON number)' in \
        message


def test_dst_that_cannot_be_written(hf_folder, tmp_path):
    for dst, words in (('/dev/full', 'is not a regular file'),
                       (tmp_path / 'file.pth' / 'out.pth', 'cannot write')):
        (tmp_path / 'file.pth').write_text('')
        with pytest.raises(CheckpointError, match=words):
            convert_checkpoint(str(hf_folder), str(dst))


def test_dst_ending_in_py_refused(hf_folder, tmp_path):
    dst = tmp_path / 'model.py'
    with pytest.raises(CheckpointError, match='ends in .py'):
        convert_checkpoint(str(hf_folder), str(dst))
    assert not dst.exists()


def test_a_config_the_converter_did_not_write_is_not_replaced(
        small_state, tmp_path):
    """A non-default architecture's config goes to DST.py: a file there
    that the converter did not write (the base config itself, a user's
    config, a link) is left as it was, and nothing is written."""
    src = tmp_path / 'src.pth'
    torch.save(
        dict(state_dict=small_state, meta=dict(groupvit_arch=SMALL_ARCH)), src)
    base = tmp_path / 'base.py'
    base.write_text('x = 1\n')
    (tmp_path / 'target.py').write_text('y = 2\n')
    (tmp_path / 'link.py').symlink_to(tmp_path / 'target.py')
    for name in ('base', 'link'):
        with pytest.raises(CheckpointError, match='was not written by the'):
            convert_checkpoint(
                str(src), str(tmp_path / f'{name}.pth'), base_config=str(base))
        assert not (tmp_path / f'{name}.pth').exists()
    assert base.read_text() == 'x = 1\n'
    assert (tmp_path / 'target.py').read_text() == 'y = 2\n'
    # Its own config is rewritten by a second conversion.
    for _ in range(2):
        result = convert_checkpoint(
            str(src), str(tmp_path / 'own.pth'), base_config=str(base))
    assert Config.fromfile(
        result['config']).model.image_encoder.depths == [1, 1, 1]


def test_vision_heads_recorded_nowhere(hf_copy, tmp_path):
    (hf_copy / 'config.json').unlink()
    with pytest.raises(CheckpointError, match='--vision-heads'):
        convert_checkpoint(str(hf_copy), str(tmp_path / 'out.pth'))
    for heads in (0, -2, 3):
        with pytest.raises(
                CheckpointError,
                match=f'image_encoder.num_attention_heads={heads} cannot'):
            convert_checkpoint(
                str(hf_copy), str(tmp_path / 'out.pth'), vision_heads=heads)
    # Nor does anything record the text encoder's (2, not width // 64 = 0):
    # only the model's config can say it, and that part of it is enough.
    with pytest.raises(
            CheckpointError,
            match='records no text_encoder attention head count .* pass '
            '--arch-config') as error:
        convert_checkpoint(
            str(hf_copy), str(tmp_path / 'out.pth'), vision_heads=2)
    assert '{"text_config": {"num_attention_heads": N}}' in str(error.value)
    heads = tmp_path / 'heads.json'
    heads.write_text('{"text_config": {"num_attention_heads": 2}}')
    result = convert_checkpoint(
        str(hf_copy),
        str(tmp_path / 'out.pth'),
        arch_config=str(heads),
        vision_heads=2)
    assert [
        result['arch'][p]['num_attention_heads']
        for p in ('image_encoder', 'text_encoder')
    ] == [2, 2]


def test_released_architecture_assumes_its_heads(small_state, tmp_path,
                                                 monkeypatch):
    # Stand the small architecture in for the released one (building the
    # released model would take a minute): its head counts (a state dict
    # records neither) are assumed, with a warning, only because the whole
    # architecture matches.
    released = {part: dict(v) for part, v in SMALL_ARCH.items()}
    monkeypatch.setattr(converter, 'released_arch',
                        lambda: canonical(released))
    src = tmp_path / 'src.pth'
    torch.save(dict(state_dict=small_state, meta={}), src)
    result = convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert result['arch']['image_encoder']['num_attention_heads'] == 4
    assert result['assumed'] == [
        "image_encoder.num_attention_heads=4 (the released models')",
        "text_encoder.num_attention_heads=2 (the released models')"
    ]
    released['image_encoder']['depths'] = [2, 1, 1]
    with pytest.raises(CheckpointError, match='--vision-heads'):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))


def test_moved_config_still_loads(small_state, tmp_path):
    src = tmp_path / 'src.pth'
    torch.save(
        dict(state_dict=small_state, meta=dict(groupvit_arch=SMALL_ARCH)), src)
    result = convert_checkpoint(str(src), str(tmp_path / 'out' / 'm.pth'))
    moved = tmp_path / 'elsewhere' / 'deeper'
    moved.mkdir(parents=True)
    shutil.move(result['config'], moved / 'm.py')
    shutil.move(tmp_path / 'out' / 'm.pth', moved / 'm.pth')
    cfg = Config.fromfile(str(moved / 'm.py'))
    assert cfg.model.image_encoder.depths == [1, 1, 1]
    model = MODELS.build(ConfigDict(cfg.model))
    load_checkpoint(model, str(moved / 'm.pth'))
    assert torch.equal(model.state_dict()['image_encoder.pos_embed'],
                       small_state['image_encoder.pos_embed'])


@pytest.fixture
def nvlabs_source(fixture_a, tmp_path):
    """The reference fixture's NVlabs checkpoint, loaded for editing."""
    ckpt = torch.load(
        osp.join(fixture_a, 'nvlabs_ckpt.pth'), weights_only=True)
    return ckpt, osp.join(fixture_a, 'nvlabs_config.json')


def test_nvlabs_missing_tensor(nvlabs_source, tmp_path):
    ckpt, arch = nvlabs_source
    del ckpt['model']['img_encoder.layers.1.blocks.0.norm2.bias']
    torch.save(ckpt, tmp_path / 'src.pth')
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(
            str(tmp_path / 'src.pth'),
            str(tmp_path / 'out.pth'),
            arch_config=arch)
    assert "missing from the checkpoint: " \
        "['image_encoder.stages.1.blocks.0.norm2.bias']" in str(info.value)


def test_nvlabs_non_tensor(nvlabs_source, tmp_path):
    ckpt, arch = nvlabs_source
    ckpt['model']['text_encoder.positional_embedding'] = [0.5] * 4
    torch.save(ckpt, tmp_path / 'src.pth')
    with pytest.raises(
            CheckpointError,
            match=r"not tensors: \['text_encoder.positional_"
            r"embedding \(list\)'\]"):
        convert_checkpoint(
            str(tmp_path / 'src.pth'),
            str(tmp_path / 'out.pth'),
            arch_config=arch)


def test_missing_tensor_and_non_tensor(small_state, tmp_path):
    # The same defects in this package's layout (runs without the fixture).
    state = dict(small_state)
    del state['text_encoder.blocks.0.norm1.weight']
    src = tmp_path / 'src.pth'
    meta = dict(groupvit_arch=SMALL_ARCH)
    torch.save(dict(state_dict=state, meta=meta), src)
    with pytest.raises(
            CheckpointError,
            match=r"missing from the checkpoint: \['text_encoder.blocks.0."
            r"norm1.weight'\]"):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    state = dict(small_state, **{'image_encoder.norm.bias': 'zeros'})
    torch.save(dict(state_dict=state, meta=meta), src)
    with pytest.raises(
            CheckpointError,
            match=r"not tensors: \['image_encoder.norm.bias "
            r"\(str\)'\]"):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))


def test_another_models_state_dict(tmp_path):
    resnet = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    src = tmp_path / 'resnet.pth'
    torch.save(dict(state_dict=resnet.state_dict(), meta={}), src)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert "the state_dict of another model (keys e.g. ['0.bias', " \
        "'0.weight', '1.bias'])" in str(info.value)
    assert 'state_dict of another model' in converter_error(
        src, tmp_path / 'out.pth')


def test_fine_tuned_mmseg_checkpoint(small_state, tmp_path):
    # What tools/train.py writes for a fine-tuned model (configs/finetune):
    # the backbone under "backbone.", a head, no text encoder. It needs no
    # conversion: the converter says so in one line, never a traceback.
    state = {
        'backbone.' + k[len('image_encoder.'):]: v
        for k, v in small_state.items() if k.startswith('image_encoder.')
    }
    state['decode_head.conv_seg.weight'] = torch.zeros(21, 8, 1, 1)
    state['decode_head.conv_seg.bias'] = torch.zeros(21)
    src = tmp_path / 'iter_20000.pth'
    torch.save(dict(state_dict=state, meta=dict(iter=20000)), src)
    message = converter_error(src, tmp_path / 'out.pth')
    assert "is a checkpoint of another mmseg model (its keys start with " \
        "['backbone', 'decode_head']" in message
    assert f'python tools/test.py CONFIG {src}' in message
    assert not (tmp_path / 'out.pth').exists()


def test_text_encoder_missing(small_state, tmp_path):
    state = {
        k: v
        for k, v in small_state.items() if not k.startswith('text_encoder.')
    }
    src = tmp_path / 'src.pth'
    torch.save(dict(state_dict=state, meta={}), src)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert 'does not hold a complete GroupViT: it has no text_encoder.* ' \
        "tensors (its keys start with ['decode_head', 'image_encoder'])" \
        in str(info.value)


def test_a_tensor_unexpected_or_reshaped_is_named(small_state, tmp_path):
    """Checked by the load's own check against the model of the
    checkpoint's architecture."""
    state = dict(small_state)
    state['image_encoder.extra'] = torch.zeros(1)
    state['decode_head.logit_scale'] = torch.zeros(2)
    src = tmp_path / 'src.pth'
    torch.save(
        dict(state_dict=state, meta=dict(groupvit_arch=SMALL_ARCH)), src)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert str(info.value).splitlines() == [
        f'{src} does not match the model built from its architecture:',
        "1 key(s) unexpected in the checkpoint: ['image_encoder.extra']",
        'shape mismatches: decode_head.logit_scale (2,) vs model ()',
        'The file is incomplete or damaged; download it again.'
    ]


def test_fine_tuned_with_an_auxiliary_head(small_state, tmp_path):
    # The aux fine-tuning configs keep the whole GroupViT and add a head.
    state = dict(
        small_state,
        **{'auxiliary_head.conv_seg.weight': torch.zeros(21, 8, 1, 1)})
    src = tmp_path / 'aux.pth'
    torch.save(dict(state_dict=state, meta={}), src)
    with pytest.raises(
            CheckpointError,
            match='another mmseg model .* it '
            'needs no conversion'):
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))


@pytest.mark.parametrize('key', [3, ('image_encoder', 'x'), b'bytes'])
def test_keys_that_are_not_names(small_state, tmp_path, key):
    state = dict(small_state)
    state[key] = torch.zeros(1)
    src = tmp_path / 'src.pth'
    torch.save(dict(state_dict=state, meta={}), src)
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint(str(src), str(tmp_path / 'out.pth'))
    assert '1 key(s) of the state dict are not names: ' in str(info.value)
    assert repr(key) in str(info.value)


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path):
    """The converted file goes to a temporary beside it, then is renamed:
    a link already at that name (another user's, in a shared folder) is
    refused, and its target is left as it was."""
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep')
    dst = tmp_path / 'out.pth'
    os.symlink(victim, f'{dst}.{os.getpid()}.partial')
    with pytest.raises(CheckpointError, match='cannot write .*File exists'):
        converter.save_checkpoint(dict(state_dict={}), str(dst))
    assert victim.read_text() == 'keep' and not dst.exists()
    converter.save_checkpoint(dict(state_dict={}), str(dst))
    assert torch.load(dst, weights_only=True) == dict(state_dict={})


def test_a_folder_without_one_weights_file(hf_folder, tmp_path):
    """An empty folder is not a checkpoint; a sharded save is one, in a
    form that is not read: each named as what it is, with the fix."""
    transformers = pytest.importorskip('transformers')
    (tmp_path / 'empty').mkdir()
    assert 'is a folder without model.safetensors or pytorch_model.bin' in \
        converter_error(tmp_path / 'empty', tmp_path / 'out.pth')
    transformers.GroupViTModel.from_pretrained(str(hf_folder)).save_pretrained(
        str(tmp_path / 'shards'), max_shard_size='1MB')
    assert (tmp_path / 'shards' / 'model.safetensors.index.json').exists()
    message = converter_error(tmp_path / 'shards', tmp_path / 'out.pth')
    assert 'holds transformers weights in shards (model.safetensors.index' \
        '.json)' in message and 'save_pretrained(OUT)' in message
    # One weights file beside the shards (hub repositories carry both) is
    # read.
    shutil.copy(hf_folder / 'model.safetensors',
                tmp_path / 'shards' / 'pytorch_model.bin')
    assert weights_file(str(tmp_path / 'shards')) == str(tmp_path / 'shards' /
                                                         'pytorch_model.bin')
