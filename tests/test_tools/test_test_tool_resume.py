# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``tools/test.py --resume`` and its work dir against what a shared work dir
can hold: records an attacker wrote or edited, damaged progress files,
symbolic links planted in place of the files the tool writes, a second run
in the same work dir, and every input of the first run changed before the
resume. Each case runs the tool (in process, as the console runs it) on 3
images of the VOC sample with a small random GroupViT, and expects one
``error:`` line, never a traceback or a metric."""
import hashlib
import hmac
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.registry import init_default_scope

from tests.conftest import (REPO, SMALL_ARCH, VOC_SAMPLE, load_script,
                            varied_segmentor, voc_subset)

# Tool runs and end-to-end checks: the full suite only (the fast tier,
# pytest -m "not slow", is the everyday loop).
pytestmark = pytest.mark.slow

TEST_PY = osp.join(REPO, 'tools', 'test.py')
IDS = ['2007_000033', '2007_000042', '2007_000123']

CONFIG = """_base_ = {base!r}
model = dict(
    image_encoder={image_encoder!r},
    text_encoder={text_encoder!r},
    test_cfg=dict(crop_size=(224, 224), stride=(224, 224), bg_thresh={bg}))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root={data_root!r},
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(1024, {short}), keep_ratio=True),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ]))
test_evaluator = dict(ignore_index={ignore})
"""


def write_config(path, data_root, bg=0.5, short=224, ignore=255, extra=''):
    path.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs', 'groupvit_voc.py'),
            data_root=str(data_root),
            bg=bg,
            short=short,
            ignore=ignore,
            **SMALL_ARCH) + extra)
    return str(path)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """A data root with 3 of the sample's pairs, a config, a checkpoint."""
    root = tmp_path_factory.mktemp('resume_inputs')
    data = root / 'VOC2012'
    voc_subset(data, IDS)
    checkpoint = root / 'small.pth'
    init_default_scope('mmseg')
    torch.save(
        dict(state_dict=varied_segmentor().state_dict(), meta={}), checkpoint)
    return root, data, write_config(root / 'small.py', data), str(checkpoint)


def main(*argv):
    """Run tools/test.py in process: its metrics, or the text it exits
    with."""
    tool = load_script(TEST_PY, 'groupvit_test_tool')
    try:
        return tool.main([str(a) for a in argv])
    except SystemExit as e:
        return str(e.code)


def refused(result, *parts):
    """One ``error:`` line holding ``parts``."""
    assert isinstance(result, str), f'not refused: {result}'
    assert result.startswith('error: ') and '\n' not in result, result
    for part in parts:
        assert part in result, result
    return result


@pytest.fixture(scope='module')
def first_run(inputs, tmp_path_factory):
    """A finished run's work dir (copied for each test that changes it)."""
    _, _, config, checkpoint = inputs
    work_dir = tmp_path_factory.mktemp('first') / 'work'
    metrics = main(config, checkpoint, '--work-dir', work_dir)
    assert isinstance(metrics, dict), metrics
    lines = (work_dir / 'progress' / 'rank0.jsonl').read_text().splitlines()
    assert len(lines) == len(IDS)
    return work_dir, metrics


@pytest.fixture
def work_dir(first_run, tmp_path):
    copy = tmp_path / 'work'
    shutil.copytree(first_run[0], copy)
    return copy


RESTART = 'Run without --resume to evaluate every image again, or use a ' \
          'fresh --work-dir'


def test_resume_of_untouched_records_gives_the_same_metrics(
        inputs, first_run, work_dir):
    """The baseline of the refusals below: the copied records resume, and
    nothing is evaluated again."""
    _, _, config, checkpoint = inputs
    path = work_dir / 'progress' / 'rank0.jsonl'
    before = path.read_bytes()
    assert main(config, checkpoint, '--work-dir', work_dir,
                '--resume') == first_run[1]
    assert path.read_bytes() == before


def test_resume_refuses_an_out_folder_missing_a_recorded_map(inputs, tmp_path):
    """A label map deleted from --out after the first run: the resumed run
    would skip its image and never write it, so it is refused, naming the
    map; with every map there it resumes."""
    _, _, config, checkpoint = inputs
    work_dir, out = tmp_path / 'work', tmp_path / 'maps'
    args = [config, checkpoint, '--work-dir', work_dir, '--out', out]
    first = main(*args)
    assert isinstance(first, dict), first
    assert sorted(p.name for p in out.iterdir()) == [f'{i}.png' for i in IDS]
    assert main(*args, '--resume') == first
    (out / f'{IDS[1]}.png').unlink()
    refused(
        main(*args, '--resume'), f'Cannot resume from {work_dir}',
        f'--out {out}: the label maps of 1 of the 3 images already evaluated '
        f'are missing there ({IDS[1]}.png)', 'Run without --resume')


def forge(line):
    """A record that makes every pixel of its image correct."""
    record = json.loads(line.partition(' ')[2])
    _, _, pred, label = record['counts']
    record['counts'] = [label, label, label, label]
    return record


@pytest.mark.parametrize('attack', [
    'every pixel correct, plain JSON',
    'every pixel correct, digest of another key',
    'negative counts, old digest',
    'a count of 1e30, old digest',
    pytest.param('line of another run', marks=pytest.mark.slow),
    'meta.json of another key',
])
def test_records_not_of_this_run_are_refused(attack, inputs, work_dir,
                                             tmp_path):
    """An attacker with write access to the work dir but not the user's key
    cannot make --resume count anything."""
    _, _, config, checkpoint = inputs
    path = work_dir / 'progress' / 'rank0.jsonl'
    lines = path.read_text().splitlines()
    mac, _, body = lines[0].partition(' ')
    if attack == 'every pixel correct, plain JSON':
        lines[0] = json.dumps(forge(lines[0]))
    elif attack == 'every pixel correct, digest of another key':
        text = json.dumps(forge(lines[0]), sort_keys=True)
        nonce = json.loads(
            (work_dir / 'progress' / 'meta.json').read_text())['nonce']
        other = hmac.new(b'k' * 32, f'{nonce}\n{text}'.encode(),
                         hashlib.sha256).hexdigest()
        lines[0] = f'{other} {text}'
    elif attack == 'negative counts, old digest':
        lines[0] = mac + ' ' + body.replace('[', '[-', 3)
    elif attack == 'a count of 1e30, old digest':
        lines[0] = mac + ' ' + body.replace('[[', '[[1e30, ', 1)
    elif attack == 'line of another run':
        # A record of this user, of the same image, from another work dir:
        # its digest covers the other run's id.
        other = tmp_path / 'other'
        main(config, checkpoint, '--work-dir', other)
        lines[0] = (other / 'progress' /
                    'rank0.jsonl').read_text().splitlines()[0]
        assert lines[0].partition(' ')[2] == body  # the same counts
    else:
        meta = json.loads((work_dir / 'progress' / 'meta.json').read_text())
        meta['mac'] = hmac.new(b'k' * 32, b'x', hashlib.sha256).hexdigest()
        (work_dir / 'progress' / 'meta.json').write_text(json.dumps(meta))
    path.write_text('\n'.join(lines) + '\n')
    where = 'meta.json was not written by a run of yours' \
        if attack.startswith('meta') else 'line 1 was not recorded by this run'
    refused(
        main(config, checkpoint, '--work-dir', work_dir, '--resume'),
        'Cannot resume from', where, RESTART)


@pytest.mark.parametrize('content, problem', [
    ('{"model": ', 'is not valid JSON'),
    ('[' * 100000 + ']' * 100000, 'nests deeper than'),
    ('[' * 40 + ']' * 40, 'nests deeper than 32 levels'),
    ('"a string"', 'was not written by a run of yours'),
])
def test_damaged_meta_json_is_one_error_line(content, problem, inputs,
                                             work_dir):
    _, _, config, checkpoint = inputs
    (work_dir / 'progress' / 'meta.json').write_text(content)
    refused(
        main(config, checkpoint, '--work-dir', work_dir, '--resume'),
        'Cannot resume from', problem, RESTART)


def test_records_without_meta_json_are_evaluated_again(inputs, first_run,
                                                       work_dir):
    """Records without the meta.json that ties them to a run are not
    counted: --resume finds nothing to resume and evaluates every image."""
    _, _, config, checkpoint = inputs
    (work_dir / 'progress' / 'meta.json').unlink()
    path = work_dir / 'progress' / 'rank0.jsonl'
    old = path.read_text().splitlines()
    assert main(config, checkpoint, '--work-dir', work_dir,
                '--resume') == first_run[1]
    new = path.read_text().splitlines()
    # Written again (a new run id, so new digests), to the same counts.
    assert len(new) == len(old) and not set(new) & set(old)
    assert [x.partition(' ')[2] for x in new] == \
        [x.partition(' ')[2] for x in old]


@pytest.mark.parametrize(
    'planted, resume',
    [
        ('progress/meta.json', False),
        pytest.param('results.json', False, marks=pytest.mark.slow),
        ('.lock', False),
        ('small.py', False),  # mmengine saves the config there
        pytest.param('progress/rank0.jsonl', True, marks=pytest.mark.slow),
        ('progress', False),
    ])
def test_planted_symbolic_links_are_not_followed(planted, resume, inputs,
                                                 work_dir, tmp_path):
    """A link in place of a file the tool writes, pointing at a file of the
    user's elsewhere: that file is left as it was."""
    _, _, config, checkpoint = inputs
    outside = tmp_path / 'precious'
    if planted == 'progress':
        outside.mkdir()
        (outside / 'meta.json').write_text('precious')
        (outside / 'rank0.jsonl').write_text('precious')
        shutil.rmtree(work_dir / 'progress')
        kept = {p: p.read_bytes() for p in outside.iterdir()}
    else:
        # No newline: not a record, so the writer is what meets the link.
        outside.write_text('precious')
        (work_dir / planted).unlink()
        kept = {outside: b'precious'}
    (work_dir / planted).symlink_to(outside)
    result = main(config, checkpoint, '--work-dir', work_dir,
                  *(['--resume'] if resume else []))
    refused(result, f'{work_dir / planted} is a symbolic link',
            'Remove it, or use a fresh folder')
    assert {p: p.read_bytes() for p in kept} == kept
    if planted == 'progress':
        assert sorted(
            p.name for p in outside.iterdir()) == ['meta.json', 'rank0.jsonl']


@pytest.mark.parametrize('option', ['--work-dir', '--out', '--show-dir'])
def test_a_link_in_an_output_folder_is_refused(option, inputs, work_dir,
                                               tmp_path):
    """A symbolic link anywhere in a folder the run writes in: where
    mmengine's log folder will be (its name is the start time), or an
    image's prediction or picture, pointing at the user's folder or file.
    One line, and the outside files keep their bytes."""
    _, _, config, checkpoint = inputs
    outside = tmp_path / 'precious'
    outside.mkdir()
    (outside / 'victim').write_text('precious')
    folder = work_dir if option == '--work-dir' else tmp_path / 'pictures'
    if option == '--work-dir':
        link = folder / time.strftime('%Y%m%d_%H%M%S',
                                      time.localtime(time.time() + 60))
        target = outside
    else:  # where the image's prediction (picture) is written
        link = folder / (f'{IDS[0]}.png' if option == '--out' else
                         f'vis_data/vis_image/test_{IDS[0]}_0.png')
        link.parent.mkdir(parents=True, exist_ok=True)
        target = outside / 'victim'
    link.symlink_to(target)
    argv = [config, checkpoint, '--work-dir', work_dir]
    if option != '--work-dir':
        argv += [option, folder]
    refused(
        main(*argv), f'{link} is a symbolic link in {option} {folder}',
        'Remove it, or use a fresh folder')
    assert os.listdir(outside) == ['victim']
    assert (outside / 'victim').read_text() == 'precious'


@pytest.mark.parametrize('fifo, resume', [('progress/meta.json', False),
                                          ('.lock', True)])
def test_a_fifo_in_the_work_dir_is_refused(fifo, resume, inputs, work_dir):
    """A FIFO where the tool writes a file: one line naming it, not a run
    waiting for a reader or a traceback."""
    _, _, config, checkpoint = inputs
    (work_dir / fifo).unlink(missing_ok=True)
    os.mkfifo(work_dir / fifo)

    def hung(*_):
        raise AssertionError(f'the run waits on the FIFO {fifo}')

    # Opening a FIFO for writing waits for a reader: fail instead.
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        result = main(config, checkpoint, '--work-dir', work_dir,
                      *(['--resume'] if resume else []))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    refused(result, f'{work_dir / fifo} is a FIFO (named pipe)',
            'use a fresh work dir')


def flip_a_byte(path):
    """Other content, same size and modification time."""
    stat = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size


@pytest.mark.parametrize(
    'part',
    ['model', 'dataset', 'evaluator', 'checkpoint', 'label map', 'image'])
def test_resume_refuses_each_changed_input(part, inputs, work_dir, tmp_path):
    """One input of the first run changed before --resume, the others as
    they were: refused, naming what changed."""
    root, data, config, checkpoint = inputs
    expected = {
        'model': 'different model config',
        'dataset': 'different test dataset config',
        'evaluator': 'different evaluator config',
        'checkpoint': 'different checkpoint file',
        'label map': 'changed since they were counted',
        'image': 'changed since they were counted'
    }[part]
    if part in ('label map', 'image'):
        copy = tmp_path / 'VOC2012'
        shutil.copytree(data, copy)
        # The records name the first run's files: change those, and put
        # them back afterwards.
        folder, suffix = (('SegmentationClass',
                           '.png') if part == 'label map' else
                          ('JPEGImages', '.jpg'))
        changed = data / folder / (IDS[1] + suffix)
        flip_a_byte(changed)
        try:
            result = main(config, checkpoint, '--work-dir', work_dir,
                          '--resume')
        finally:
            shutil.copy2(copy / folder / (IDS[1] + suffix), changed)
        refused(result, expected, str(changed))
        return
    if part == 'checkpoint':
        checkpoint = tmp_path / 'other.pth'
        torch.save(
            dict(state_dict=varied_segmentor(seed=1).state_dict(), meta={}),
            checkpoint)
    else:
        config = write_config(
            tmp_path / 'changed.py', data,
            **dict(
                model=dict(bg=0.6),
                dataset=dict(short=256),
                evaluator=dict(ignore=0))[part])
    refused(
        main(config, checkpoint, '--work-dir', work_dir, '--resume'),
        'Cannot resume from', expected)


def test_the_time_per_image_counts_the_images_run(inputs, work_dir, capsys):
    """After a resume the time is divided by the images evaluated, not by
    those of the test set."""
    _, _, config, checkpoint = inputs
    path = work_dir / 'progress' / 'rank0.jsonl'
    path.write_text(path.read_text().splitlines()[0] + '\n')
    capsys.readouterr()
    main(config, checkpoint, '--work-dir', work_dir, '--resume')
    out = capsys.readouterr().out
    line = [x for x in out.splitlines() if x.startswith('time')][0]
    words = line.split()
    assert words[3:5] == [
        'for', '2'
    ] and line.endswith(' s per image, 1 more from the records)'), line
    # Both numbers are rounded for display (0.05 s and 0.005 s).
    seconds, per_image = float(words[1]), float(words[6][1:])
    assert abs(per_image - seconds / 2) <= 0.025 + 0.005, line


def test_a_resume_with_every_image_recorded_says_so(inputs, first_run,
                                                    work_dir, capsys):
    """Resuming a finished run evaluates no image: no time per image, and
    no warning of mmengine that the metric received no results."""
    _, _, config, checkpoint = inputs
    capsys.readouterr()
    assert main(config, checkpoint, '--work-dir', work_dir,
                '--resume') == first_run[1]
    captured = capsys.readouterr()
    line = [x for x in captured.out.splitlines() if x.startswith('time')][0]
    assert line.endswith(f' s for 0 images (all {len(IDS)} from the '
                         f'records)'), line
    assert 'got empty' not in captured.out + captured.err


PAUSE_HOOK = '''
import os, time
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseHook(Hook):
    """Says that the run has started, then waits to be let go."""

    def before_test_epoch(self, runner):
        open({ready!r}, 'w').close()
        deadline = time.time() + 120
        while not os.path.exists({go!r}) and time.time() < deadline:
            time.sleep(0.05)
'''


def test_a_running_evaluation_holds_its_work_dir(inputs, tmp_path,
                                                 monkeypatch):
    """A real tools/test.py run, paused at the start of its test loop,
    holds the work dir's lock: a second run there is refused with one line
    naming the first one's process; the first then finishes."""
    _, data, _, checkpoint = inputs
    ready, go = tmp_path / 'ready', tmp_path / 'go'
    (tmp_path / 'pause_hook.py').write_text(
        PAUSE_HOOK.format(ready=str(ready), go=str(go)))
    config = write_config(
        tmp_path / 'paused.py',
        data,
        extra="custom_imports = dict(imports=['pause_hook'])\n"
        "custom_hooks = [dict(type='PauseHook')]\n")
    work_dir = tmp_path / 'work'
    monkeypatch.syspath_prepend(str(tmp_path))  # for the second run here
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    first = subprocess.Popen(
        [sys.executable, TEST_PY, config, checkpoint, '--work-dir', work_dir],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.time() + 240
        while not ready.exists():
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.time() < deadline, 'the first run did not start'
            time.sleep(0.05)
        refused(
            main(config, checkpoint, '--work-dir', work_dir),
            f'Another evaluation (process {first.pid}) is running in the '
            f'work dir {work_dir}')
        go.touch()
        out = first.communicate(timeout=240)[0]
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out[-3000:]
    assert (work_dir / 'results.json').is_file()


def test_resume_with_a_fine_tuning_config_reads_only_the_records(
        tmp_path, monkeypatch):
    """A fine-tuning config has a training loop (and may say
    ``resume = True``): tools/test.py --resume still never calls mmengine's
    ``Runner.resume``, which reads the checkpoint's training state and
    config. The checkpoint's meta holds a config string that must not run
    and an OmegaConf ``dataset_meta`` (the safe loader's stand-in)."""
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from omegaconf import OmegaConf

    from tests.test_finetune import small_config
    cfg = small_config(
        osp.join(REPO, 'configs', 'finetune',
                 'fcn_groupvit_voc-sample_smoke.py'))
    cfg.test_dataloader.dataset.data_root = VOC_SAMPLE
    cfg.test_dataloader.dataset.indices = 2
    cfg.resume = True
    config = str(tmp_path / 'fcn.py')
    cfg.dump(config)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'fcn.pth'
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                config="raise RuntimeError('a config string ran')",
                dataset_meta=OmegaConf.create(dict(classes=['a', 'b'])))),
        checkpoint)

    def resume(*args, **kwargs):
        raise AssertionError('Runner.resume was called')

    monkeypatch.setattr(Runner, 'resume', resume)
    work_dir = tmp_path / 'work'
    first = main(config, checkpoint, '--work-dir', work_dir)
    assert isinstance(first, dict), first
    path = work_dir / 'progress' / 'rank0.jsonl'
    path.write_text(path.read_text().splitlines()[0] + '\n')
    assert main(config, checkpoint, '--work-dir', work_dir,
                '--resume') == first
