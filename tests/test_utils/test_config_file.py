# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A YAML or JSON config is data: every way mmengine or mmseg would run
code from one is refused through ``tools/test.py`` in one ``error:`` line
(the marker file a payload writes never exists), and every shipped config
and mmseg model family, dumped as YAML or JSON, still reads back."""
import glob
import json
import os
import os.path as osp
import pickle

import mmseg
import pytest
from mmengine.config import Config

from groupvit_common.errors import ConfigCheckError
from mmseg_groupvit.utils.config_file import load_config
from tests.conftest import REPO, VOC_SAMPLE, load_script

VOC = osp.join(REPO, 'configs', 'groupvit_voc.py')
MMSEG_CONFIGS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')


class Payload:
    """Pickled, runs ``touch MARKER`` when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def attack(kind, tmp_path):
    """The config file of one attack, the start of its refusal and the
    marker file the payload would write."""
    marker = tmp_path / 'PWNED'
    touch = f'open({str(marker)!r}, "w").close()\n'
    module = f'evil_{kind}'  # a module of that name is importable
    (tmp_path / f'{module}.py').write_text(touch)
    (tmp_path / 'evil.py').write_text(touch)
    (tmp_path / 'evil.pkl').write_bytes(pickle.dumps(Payload(marker)))
    (tmp_path / 'base.yaml').write_text('_base_: [evil.py]\n')
    hook = dict(type='os.system', command=f'touch {marker}')
    escape = osp.relpath(tmp_path / 'evil.py',
                         osp.join(MMSEG_CONFIGS, '_base_'))
    pickled = dict(
        _delete_=True,
        type='DecathlonDataset',
        ann_file=str(tmp_path / 'evil.pkl'),
        data_root=str(tmp_path),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackSegInputs')])
    config = tmp_path / f'config.{"json" if kind == "json" else "yaml"}'
    body, refusal = dict(
        type=(dict(custom_hooks=[hook]), "custom_hooks.0.type 'os.system'"),
        json=(dict(custom_hooks=[hook]), "custom_hooks.0.type 'os.system'"),
        module=(dict(custom_hooks=[dict(hook, type=module)]),
                f"custom_hooks.0.type '{module}'"),
        base=(dict(_base_=[VOC, 'evil.py']), '_base_ '),
        env_base=(dict(_base_=[VOC, '{{$GROUPVIT_NO_SUCH_VAR:evil.py}}']),
                  '_base_ '),
        nested_base=(dict(_base_=[VOC, 'base.yaml']), '_base_ '),
        package_base=(dict(_base_=[VOC, f'mmseg::_base_/{escape}']),
                      '_base_ '),
        imports=(dict(custom_imports=dict(imports=[module])),
                 f"custom_imports imports '{module}'"),
        scope=(dict(default_scope=module), f"default_scope '{module}'"),
        step_scope=(dict(
            custom_hooks=[dict(type='EmptyCacheHook', _scope_=module)]),
                    f"custom_hooks.0._scope_ '{module}'"),
        pickle=(dict(test_dataloader=dict(dataset=pickled)),
                'test_dataloader.dataset.ann_file'),
    )[kind]
    body.setdefault('_base_', [VOC])
    config.write_text(json.dumps(body))  # JSON is YAML too
    named = tmp_path / 'base.yaml' if kind == 'nested_base' else config
    return str(config), f'error: {named}: {refusal}', marker


@pytest.mark.parametrize('kind', [
    'type', 'json', 'module', 'base', 'env_base', 'nested_base',
    'package_base', 'imports', 'scope', 'step_scope', 'pickle'
])
def test_a_data_config_runs_no_code(kind, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    config, refusal, marker = attack(kind, tmp_path)
    tool = load_script(
        osp.join(REPO, 'tools', 'test.py'), 'groupvit_test_tool')
    with pytest.raises(SystemExit) as error:
        tool.main([
            config, '--random-weights', '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'test_dataloader.dataset.data_root={VOC_SAMPLE}'
        ])
    message = str(error.value.code)
    assert message.startswith(refusal), message
    assert '\n' not in message
    assert not marker.exists()


def test_a_pickle_backend_is_refused(tmp_path):
    """mmseg's ``datafrombytes(..., backend='pickle')`` unpickles images."""
    config = tmp_path / 'config.yaml'
    config.write_text(
        json.dumps(
            dict(
                _base_=[VOC],
                test_pipeline=[
                    dict(
                        type='LoadBiomedicalImageFromFile',
                        decode_backend='pickle')
                ])))
    with pytest.raises(
            ConfigCheckError,
            match=r"test_pipeline\.0\."
            r"decode_backend 'pickle' names a pickle"):
        load_config(str(config))


# mmseg's first config of each model family. Three are refused as data, as
# they name components not registered here: mmdet's (not installed), a
# leftover mmseg 0.x ``runner`` section, albumentations' names in ``Albu``.
FAMILIES = sorted({
    sorted(glob.glob(osp.join(family, '*.py')))[0]
    for family in glob.glob(osp.join(MMSEG_CONFIGS, '*', ''))
    if glob.glob(osp.join(family, '*.py')) and '_base_' not in family
})
REFUSED = {
    'maskformer': "'mmdet.",
    'mobilenet_v3': "runner.type 'IterBasedRunner'",
    'vpd': "'RandomBrightnessContrast'"
}


@pytest.mark.slow
def test_shipped_and_mmseg_configs_read_back_as_data(tmp_path):
    """Every shipped config and mmseg model family, dumped by mmengine as
    YAML (tuples included) and as JSON, reads back as the same settings."""
    shipped = glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    checked = 0
    for path in sorted(p for p in shipped if '_base_' not in p) + FAMILIES:
        try:
            cfg = Config.fromfile(path)
        except ImportError:  # needs a package not installed (mmpretrain's)
            continue
        plain = json.loads(json.dumps(cfg.to_dict(), default=repr))
        refused = REFUSED.get(osp.basename(osp.dirname(path)))
        for ext in ('yaml', 'json'):
            data = str(tmp_path / f'dumped.{ext}')
            cfg.dump(data)
            if refused:
                with pytest.raises(ConfigCheckError) as error:
                    load_config(data)
                assert refused in str(error.value)
                assert 'is not a registered component' in str(error.value)
                continue
            back = load_config(data).to_dict()
            assert json.loads(json.dumps(back, default=repr)) == plain, path
            checked += 1
    assert checked >= 2 * 60  # most are read, not skipped
