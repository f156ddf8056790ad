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
import subprocess
import sys

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
        slash_base=(dict(_base_=[VOC, 'evil.py/']), '_base_ '),
        ema_type=(dict(
            custom_hooks=[dict(type='EMAHook', ema_type=f'{module}.X')]),
                  f"custom_hooks.0.ema_type '{module}.X'"),
        output=(dict(
            visualizer=dict(vis_backends=[
                dict(
                    type='LocalVisBackend',
                    save_dir=str(tmp_path),
                    config_save_file='sitecustomize.py')
            ])), 'visualizer.vis_backends.0.save_dir'),
        key=(dict(note={"x': __import__('os').system('touch M'), 'y": 1}),
             'the key "note.x'),
        imports_var=(None, f"custom_imports imports '{module}'"),
    )[kind]
    if kind == 'imports_var':  # the module list comes from a base
        (tmp_path / 'ci.yaml').write_text(f'ci: {{imports: [{module}]}}\n')
        config.write_text(f'_base_: [ci.yaml, {VOC}]\n'
                          'custom_imports: {{_base_.ci}}\n')
    else:
        body.setdefault('_base_', [VOC])
        config.write_text(json.dumps(body))  # JSON is YAML too
    if kind == 'output':
        marker = tmp_path / 'sitecustomize.py'
    named = tmp_path / 'base.yaml' if kind == 'nested_base' else config
    return str(config), f'error: {named}: {refusal}', marker


@pytest.mark.parametrize('kind', [
    'type', 'json', 'module', 'base', 'env_base', 'nested_base',
    'package_base', 'slash_base', 'imports', 'imports_var', 'scope',
    'step_scope', 'pickle', 'ema_type', 'output', 'key'
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
    YAML (tuples included) and as JSON, reads back as the same settings in a
    new process (where only the dump's ``custom_imports`` register what it
    builds)."""
    shipped = glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    expected = {}
    for path in sorted(p for p in shipped if '_base_' not in p) + FAMILIES:
        try:
            cfg = Config.fromfile(path)
        except ImportError:  # needs a package not installed (mmpretrain's)
            continue
        for ext in ('yaml', 'json'):
            data = str(tmp_path / f'{len(expected)}.{ext}')
            cfg.dump(data)
            expected[data] = REFUSED.get(
                osp.basename(osp.dirname(path)),
                json.loads(json.dumps(cfg.to_dict(), default=repr)))
    script = ('import json, sys\n'
              'from mmseg_groupvit.utils.config_file import load_config\n'
              'out = {}\n'
              'for path in sys.argv[1:]:\n'
              '    try:\n'
              '        out[path] = load_config(path).to_dict()\n'
              '    except Exception as e:\n'
              '        out[path] = str(e)\n'
              'print(json.dumps(out, default=repr))\n')
    proc = subprocess.run([sys.executable, '-c', script, *expected],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          check=True)
    read = json.loads(proc.stdout.splitlines()[-1])
    for path, want in expected.items():
        if isinstance(want, str):  # refused: a name not registered here
            assert want in read[path], read[path]
            assert 'is not a registered component' in read[path]
        else:
            assert read[path] == want, (path, read[path])
    assert len(expected) >= 2 * 60  # most are read, not skipped


def test_after_a_data_config_no_dotted_path_is_built(tmp_path):
    """Whatever key passes a name to mmengine's ``Registry.get`` (mmcv's
    ``padding_mode``, a hook's own settings), once a YAML or JSON config is
    read the process builds registered names only; before, mmengine imports
    the dotted path and returns the function."""
    config = tmp_path / 'config.yaml'
    config.write_text(json.dumps(dict(_base_=[VOC])))
    script = ('import sys\n'
              'from mmseg.registry import MODELS\n'
              'from mmseg_groupvit.utils.config_file import load_config\n'
              'print(MODELS.get("os.system"))\n'
              'load_config(sys.argv[1])\n'
              'print(MODELS.get("os.system"))\n'
              'print(MODELS.get("GroupViT").__name__)\n')
    proc = subprocess.run([sys.executable, '-c', script,
                           str(config)],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          check=True)
    assert proc.stdout.split() == [
        '<built-in', 'function', 'system>', 'None', 'GroupViT'
    ], proc.stdout
