# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Bad command lines and input files of the tools end as one ``error:``
line naming the problem and the fix, never a traceback."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import REPO, load_script, run_main

TOOLS = osp.join(REPO, 'tools')
VOC = osp.join(REPO, 'configs', 'groupvit_voc.py')


def one_error_line(text, expected):
    text = str(text).strip()
    assert text.startswith('error: ') and '\n' not in text, text
    assert expected in text, text


@pytest.mark.parametrize('tool, shape, expected', [
    ('benchmark.py', ['512', '384'], '--shape 512 384: transformers\' '
     'GroupViTModel only runs square windows; give one side'),
    ('benchmark.py', ['1', '2', '3'], '--shape takes H or H W'),
    ('get_flops.py', ['448', '448', '448'], '--shape takes H or H W'),
    ('get_flops.py', ['0'], 'positive pixel counts'),
    ('get_flops.py', ['100000'], '--shape 100000 100000 is more than the '
     '134,217,728 pixels of an image; give a smaller window.'),
    ('get_flops.py', ['8'], '--shape 8 8 is smaller than one 16x16 patch of '
     'the image encoder; give at least --shape 16.'),
])
def test_a_window_shape_is_checked_when_parsed(tool, shape, expected):
    code, _ = run_main(
        osp.join(TOOLS, 'analysis_tools', tool), [VOC, '--shape', *shape])
    one_error_line(code, expected)


def test_an_error_line_shows_control_characters_escaped(tmp_path):
    """A name from the command line or a file may hold terminal commands
    (clear the screen, colour); the error line shows them, inert."""
    name = str(tmp_path / 'cfg\x1b[2J\x1b[31m\u200bred\r.py')
    code, out = run_main(osp.join(TOOLS, 'test.py'), [name])
    one_error_line(
        code,
        'config not found: ' + name.encode('unicode_escape').decode('ascii'))
    assert not any(c in str(code) for c in '\x1b\u200b\r')


def test_an_error_line_keeps_names_and_cannot_be_forged(tmp_path):
    """A macOS screenshot's name (U+202F) and an emoji joined by U+200D are
    shown as they are; a name holding a line break cannot start a line of
    its own (a second ``error:`` line, "nothing is wrong")."""
    name = str(tmp_path / 'Screenshot 10.00.00\u202fAM \U0001f469\u200d'
               '\U0001f52c.py')
    code, _ = run_main(osp.join(TOOLS, 'test.py'), [name])
    one_error_line(code, f'config not found: {name}.')
    forged = str(tmp_path / 'cfg\nerror: nothing is wrong\n.py')
    code, _ = run_main(osp.join(TOOLS, 'test.py'), [forged])
    lines = str(code).split('\n')
    assert len(lines) == 3 and lines[0].startswith('error: config not found')
    assert all(line.startswith('  ') for line in lines[1:])


@pytest.mark.parametrize('option, expected', [
    ('a=' + '[' * 3000 + ']' * 3000, 'nested deeper than 32 levels'),
    ('.'.join(['a'] * 3000) + '=1', 'nested deeper than 32 levels'),
    ('model.test_cfg', "is not KEY=VALUE; write e.g."),
    ('a=x[,]', "the brackets of 'x[,]' do not pair up"),
    ('a=),(', "the brackets of '),(' do not pair up"),
    ('a=x,[b', "the brackets of 'x,[b' do not pair up"),
    ('test_dataloader.dataset.data_root=/data/my photos',
     "mmengine deletes the spaces of a value, so '/data/my photos' would be "
     "read as '/data/myphotos'"),
    ('model.text_encoder.vocabulary=[cat, hot dog]',
     "'[cat, hot dog]' would be read as '[cat,hotdog]'"),
    ('model.test_cfg.bg_thresh=',
     "model.test_cfg.bg_thresh must be a number in [0, 1], got ''"),
])
def test_an_impossible_cfg_option_is_refused(option, expected, tmp_path):
    """Deep ones would exhaust Python's recursion limit (mmengine parses the
    value, the config merges the key, both recursively)."""
    code, _ = run_main(
        osp.join(TOOLS, 'test.py'),
        [VOC, '--work-dir', tmp_path, '--cfg-options', option])
    one_error_line(code, expected)


@pytest.mark.parametrize('option, expected', [
    ('default_hooks.visualization=None',
     '--show and --show-dir need default_hooks.visualization in the config'),
    ('default_hooks=None',
     '--show and --show-dir need default_hooks.visualization in the config'),
    ('visualizer=None', '--show-dir needs a visualizer in the config'),
])
def test_show_dir_without_a_visualization_hook_is_refused(
        tmp_path, option, expected):
    code, _ = run_main(
        osp.join(TOOLS, 'test.py'), [
            VOC, '--random-weights', '--work-dir', tmp_path / 'work',
            '--show-dir', tmp_path / 'show', '--cfg-options', option
        ])
    one_error_line(code, expected)


def run_cli(script, *args):
    """The return code and standard error of ``python tools/SCRIPT``."""
    proc = subprocess.run(
        [sys.executable, osp.join(TOOLS, script), *args],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True)
    return proc.returncode, proc.stderr


def test_a_missing_coco_instances_file_is_named(tmp_path):
    missing = tmp_path / 'instances_val2017.json'
    code, err = run_cli('dataset_converters/coco_object.py', '--instances',
                        str(missing), '-o', str(tmp_path))
    assert code == 1
    one_error_line(
        err, f'COCO instances JSON (--instances) not found: '
        f'{missing}')


def test_a_results_table_with_a_huge_field_is_refused(tmp_path):
    """Python's csv module refuses fields over 128 KiB: not a table of the
    suite's."""
    (tmp_path / 'results.csv').write_text('config,checkpoint\n' +
                                          'x' * 200_000 + ',y\n')
    checkpoint = tmp_path / 'w.pth'
    checkpoint.write_bytes(b'')
    code, err = run_cli('eval_suite.py', VOC, '--checkpoints', str(checkpoint),
                        '--out-dir', str(tmp_path))
    assert code == 1
    one_error_line(
        err, f'{tmp_path / "results.csv"} is not a results table of this '
        f'tool (field larger than field limit')


def test_the_runtime_is_an_installed_package(tmp_path):
    """The benchmarks and any user import the onnxruntime runner as they
    import the package, from any folder, without editing sys.path."""
    code = 'import groupvit_ort; print(groupvit_ort.__file__)'
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=tmp_path,
                         capture_output=True,
                         text=True,
                         check=True)
    assert out.stdout.strip() == osp.join(TOOLS, 'deployment', 'groupvit_ort',
                                          '__init__.py')


@pytest.mark.parametrize('inside', ['SegmentationClass', 'JPEGImages/maps'])
def test_out_inside_the_dataset_is_refused(tmp_path, inside):
    """The label maps of --out are named as the dataset's images: written
    into its label folder they would replace the ground truth (and a later
    evaluation would score 100 %)."""
    from tests.conftest import voc_subset
    root = voc_subset(tmp_path / 'voc', ['2007_000033'])
    label = root / 'SegmentationClass' / '2007_000033.png'
    before = label.read_bytes()
    code, _ = run_main(
        osp.join(TOOLS, 'test.py'), [
            VOC, '--random-weights', '--work-dir', tmp_path / 'work', '--out',
            root / inside, '--cfg-options',
            f'test_dataloader.dataset.data_root={root}'
        ])
    one_error_line(code, f'--out {root / inside} lies in the dataset\'s')
    assert label.read_bytes() == before
    assert not (root / inside).is_dir() or inside == 'SegmentationClass'
    assert not (tmp_path / 'work').exists()


FINETUNE_SMOKE = osp.join(REPO, 'configs', 'finetune',
                          'fcn_groupvit_voc-sample_smoke.py')
#: What torchrun, srun and mpirun set (none here: no launcher started us).
LAUNCHER_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST',
                'OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
                'OMPI_COMM_WORLD_SIZE')


@pytest.mark.parametrize('tool, config, launcher, expected', [
    ('train.py', FINETUNE_SMOKE, 'pytorch',
     '--launcher pytorch needs the environment torchrun sets (RANK, '
     'WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set). This run was not '
     'started by torchrun: start the tool with torchrun --nproc_per_node=N '
     'tools/train.py ... --launcher pytorch (or tools/dist_train.sh)'),
    ('test.py', VOC, 'slurm',
     '--launcher slurm needs the environment srun sets (SLURM_PROCID, '
     'SLURM_NTASKS, SLURM_NODELIST not set). This run was not started by '
     'srun'),
    ('test.py', VOC, 'mpi', '--launcher mpi needs the environment mpirun sets '
     '(OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_RANK, '
     'OMPI_COMM_WORLD_SIZE, MASTER_ADDR not set). This run was not started '
     'by mpirun'),
])
def test_a_launcher_that_did_not_start_the_run_is_named(
        tool, config, launcher, expected, tmp_path, monkeypatch):
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    argv = [config, '--launcher', launcher, '--work-dir', tmp_path]
    if tool == 'test.py':
        argv.append('--random-weights')
    code, _ = run_main(osp.join(TOOLS, tool), argv)
    one_error_line(code, expected)
    assert 'drop --launcher for one process' in code


def test_ctrl_c_while_training_is_one_line(tmp_path, monkeypatch, capsys):
    train = load_script(osp.join(TOOLS, 'train.py'), 'interrupted_train')

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, 'build_runner', interrupt)
    with pytest.raises(SystemExit) as exit_:
        train.main([FINETUNE_SMOKE, '--work-dir', str(tmp_path)])
    assert exit_.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        'interrupted (Ctrl-C); what was written so far is kept.'
    ]


CLASSIFICATION = osp.join(REPO, 'configs', 'classification',
                          'groupvit_imagenet.py')
NOT_ZERO_SHOT = 'has no model.text_encoder, so it is not a zero-shot GroupViT'
CLASSIFIER = ('groupvit_imagenet.py is a zero-shot classification config '
              '(model GroupViTClassifier): it ranks classes for a whole image '
              'and segments nothing. Classify with tools/demo.py --classify')
NOT_EXPORTED = (
    CLASSIFIER + '; the ONNX export and the benchmarks take '
    'segmentation configs only')
DEMO_PHOTO = osp.join(REPO, 'samples', 'images', 'groupvit_demo_voc.jpg')
DEMO, EXPORT = 'demo.py', 'deployment/pytorch2onnx.py'
FLOPS, BENCHMARK = 'analysis_tools/get_flops.py', 'analysis_tools/benchmark.py'


@pytest.mark.parametrize('tool, args, expected', [
    (DEMO, [DEMO_PHOTO, '--config', FINETUNE_SMOKE], NOT_ZERO_SHOT),
    (DEMO, [DEMO_PHOTO, '--config', CLASSIFICATION], CLASSIFIER),
    (EXPORT, [FINETUNE_SMOKE], NOT_ZERO_SHOT),
    (EXPORT, [CLASSIFICATION], NOT_EXPORTED),
    (FLOPS, [FINETUNE_SMOKE], NOT_ZERO_SHOT),
    (BENCHMARK, [FINETUNE_SMOKE], NOT_ZERO_SHOT),
    (FLOPS, [CLASSIFICATION], NOT_EXPORTED),
])
def test_a_tool_of_zero_shot_segmentors_refuses_other_configs(
        tool, args, expected, tmp_path):
    """A fine-tuned segmentor (its backbone under an FCN head) has no text
    encoder; a classifier has no head: both were tracebacks."""
    if not tool.startswith('analysis_tools'):
        args = [*args, '--random-weights', '--out', tmp_path / 'out']
    code, _ = run_main(osp.join(TOOLS, tool), args)
    one_error_line(code, expected)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('config, option, missing', [
    (VOC, [], 'train_dataloader, train_cfg, optim_wrapper'),
    (CLASSIFICATION, [], 'train_dataloader, train_cfg, optim_wrapper'),
    (FINETUNE_SMOKE, ['--cfg-options', 'optim_wrapper=None'], 'optim_wrapper'),
])
def test_a_config_without_training_sections_is_not_trained(
        config, option, missing, tmp_path):
    code, _ = run_main(
        osp.join(TOOLS, 'train.py'),
        [config, '--work-dir', tmp_path / 'work', *option])
    one_error_line(
        code, f'the config has no {missing}: it does not set up training, so '
        f'it cannot be trained')
    assert 'configs/finetune/ (docs/finetune.md) or configs/pretrain/ ' \
        '(docs/pretrain.md)' in code
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('option', ['--out', '--show-dir'])
def test_label_map_options_of_a_classification_test_are_refused(
        option, tmp_path):
    """A classifier predicts classes, not label maps (--out was a TypeError
    from Accuracy, --show-dir an AttributeError from mmengine's drawing)."""
    config = osp.join(REPO, 'configs', 'classification',
                      'groupvit_voc-dominant-sample.py')
    code, _ = run_main(
        osp.join(TOOLS, 'test.py'), [
            config, '--random-weights', '--work-dir', tmp_path / 'work',
            option, tmp_path / 'out'
        ])
    one_error_line(
        code, '--out, --show and --show-dir write or draw label maps, which '
        'a classification config (GroupViTClassifier) does not predict: '
        'drop them')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('atol', ['nan', '-1', 'inf'])
def test_an_export_tolerance_is_checked_when_parsed(atol, tmp_path, capsys):
    """--atol nan or -1 ran the whole export, then asked for a bug report
    because no difference is within it."""
    tool = load_script(osp.join(TOOLS, 'deployment', 'pytorch2onnx.py'))
    with pytest.raises(SystemExit) as exit_:
        tool.main([
            VOC, '--random-weights', '--out',
            str(tmp_path / 'x'), '--atol', atol
        ])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith('error: argument --atol: must be a finite number, 0 '
                        f'or more, got {atol}'), err
    assert not (tmp_path / 'x').exists()
