# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A config key that no argument of this package's components takes is
refused with one line naming it; every shipped config passes."""
import glob
import os.path as osp
import re

import mmseg
import pytest
from mmengine.config import Config

from groupvit_common.errors import ConfigValueError
from mmseg_groupvit.models.config_arguments import check_model_arguments
from tests.conftest import REPO, VOC_SAMPLE, load_script

# Every shipped config read and checked: the full suite only.
pytestmark = pytest.mark.slow

# Every config but the dataset, schedule and runtime bases, which hold no
# model (named by path: reading 30 configs would slow every collection).
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if not re.search(r'_base_/(datasets|schedules)/|default_runtime', p))
VOC = osp.join(REPO, 'configs', 'groupvit_voc.py')
FCN = osp.join(REPO, 'configs', 'finetune',
               'fcn_groupvit-gcc-yfcc_4xb4-20k_voc12aug-512x512.py')


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_shipped_configs_pass(path):
    cfg = Config.fromfile(path)
    check_model_arguments(cfg.model)
    if 'tta_model' in cfg:
        check_model_arguments(cfg.tta_model, 'tta_model')


@pytest.mark.parametrize(
    'config,key,component',
    [
        (VOC, 'model.foo', 'GroupViTEncoderDecoder'),
        # Arguments a constructor passes on to its parent's count.
        (VOC, 'model.decode_head.bg_tresh', 'GroupViTHead'),
        (VOC, 'model.text_encoder.vocabularly', 'GroupViTTextEncoder'),
        (VOC, 'model.image_encoder.depth', 'GroupViT'),
        # Inside mmseg's own segmentor.
        (FCN, 'model.backbone.hidden_sise', 'GroupViT'),
    ])
def test_misspelled_key_is_named(config, key, component):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({key: 1})
    with pytest.raises(ConfigValueError) as info:
        check_model_arguments(cfg.model)
    message = str(info.value)
    assert message.startswith(f'{key} is not a setting of {component}: ')
    # The right spelling (for model.foo, a real argument) is among the
    # arguments it lists.
    takes = message.split(f'{component} takes ')[1]
    right = dict(
        foo='decode_head',
        bg_tresh='bg_thresh',
        vocabularly='vocabulary',
        depth='depths',
        hidden_sise='hidden_size')[key.rsplit('.', 1)[1]]
    assert right in takes.rstrip('.').split(', ')


@pytest.mark.parametrize(
    'config,key,component',
    [
        # FCNHead passes **kwargs on to mmseg's BaseDecodeHead.
        (FCN, 'model.decode_head.num_clases', 'FCNHead'),
        (VOC, 'model.data_preprocessor.sise', 'SegDataPreProcessor'),
    ])
def test_mmseg_components_are_checked_too(config, key, component):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({key: 1})
    with pytest.raises(
            ConfigValueError,
            match=f'^{key} is not a setting of {component}: '):
        check_model_arguments(cfg.model)


def test_what_the_builder_or_another_package_reads_passes():
    cfg = Config.fromfile(FCN)
    # mmengine's builder reads _scope_; mmcv's build_norm_layer reads
    # requires_grad, which torch's SyncBatchNorm does not take.
    cfg.merge_from_dict({
        'model._scope_':
        'mmseg',
        'model.backbone._scope_':
        'mmseg',
        'model.decode_head.norm_cfg':
        dict(type='SyncBN', requires_grad=True)
    })
    check_model_arguments(cfg.model)


MMSEG_CONFIGS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')


@pytest.mark.skipif(
    not osp.isdir(MMSEG_CONFIGS), reason="mmseg's configs not installed")
def test_mmseg_model_zoo_configs_pass():
    """No valid config is refused: the first config of every model family
    mmseg ships (all 666 of them passed once)."""
    families = sorted(glob.glob(osp.join(MMSEG_CONFIGS, '*', '')))
    checked = 0
    for family in families:
        paths = sorted(glob.glob(osp.join(family, '*.py')))
        if not paths or '_base_' in family:
            continue
        try:
            cfg = Config.fromfile(paths[0])
        except ImportError:
            continue  # a config of a package that is not installed
        if 'model' in cfg:
            check_model_arguments(cfg.model)
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize('tool', ['test', 'train', 'classification'])
def test_tools_print_one_error_line(tool, tmp_path):
    """Before the checkpoint is looked for (a remote one downloaded) or the
    model built."""
    config = dict(
        test=VOC,
        train=FCN,
        classification=osp.join(REPO, 'configs', 'classification',
                                'groupvit_voc-dominant-sample.py'))[tool]
    # The FCN config's segmentor is mmseg's; its backbone is ours.
    key = 'model.backbone.hidden_sise' if tool == 'train' else \
        'model.test_cgf.mode'
    script = load_script(f'tools/{"train" if tool == "train" else "test"}.py')
    with pytest.raises(SystemExit) as info:
        script.main(
            [config, '--work-dir',
             str(tmp_path), '--cfg-options', f'{key}=1'])
    message = str(info.value.code)
    assert message.startswith(
        f'error: {key.replace(".mode", "")} is not a setting of ')
    assert '\n' not in message


def test_apis_refuse_before_building():
    from mmseg_groupvit.apis import init_classifier, init_groupvit
    with pytest.raises(ConfigValueError, match='^model.decode_head.bg_tresh'):
        init_groupvit(
            VOC,
            random_weights=True,
            cfg_options={'model.decode_head.bg_tresh': 0.5})
    imagenet = osp.join(REPO, 'configs', 'classification',
                        'groupvit_imagenet.py')
    with pytest.raises(ConfigValueError, match='^model.topK is not a setting'):
        init_classifier(imagenet, cfg_options={'model.topK': 5})


def test_tta_names_the_key_as_written(tmp_path):
    # --tta moves the model under tta_model.module; the message keeps the
    # key the user wrote.
    config = tmp_path / 'tta.py'
    config.write_text(f'_base_ = [{VOC!r}]\n'
                      "tta_model = dict(type='SegTTAModel')\n"
                      'tta_pipeline = []\n')
    test = load_script('tools/test.py')
    data = f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
    args = test.parse_args(
        [str(config), '--tta', '--cfg-options', 'model.foo=1', data])
    with pytest.raises(
            ConfigValueError,
            match='^model.foo is not a setting of GroupViTEncoderDecoder: '):
        test.build_config(args)
    # Without the typo the model is wrapped as mmseg does.
    args = test.parse_args([str(config), '--tta', '--cfg-options', data])
    assert test.build_config(args).model.module.type == \
        'GroupViTEncoderDecoder'
