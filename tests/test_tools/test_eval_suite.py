# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""tools/eval_suite.py on two sample configs: its table against individual
tools/test.py runs, resuming, and bad input.

The model is the small test architecture with random weights; the configs
are thin leaves over the shipped VOC and COCO-Object configs (VOC limited to
3 images by its own split file).
"""
import csv
import glob
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest
import torch
from mmengine.registry import init_default_scope

from groupvit_common.errors import ConfigCheckError, DataFileError
from tests.conftest import (COCO_SAMPLE, REPO, SMALL_ARCH, VOC_SAMPLE,
                            build_small_segmentor, load_script, run_main,
                            shell_signals)

# Runs of the tools over the shipped samples: the full suite only.
pytestmark = pytest.mark.slow

SUITE_PY = osp.join(REPO, 'tools', 'eval_suite.py')
TEST_PY = osp.join(REPO, 'tools', 'test.py')
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def write_config(path, base, extra=''):
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{osp.join(REPO, 'configs', base)}']\n"
                f"model = dict(image_encoder={SMALL_ARCH['image_encoder']!r},"
                f" text_encoder={SMALL_ARCH['text_encoder']!r})\n{extra}")
    return str(path)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('suite')
    checkpoint = root / 'small.pth'
    init_default_scope('mmseg')
    torch.save(
        dict(state_dict=build_small_segmentor().state_dict()), checkpoint)
    with open(osp.join(VOC_SAMPLE, 'ImageSets', 'Segmentation',
                       'val.txt')) as f:
        (root / 'voc3.txt').write_text('\n'.join(f.read().split()[:3]))
    voc = write_config(
        root / 'voc_small.py', 'groupvit_voc.py',
        f"test_dataloader = dict(dataset=dict(ann_file='{root}/voc3.txt'))\n")
    coco = write_config(root / 'coco_small.py', 'groupvit_coco.py')
    return dict(
        root=root,
        checkpoint=str(checkpoint),
        configs=[voc, coco],
        data_roots={
            voc: VOC_SAMPLE,
            coco: COCO_SAMPLE
        })


def run_suite(setup, configs, out_dir):
    """The suite in process (its tools/test.py runs are processes)."""
    with mock.patch.dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'):
        result, text = run_main(SUITE_PY, [
            *configs, '--checkpoints', setup['checkpoint'], '--out-dir',
            out_dir, '--data-root', *[
                f'{osp.splitext(osp.basename(c))[0]}={setup["data_roots"][c]}'
                for c in configs
            ]
        ], 'groupvit_eval_suite')
    assert result == 0, text[-3000:]
    return text


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def read_markdown(path):
    """Rows of the Markdown table as dicts."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.startswith('|')]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    return [
        dict(zip(header, [c.strip() for c in line.strip('|').split('|')]))
        for line in lines[2:]
    ]


@pytest.fixture(scope='module')
def suite_runs(setup):
    """The suite run twice: on the VOC config, then on both (the VOC run
    must be resumed from the table, the COCO one added)."""
    out_dir = setup['root'] / 'out'
    voc, coco = setup['configs']
    first = run_suite(setup, [voc], out_dir)
    second = run_suite(setup, [voc, coco], out_dir)
    return dict(out_dir=out_dir, first=first, second=second)


def individual_run(setup, config, work_dir):
    result, text = run_main(TEST_PY, [
        config, setup['checkpoint'], '--work-dir', work_dir, '--cfg-options',
        f'test_dataloader.dataset.data_root={setup["data_roots"][config]}'
    ], 'groupvit_test_tool')
    assert isinstance(result, dict), text[-3000:]
    with open(osp.join(work_dir, 'results.json')) as f:
        return json.load(f)


def test_table_equals_individual_runs(setup, suite_runs, tmp_path):
    """Each row equals the results.json of the tools/test.py run the suite
    made, and that run was given the row's config, checkpoint and data
    root; the VOC row also equals a run of tools/test.py made here (one
    independent run is enough: the COCO row goes through the same
    code)."""
    rows = read_csv(suite_runs['out_dir'] / 'results.csv')
    markdown = read_markdown(suite_runs['out_dir'] / 'results.md')
    assert [r['config'] for r in rows] == setup['configs']
    assert [r['config'] for r in markdown] == setup['configs']
    records = {}
    for path in glob.glob(
            str(suite_runs['out_dir'] / 'runs' / '*' / 'results.json')):
        with open(path) as f:
            record = json.load(f)
        records[record['config']] = record
    voc = setup['configs'][0]
    for row, md_row, config in zip(rows, markdown, setup['configs']):
        record = records[config]
        data_root = setup['data_roots'][config]
        assert record['checkpoint'] == setup['checkpoint']
        assert record['cfg_options'] == {
            'test_dataloader.dataset.data_root': data_root
        }
        assert record['protocol']['data_root'] == data_root
        if config == voc:
            direct = individual_run(setup, config, tmp_path / 'voc')
            assert direct['metrics'] == record['metrics']
            assert direct['images'] == record['images']
        for metric in ('mIoU', 'mAcc', 'aAcc'):
            expected = f'{record["metrics"][metric]:.2f}'
            assert row[metric] == md_row[metric] == expected, (config, metric)
        assert int(row['images']) == record['images']
        assert row['checkpoint'] == setup['checkpoint']
        assert row['data_root'] == data_root
        assert float(row['seconds']) > 0


def test_table_describes_the_protocol(suite_runs):
    voc, coco = read_csv(suite_runs['out_dir'] / 'results.csv')
    assert voc['dataset'] == 'PascalVOCDataset'
    assert voc['classes'] == '21 (incl. background)'
    assert voc['images'] == '3'
    assert coco['dataset'] == 'COCOObjectDataset'
    assert coco['classes'] == '81 (incl. background)'
    assert coco['images'] == '3'
    for row in (voc, coco):
        assert row['resize'] == 'short 448, long <= 2048'
        assert row['window'] == 'slide 448x448 / 224x224'
        assert row['bg_thresh'] == '0.95'
        assert row['templates'] == 'simple'


def test_progress_per_run_and_per_image(setup, suite_runs):
    """Each run says which of how many it is, and its images are counted
    up to the 3 of the sample."""
    voc, coco = setup['configs']
    second = suite_runs['second']
    assert 'test: 3/3 images' in suite_runs['first']
    assert f'skip {voc} with {setup["checkpoint"]}: already in results.csv ' \
        f'(1 of 2)' in second
    assert f'run  {coco} with {setup["checkpoint"]} (2 of 2)' in second
    assert 'test: 3/3 images' in second


def test_finished_runs_are_skipped(setup, suite_runs):
    voc, coco = setup['configs']
    assert f'skip {voc}' not in suite_runs['first']
    assert f'skip {voc}' in suite_runs['second']
    assert f'run  {coco}' in suite_runs['second']
    out_dir = suite_runs['out_dir']
    runs = sorted(os.listdir(out_dir / 'runs'))
    assert len(runs) == 2
    before = {
        name: os.stat(out_dir / 'runs' / name / 'results.json').st_mtime_ns
        for name in runs
    }
    rows = read_csv(out_dir / 'results.csv')
    output = run_suite(setup, [voc, coco], out_dir)
    assert output.count('skip ') == 2 and 'run  ' not in output
    assert read_csv(out_dir / 'results.csv') == rows
    assert sorted(os.listdir(out_dir / 'runs')) == runs
    assert before == {
        name: os.stat(out_dir / 'runs' / name / 'results.json').st_mtime_ns
        for name in runs
    }


@pytest.mark.parametrize('whom', ['group', 'suite'])
def test_ctrl_c_is_one_line_and_ends_the_run(whom, setup, tmp_path):
    """SIGINT once the run has recorded an image, to the process group (as
    Ctrl-C in a terminal) or to the suite alone: one line and the shell's
    exit code 130, no traceback; the run got SIGINT too (its log says so)
    and ended before the suite (no process of the group is left)."""
    # About 40 windows an image, not 2: the run lasts far longer than the
    # 5 s the suite gives it to end on a terminal's Ctrl-C (at 11 windows,
    # a fast machine finished the 24 images left within them).
    config = write_config(tmp_path / 'voc_all.py', 'groupvit_voc.py',
                          'model.update(test_cfg=dict(stride=(4, 4)))\n')
    out_dir = tmp_path / 'out'
    proc = subprocess.Popen([
        sys.executable, SUITE_PY, config, '--checkpoints', setup['checkpoint'],
        '--out-dir',
        str(out_dir), '--data-root', f'voc_all={VOC_SAMPLE}'
    ],
                            preexec_fn=shell_signals,
                            start_new_session=True,
                            cwd=REPO,
                            env=ENV,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    while not any(
            os.path.getsize(p)
            for p in glob.glob(f'{out_dir}/runs/*/progress/rank0.jsonl')):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    if whom == 'group':
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr[-3000:]
    assert 'Traceback' not in stderr
    assert stderr.strip().splitlines()[-1] == (
        'interrupted (Ctrl-C); what was written so far is kept; run the same '
        'command again to go on (the runs in results.csv are skipped, the one '
        'interrupted starts over).')
    log, = glob.glob(f'{out_dir}/runs/*/suite_run.log')
    with open(log) as f:
        assert 'interrupted: the images evaluated so far' in f.read()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def test_configs_from_a_glob(setup, tmp_path):
    tool = load_script(SUITE_PY, 'groupvit_eval_suite')
    pattern = str(setup['root'] / '*_small.py')
    assert tool.expand_configs([pattern]) == sorted(setup['configs'])
    # A pattern and a path naming the same file count once.
    assert tool.expand_configs([pattern, setup['configs'][0]
                                ]) == sorted(setup['configs'])


@pytest.mark.parametrize('case', ['config', 'checkpoint', 'data_root'])
def test_bad_input_gives_one_clear_error(setup, case, tmp_path):
    tool = load_script(SUITE_PY, 'groupvit_eval_suite')
    configs, checkpoint = list(setup['configs']), setup['checkpoint']
    extra, expected = [], dict(
        config='no config matches',
        checkpoint='checkpoint not found',
        data_root='is not one of the configs')[case]
    if case == 'config':
        configs = [str(tmp_path / 'nothing_*.py')]
    elif case == 'checkpoint':
        checkpoint = str(tmp_path / 'missing.pth')
    else:
        extra = ['--data-root', 'groupvit_unknown=/data']
    with pytest.raises(SystemExit) as error:
        tool.main([
            *configs, '--checkpoints', checkpoint, '--out-dir',
            str(tmp_path / 'out'), *extra
        ])
    message = str(error.value.code)
    assert message.startswith('error: ') and expected in message, message
    assert not (tmp_path / 'out' / 'results.csv').exists()


@pytest.mark.parametrize(
    'name, read_as',
    [('my data', "cannot pass it (test_dataloader.dataset.data_root: mmengine "
      "deletes the spaces of a value, so 'my data' would be read as "
      "'mydata')"), ('a,b', "would read the path as ['a', 'b']"),
     ('1990', 'would read the path as 1990')])
def test_a_data_root_the_options_would_change_is_refused(
        name, read_as, tmp_path, monkeypatch):
    """A data root (a real folder) that tools/test.py's --cfg-options would
    read as another value (spaces dropped, split at a comma, a number):
    refused in one line before any run, not evaluated on another folder
    and recorded under this one's name."""
    suite = load_script(SUITE_PY, 'groupvit_eval_suite')
    monkeypatch.setattr(suite, 'run_one', lambda *a: pytest.fail('ran'))
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    with pytest.raises(SystemExit) as error:
        suite.main([
            osp.join(REPO, 'configs', 'groupvit_voc.py'), '--checkpoints',
            str(checkpoint), '--out-dir', 'out', '--data-root',
            f'groupvit_voc={name}'
        ])
    assert error.value.code == (
        f"error: --data-root 'groupvit_voc={name}': tools/test.py's "
        f'--cfg-options {read_as}; move or link the data to a path without '
        f'spaces, commas, quotes or brackets.')
    assert not (tmp_path / 'out').exists()


def stubbed_suite(monkeypatch, num_classes=21, dataset_name='voc'):
    """The suite tool with its runs stubbed (for tests of the table): each
    run returns a fixed protocol and, as its mIoU, its own number; the work
    dirs of the runs are listed in ``calls``."""
    suite = load_script(SUITE_PY, 'groupvit_eval_suite')
    calls = []

    def fake_run(command, work_dir):
        calls.append(work_dir)
        return dict(
            protocol=dict(
                dataset='PascalVOCDataset',
                num_classes=num_classes,
                background=True,
                resize=None,
                window=dict(mode='whole'),
                bg_thresh=0.95,
                templates='simple',
                vocabulary=dict(dataset_name=dataset_name)),
            metrics=dict(mIoU=len(calls), mAcc=1.0, aAcc=1.0),
            images=3,
            seconds=1.0)

    monkeypatch.setattr(suite, 'run_one', fake_run)
    return suite, calls


def test_changed_checkpoint_replaces_its_row(tmp_path, monkeypatch):
    """The table is keyed by the checkpoint's content: the same path with
    new bytes is evaluated again and its row replaced; the same bytes are
    skipped. (The runs are stubbed: this is about the table.)"""
    suite, calls = stubbed_suite(monkeypatch)
    checkpoint = tmp_path / 'model.pth'
    config = osp.join(REPO, 'configs', 'groupvit_voc.py')
    argv = [
        config, '--checkpoints',
        str(checkpoint), '--out-dir',
        str(tmp_path / 'out')
    ]
    for content, runs in ((b'first', 1), (b'first', 1), (b'second', 2)):
        checkpoint.write_bytes(content)
        assert suite.main(argv) == 0
        assert len(calls) == runs
        rows = read_csv(tmp_path / 'out' / 'results.csv')
        assert len(rows) == 1
        assert rows[0]['checkpoint_sha256'] == hashlib.sha256(
            content).hexdigest()
        assert rows[0]['mIoU'] == f'{runs:.2f}'
    # Each content has its own run folder.
    assert len(set(calls)) == 2


def test_a_table_of_another_tool_is_refused_and_kept(tmp_path, monkeypatch):
    """A results.csv in --out-dir whose columns are not this tool's: refused
    before any run, its bytes kept (they became empty cells of a row)."""
    suite, calls = stubbed_suite(monkeypatch)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    table = tmp_path / 'out' / 'results.csv'
    table.parent.mkdir()
    table.write_text('name,score\nalice,3\nbob,5\n')
    with pytest.raises(DataFileError) as e:
        suite.main([
            osp.join(REPO, 'configs', 'groupvit_voc.py'), '--checkpoints',
            str(checkpoint), '--out-dir',
            str(tmp_path / 'out')
        ])
    assert str(e.value) == (
        f"{table} is not a results table of this tool (its columns: "
        f"['name', 'score']); move it away or use a fresh --out-dir.")
    assert table.read_text() == 'name,score\nalice,3\nbob,5\n'
    assert calls == []


def test_a_table_of_the_first_version_is_kept_and_extended(
        tmp_path, monkeypatch):
    """A results.csv with the first version's columns (no top1, top5 or
    SHA-256 columns): its rows are kept; its row of the pair run now has no
    file digests, so the pair is evaluated again and that row replaced."""
    suite, calls = stubbed_suite(monkeypatch)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    config = osp.join(REPO, 'configs', 'groupvit_voc.py')
    table = tmp_path / 'out' / 'results.csv'
    table.parent.mkdir()
    old = dict(data_root='', cfg_options='', mIoU='50.00')
    with open(table, 'w', newline='') as f:
        writer = csv.DictWriter(f, [
            'config', 'dataset', 'classes', 'resize', 'window', 'bg_thresh',
            'templates', 'checkpoint', 'mIoU', 'mAcc', 'aAcc', 'images',
            'seconds', 'vocabulary', 'data_root', 'cfg_options', 'work_dir'
        ])
        writer.writeheader()
        writer.writerow(dict(old, config='other.py', checkpoint='old.pth'))
        writer.writerow(dict(old, config=config, checkpoint=str(checkpoint)))
    assert suite.main([
        config, '--checkpoints',
        str(checkpoint), '--out-dir',
        str(tmp_path / 'out')
    ]) == 0
    assert len(calls) == 1
    rows = read_csv(table)
    assert [(r['config'], r['mIoU']) for r in rows] == [('other.py', '50.00'),
                                                        (config, '1.00')]
    assert rows[1]['checkpoint_sha256'] == hashlib.sha256(
        b'weights').hexdigest()


def test_paths_of_any_spelling_are_one_pair(tmp_path, monkeypatch):
    """The same config and checkpoint spelled relative, with ``./``,
    absolute or through a link: run once, then skipped, one row (the table
    keeps the first spelling)."""
    suite, calls = stubbed_suite(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'voc.py').write_text(
        f"_base_ = ['{osp.join(REPO, 'configs', 'groupvit_voc.py')}']\n")
    (tmp_path / 'model.pth').write_bytes(b'weights')
    (tmp_path / 'link').symlink_to(tmp_path / 'configs')
    for config, checkpoint in (('configs/voc.py', 'model.pth'),
                               ('./configs/voc.py', './model.pth'),
                               (str(tmp_path / 'link' / 'voc.py'),
                                str(tmp_path / 'model.pth'))):
        assert suite.main([
            config, '--checkpoints', checkpoint, '--out-dir', 'out',
            '--data-root', 'voc=data'
        ]) == 0
    assert len(calls) == 1
    rows = read_csv(tmp_path / 'out' / 'results.csv')
    assert [(r['config'], r['checkpoint'], r['data_root'])
            for r in rows] == [('configs/voc.py', 'model.pth', 'data')]


def test_changed_config_content_replaces_its_row(tmp_path, monkeypatch):
    """The table is keyed by the config's resolved content too: the same
    config path whose text, or whose base file's text, changed what the run
    gets is evaluated again and its row replaced; otherwise it is skipped.
    (The runs are stubbed: this is about the table.)"""
    suite, calls = stubbed_suite(monkeypatch)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    base, leaf = tmp_path / 'base.py', tmp_path / 'leaf.py'
    base.write_text(
        f"_base_ = ['{osp.join(REPO, 'configs', 'groupvit_voc.py')}"
        f"']\nmodel = dict(test_cfg=dict(bg_thresh=0.9))\n")
    argv = [
        str(leaf), '--checkpoints',
        str(checkpoint), '--out-dir',
        str(tmp_path / 'out')
    ]
    steps = [
        ('leaf', 'model = dict(test_cfg=dict(mode="whole"))\n', 1),
        ('leaf', 'model = dict(test_cfg=dict(mode="whole"))\n', 1),
        ('leaf', 'model = dict(test_cfg=dict(mode="whole", bg_thresh=0.5))'
         '\n', 2),
        # The leaf sets bg_thresh: the resolved config is unchanged.
        ('base', 'model = dict(test_cfg=dict(bg_thresh=0.8))\n', 2),
        ('base', 'model = dict(test_cfg=dict(stride=(100, 100)))\n', 3),
    ]
    for which, text, runs in steps:
        if which == 'leaf':
            leaf.write_text("_base_ = ['./base.py']\n" + text)
        else:
            base.write_text(base.read_text() + text)
        assert suite.main(argv) == 0
        assert len(calls) == runs, which
        rows = read_csv(tmp_path / 'out' / 'results.csv')
        assert len(rows) == 1
        assert rows[0]['mIoU'] == f'{runs:.2f}'
    assert len(set(calls)) == 3


def test_a_planted_link_where_the_table_is_written_is_refused(tmp_path):
    """A symbolic link in OUT_DIR in place of the table's temporary file,
    pointing at a file elsewhere: that file keeps its bytes, and the suite
    says so in one line."""
    out_dir, outside = tmp_path / 'out', tmp_path / 'precious'
    out_dir.mkdir()
    outside.write_text('precious')
    (out_dir / 'results.csv.tmp').symlink_to(outside)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'not a checkpoint')  # the run fails, quickly
    proc = subprocess.run([
        sys.executable, SUITE_PY,
        osp.join(REPO, 'configs', 'groupvit_voc.py'), '--checkpoints',
        str(checkpoint), '--out-dir',
        str(out_dir)
    ],
                          cwd=REPO,
                          env=ENV,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert outside.read_text() == 'precious'
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: {out_dir / "results.csv.tmp"} is a symbolic link in '
        f'--out-dir {out_dir}: the tool writes only files of its own there. '
        f'Remove it, or use a fresh folder.')


@pytest.mark.parametrize('planted', ['runs', 'runs/NAME', 'runs/NAME/x'])
def test_a_link_at_or_in_a_run_folder_is_refused(planted, tmp_path,
                                                 monkeypatch, capsys):
    """A symbolic link planted at the run folder (whose name is
    predictable), in it, or at ``runs``, pointing at a folder elsewhere:
    refused in one line before the run writes or deletes anything there."""
    suite = load_script(SUITE_PY, 'groupvit_eval_suite')
    monkeypatch.setattr(suite, 'run_one', lambda *a: pytest.fail('ran'))
    out_dir, outside = tmp_path / 'out', tmp_path / 'precious'
    outside.mkdir()
    (outside / 'results.json').write_text('precious')
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    config = osp.join(REPO, 'configs', 'groupvit_voc.py')
    # The name the suite gives the run folder, as an attacker computes it.
    name = suite.run_dir_name(
        config, str(checkpoint),
        suite.run_key(
            dict(
                config=config,
                checkpoint=str(checkpoint),
                checkpoint_sha256=hashlib.sha256(b'weights').hexdigest(),
                config_sha256=suite.inspect_config(config, [])[0])))
    link = out_dir / planted.replace('NAME', name)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    with pytest.raises(DataFileError) as e:
        suite.main([
            config, '--checkpoints',
            str(checkpoint), '--out-dir',
            str(out_dir)
        ])
    # The suite's __main__ prints it after 'error: ' (see the test above).
    assert str(e.value) == (
        f'{link} is a symbolic link in --out-dir {out_dir}: the tool '
        f'writes only files of its own there. Remove it, or use a fresh '
        f'folder.')
    assert os.listdir(outside) == ['results.json']
    assert (outside / 'results.json').read_text() == 'precious'


def test_changed_content_of_a_file_the_config_names_replaces_its_row(
        tmp_path, monkeypatch):
    """The same config and options naming a vocabulary file whose lines
    were reordered: the row is evaluated again (the mIoU of each class
    moves with its name); the same content is skipped."""
    suite, calls = stubbed_suite(
        monkeypatch, num_classes=2, dataset_name='custom')
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    vocab = tmp_path / 'vocab.txt'
    argv = [
        osp.join(REPO, 'configs', 'groupvit_voc.py'), '--checkpoints',
        str(checkpoint), '--out-dir',
        str(tmp_path / 'out'), '--cfg-options',
        f'model.text_encoder.vocabulary={vocab}'
    ]
    for text, runs in (('cat\ndog\n', 1), ('cat\ndog\n', 1), ('dog\ncat\n',
                                                              2)):
        vocab.write_text(text)
        assert suite.main(argv) == 0
        assert len(calls) == runs
        rows = read_csv(tmp_path / 'out' / 'results.csv')
        assert [row['mIoU'] for row in rows] == [f'{runs:.2f}']


def test_a_config_that_does_not_load_is_run_with_nproc(tmp_path, monkeypatch):
    """With ``--nproc 2``, a config that does not load is run like any
    other (tools/test.py reports it as the run's failure; as without
    ``--nproc``), and the configs after it still run; a classification
    config runs in one process."""
    suite, calls = stubbed_suite(monkeypatch)
    commands = []
    fake_run = suite.run_one
    monkeypatch.setattr(suite, 'run_one',
                        lambda c, w: commands.append(c) or fake_run(c, w))
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    assert suite.main([
        str(broken),
        osp.join(REPO, 'configs', 'classification', 'groupvit_imagenet.py'),
        '--checkpoints',
        str(checkpoint), '--out-dir',
        str(tmp_path / 'out'), '--nproc', '2'
    ]) == 0
    assert len(calls) == 2
    assert '--nproc_per_node=2' in commands[0]
    assert '--launcher' not in commands[1]


@pytest.mark.parametrize('under', [False, True])
def test_an_out_dir_that_is_a_file_is_refused(under, tmp_path):
    """--out-dir naming a file, or a path under one (a FileExistsError or
    NotADirectoryError traceback before): one message, the file kept."""
    suite = load_script(SUITE_PY, 'groupvit_eval_suite')
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'')
    (tmp_path / 'notes.md').write_text('mine')
    out = tmp_path / 'notes.md' / 'x' if under else tmp_path / 'notes.md'
    with pytest.raises(ConfigCheckError) as error:
        suite.main([
            osp.join(REPO, 'configs', 'groupvit_voc.py'), '--checkpoints',
            str(checkpoint), '--out-dir',
            str(out)
        ])
    where = (f'lies under the file {tmp_path / "notes.md"}'
             if under else 'is a file')
    assert str(error.value) == (
        f'--out-dir {out} {where}, not a folder. Give a folder path (it is '
        f'created if missing).')
    assert (tmp_path / 'notes.md').read_text() == 'mine'
