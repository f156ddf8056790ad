# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The architecture a checkpoint records, merged into a model config (on
hand-made dicts), and a backbone's ``Pretrained`` init through the
loader."""
import pytest
import torch

from groupvit_common.errors import CheckpointError
from mmseg_groupvit.weights.checkpoint_loader import (_groupvit_models,
                                                      checkpoint_arch,
                                                      merge_arch)
from tests.conftest import HF_SMALL, load_script, randomise_hf


def segmentor_cfg(image=None, text=None):
    return dict(
        type='GroupViTEncoderDecoder',
        image_encoder=dict(type='GroupViT', **(image or {})),
        text_encoder=dict(type='GroupViTTextEncoder', **(text or {})))


ARCH = dict(
    image_encoder=dict(hidden_size=64, num_attention_heads=4),
    text_encoder=dict(hidden_size=32, num_hidden_layers=2))


def test_missing_fields_are_filled_and_listed():
    cfg = segmentor_cfg(image=dict(hidden_size=64))
    applied = merge_arch(cfg, ARCH)
    assert cfg['image_encoder'] == dict(
        type='GroupViT', hidden_size=64, num_attention_heads=4)
    assert cfg['text_encoder'] == dict(
        type='GroupViTTextEncoder', hidden_size=32, num_hidden_layers=2)
    # Only what was missing is reported as applied.
    assert applied == [
        'image_encoder.num_attention_heads', 'text_encoder.hidden_size',
        'text_encoder.num_hidden_layers'
    ]


def test_contradictions_name_each_field_and_both_values():
    cfg = segmentor_cfg(
        image=dict(hidden_size=384), text=dict(num_hidden_layers=12))
    with pytest.raises(CheckpointError) as error:
        merge_arch(cfg, ARCH, source='ckpt.pth')
    message = str(error.value)
    assert 'contradicts the architecture recorded in ckpt.pth' in message
    assert 'image_encoder.hidden_size: config says 384, checkpoint says 64' \
        in message
    assert 'text_encoder.num_hidden_layers: config says 12, checkpoint ' \
           'says 2' in message
    assert 'Remove these fields from the config' in message
    # Nothing is changed when the merge is refused.
    assert cfg['image_encoder'] == dict(type='GroupViT', hidden_size=384)


def test_config_decides_a_field_the_checkpoint_does_not_record():
    arch = {part: dict(values) for part, values in ARCH.items()}
    del arch['image_encoder']['num_attention_heads']
    cfg = segmentor_cfg(image=dict(num_attention_heads=8))
    assert merge_arch(cfg, arch) == [
        'image_encoder.hidden_size', 'text_encoder.hidden_size',
        'text_encoder.num_hidden_layers'
    ]
    assert cfg['image_encoder']['num_attention_heads'] == 8
    # A recorded head count the config contradicts is refused, naming
    # both: no tensor shape would tell them apart.
    cfg = segmentor_cfg(image=dict(num_attention_heads=8))
    with pytest.raises(CheckpointError) as error:
        merge_arch(cfg, ARCH, source='ckpt.pth')
    assert 'image_encoder.num_attention_heads: config says 8, checkpoint ' \
        'says 4' in str(error.value)


def test_output_groups_compare_over_the_stages_that_group():
    """``num_output_groups`` counts only for the stages with group tokens
    (here 2 of 3); a config that sets it alone is compared over the
    checkpoint's grouping stages."""
    arch = dict(
        image_encoder=dict(
            num_group_tokens=[64, 8, 0], num_output_groups=[64, 8]),
        text_encoder={})
    cfg = segmentor_cfg(image=dict(num_output_groups=[64, 8]))
    assert merge_arch(cfg, arch) == ['image_encoder.num_group_tokens']
    cfg = segmentor_cfg(image=dict(num_output_groups=[32, 8]))
    with pytest.raises(CheckpointError) as error:
        merge_arch(cfg, arch, source='ckpt.pth')
    assert ('image_encoder.num_output_groups: config says [32, 8], '
            'checkpoint says [64, 8]') in str(error.value)


def test_segmentors_are_found_inside_a_test_time_wrapper():
    inner = segmentor_cfg()
    wrapper = dict(type='SegTTAModel', module=inner)
    assert _groupvit_models(wrapper) == [inner]
    assert _groupvit_models(inner) == [inner]
    assert _groupvit_models(dict(type='EncoderDecoder', backbone={})) == []
    assert _groupvit_models(None) == []


def test_checkpoint_arch_is_the_recorded_one_less_what_was_assumed():
    # Older converters recorded an assumed head count and listed it.
    checkpoint = dict(
        meta=dict(
            groupvit_arch=ARCH,
            groupvit_arch_assumed=['image_encoder.num_attention_heads']),
        state_dict={})
    assert checkpoint_arch(checkpoint) == dict(
        image_encoder=dict(hidden_size=64), text_encoder=ARCH['text_encoder'])


def test_checkpoint_arch_of_another_model_is_none():
    other = dict(state_dict={'backbone.conv.weight': torch.zeros(1)})
    assert checkpoint_arch(other) is None
    assert checkpoint_arch({}) is None


@pytest.mark.slow
def test_pretrained_init_takes_a_folder_and_names_a_training_checkpoint(
        hf_small, tmp_path):
    """tools/train.py with a backbone's ``init_cfg.checkpoint``: a
    transformers folder (listed among the accepted forms) trains; a
    fine-tuned model's training checkpoint (weights under ``backbone.``) is
    one error line, not mmengine's assertion."""
    from tests.test_finetune import _train_config
    torch.set_num_threads(1)
    train = load_script('tools/train.py')
    config = _train_config(tmp_path, hf_small, iters=1)
    runner = train.main([config, '--work-dir', str(tmp_path / 'a')])
    # One step of lr 1e-3 from the folder's (random, std 0.2) positions.
    trained = runner.model.backbone.state_dict()['pos_embed']
    expected = hf_tensor(hf_small, 'pos_embed')
    assert (trained - expected).abs().max() < 0.01 < expected.abs().max()
    training_checkpoint = str(tmp_path / 'a' / 'iter_1.pth')
    config = _train_config(tmp_path, training_checkpoint, iters=1)
    with pytest.raises(SystemExit) as error:
        train.main([config, '--work-dir', str(tmp_path / 'b')])
    message = str(error.value.code)
    assert message.startswith(
        f'error: {training_checkpoint}: image_encoder. is not in')
    assert 'holds no GroupViT image encoder' in message


@pytest.fixture(scope='module')
def hf_small(tmp_path_factory):
    """A transformers GroupViT of the fine-tuning tests' architecture."""
    transformers = pytest.importorskip('transformers')
    folder = tmp_path_factory.mktemp('hf_small') / 'hf'
    torch.manual_seed(0)
    model = transformers.GroupViTModel(transformers.GroupViTConfig(**HF_SMALL))
    randomise_hf(model)
    model.save_pretrained(str(folder))
    return str(folder)


def hf_tensor(folder, key):
    """One image-encoder tensor of a transformers folder, in our keys."""
    from mmseg_groupvit.weights import load_source_checkpoint
    from mmseg_groupvit.weights.convert_checkpoint import convert_source
    state, _ = convert_source(*load_source_checkpoint(folder))
    return state[f'image_encoder.{key}']


def test_only_the_main_process_logs_the_architecture(tmp_path, monkeypatch):
    """Under dist_test.sh every process reads the checkpoint: the fields
    that differ from the config's defaults are logged once, wrapped."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmseg_groupvit.weights import checkpoint_loader
    from tests.conftest import REPO, SMALL_ARCH, build_small_segmentor
    init_default_scope('mmseg')
    path = tmp_path / 'small.pth'
    torch.save(
        dict(
            state_dict=build_small_segmentor().state_dict(),
            meta=dict(groupvit_arch=SMALL_ARCH)), path)
    logged = []
    monkeypatch.setattr(checkpoint_loader, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    for rank in ('1', '0'):
        monkeypatch.setenv('RANK', rank)
        cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
        checkpoint_loader.resolve_load_from(cfg, str(path))
        assert cfg.model.image_encoder.hidden_size == 64
    message, = logged
    header, *lines = message.splitlines()
    assert header == (f'Architecture from the checkpoint {path} (where it '
                      f'differs from the config\'s defaults):')
    assert len(lines) > 1 and all(len(line) <= 79 for line in lines)
    fields = ' '.join(lines)
    assert 'image_encoder.hidden_size=64' in fields
    assert 'patch_size' not in fields  # 16, the default


def test_unrecorded_heads_that_cannot_divide_the_width_are_refused(fixture_a):
    """The original's .pth without its config records no head count; the
    default 6 does not divide fixture A's width 128: one error naming the
    key to set, before any model is built."""
    import os.path as osp

    from mmengine.config import Config

    from mmseg_groupvit.weights import resolve_load_from
    from tests.conftest import REPO
    path = osp.join(fixture_a, 'nvlabs_ckpt.pth')
    cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    with pytest.raises(CheckpointError) as error:
        resolve_load_from(cfg, path)
    assert 'does not record image_encoder.num_attention_heads, and the ' \
        'default 6 does not divide its width 128' in str(error.value)
    assert 'model.image_encoder.num_attention_heads=N' in str(error.value)
    cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    cfg.model.image_encoder.num_attention_heads = 6  # set, and still wrong
    with pytest.raises(
            CheckpointError,
            match='and the config\'s 6 does '
            'not divide its width 128'):
        resolve_load_from(cfg, path)
    cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    cfg.model.image_encoder.num_attention_heads = 4  # the fixture's
    resolve_load_from(cfg, path)
    assert cfg.model.image_encoder.hidden_size == 128


def test_a_transformers_file_without_its_config_records_no_head_count(
        hf_folder, tmp_path, monkeypatch):
    """transformers' weights alone tell neither head count (this model has
    2 text heads, not width // 64 as NVlabs' text encoder): each is the
    config's, and when the config states none, its default with a
    warning naming the key."""
    import shutil

    from mmengine.config import Config

    from mmseg_groupvit.weights import checkpoint_loader
    from tests.conftest import REPO
    path = tmp_path / 'model.safetensors'
    shutil.copy(hf_folder / 'model.safetensors', path)
    logged = []
    monkeypatch.setattr(checkpoint_loader, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    cfg.model.image_encoder.num_attention_heads = 2
    checkpoint_loader.resolve_load_from(cfg, str(path))
    assert 'num_attention_heads' not in cfg.model.text_encoder
    warned = [m for m in logged if 'does not record' in m]
    assert len(warned) == 1 and 'text_encoder.num_attention_heads' in \
        warned[0], logged
    cfg = Config.fromfile(f'{REPO}/configs/groupvit_voc.py')
    cfg.model.image_encoder.num_attention_heads = 2
    cfg.model.text_encoder.num_attention_heads = 3  # 32 % 3
    with pytest.raises(
            CheckpointError,
            match='the config\'s 3 does not '
            'divide its width 32'):
        checkpoint_loader.resolve_load_from(cfg, str(path))


def test_an_nvlabs_checkpoint_saved_from_its_ddp_wrapper_loads(
        fixture_a, tmp_path):
    """Keys saved through DistributedDataParallel start with ``module.``;
    the model loader reads them as the converter does (it strips them)."""
    import os.path as osp

    from mmseg_groupvit.weights import read_file
    from mmseg_groupvit.weights.checkpoint_loader import load_checkpoint
    path = osp.join(fixture_a, 'nvlabs_ckpt.pth')
    model = read_file(path)['model']
    wrapped = tmp_path / 'ddp.pth'
    torch.save(
        dict(model={
            f'module.{k}': v
            for k, v in model.items()
        }), wrapped)
    plain = tmp_path / 'plain.pth'
    torch.save(dict(model=model), plain)
    ours, theirs = (load_checkpoint(str(p)) for p in (wrapped, plain))
    assert ours['state_dict'].keys() == theirs['state_dict'].keys()
    assert all(
        torch.equal(ours['state_dict'][k], v)
        for k, v in theirs['state_dict'].items())
    assert ours['meta'] == theirs['meta']


def test_a_key_both_with_and_without_the_ddp_prefix_is_refused(
        fixture_a, tmp_path):
    """Stripping ``module.`` would make two tensors one: which is the model
    cannot be told, so neither the loader nor the converter picks one."""
    import os.path as osp

    from mmseg_groupvit.weights import read_file
    from mmseg_groupvit.weights.checkpoint_loader import load_checkpoint
    from tests.test_weights.conftest import convert_error
    model = read_file(osp.join(fixture_a, 'nvlabs_ckpt.pth'))['model']
    model['module.img_encoder.pos_embed'] = torch.zeros_like(
        model['img_encoder.pos_embed'])
    path = tmp_path / 'both.pth'
    torch.save(dict(model=model), path)
    message = (
        'the NVlabs checkpoint holds [\'img_encoder.pos_embed\'] both '
        'with and without DistributedDataParallel\'s "module." '
        'prefix: which of each pair is the model is unknown. Save the '
        'state dict of the unwrapped model (model.module.state_dict()).')
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(str(path))
    assert str(error.value) == message
    assert convert_error(str(path), str(tmp_path / 'out.pth'), '--arch-config',
                         osp.join(fixture_a, 'nvlabs_config.json')) == \
        f'error: {message}\n'
