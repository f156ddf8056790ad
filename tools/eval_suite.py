# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluate configs x checkpoints with ``tools/test.py`` into one results
table, ``OUT_DIR/results.md`` and ``results.csv`` (docs/evaluation.md)::

    python tools/eval_suite.py 'configs/groupvit_*.py' \\
        --checkpoints checkpoints/groupvit_gcc-yfcc.pth \\
        checkpoints/groupvit_gcc-redcaps.pth \\
        --out-dir work_dirs/suite \\
        [--data-root groupvit_voc=/data/VOCdevkit/VOC2012 ...] \\
        [--cfg-options KEY=VALUE ...] [--nproc 2]

Each pair is one ``tools/test.py`` process (torchrun with ``--nproc`` >
1; classification configs always one) under ``OUT_DIR/runs/``; the table is
rewritten after each run. Pairs already in ``results.csv`` with the same
checkpoint and resolved-config SHA-256 are skipped (an interrupted suite
resumes); a changed one is run again and its row replaced. A failed run is
reported and left out. Files in ``OUT_DIR`` are opened without following
symbolic links.
"""
import argparse
import csv
import glob
import hashlib
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import time
from io import StringIO
from typing import Dict, List, Optional, Sequence, Tuple

TOOLS = osp.dirname(osp.abspath(__file__))

from groupvit_common.errors import DataFileError
from groupvit_common.files import file_sha256, open_work_file, refuse_links
from mmseg_groupvit.evaluation.protocol import (format_protocol,
                                                format_templates,
                                                format_vocabulary)
from mmseg_groupvit.utils.console import progress

TEST_PY = osp.join(TOOLS, 'test.py')

# Columns of results.csv; results.md shows the first ones (up to 'seconds').
COLUMNS = [
    'config', 'dataset', 'classes', 'resize', 'window', 'bg_thresh',
    'templates', 'checkpoint', 'mIoU', 'mAcc', 'aAcc', 'top1', 'top5',
    'images', 'seconds', 'vocabulary', 'data_root', 'cfg_options', 'work_dir',
    'checkpoint_sha256', 'config_sha256'
]
MARKDOWN_COLUMNS = COLUMNS[:COLUMNS.index('seconds') + 1]
# A finished run is identified by these columns; the first four name the
# pair, the last two the checkpoint's content and the config's (resolved,
# with its base files and the options).
KEY_COLUMNS = ('config', 'checkpoint', 'data_root', 'cfg_options',
               'checkpoint_sha256', 'config_sha256')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate configs x checkpoints with tools/test.py into '
        'one results table (Markdown + CSV), resuming finished runs.')
    add = parser.add_argument
    add('configs', nargs='+', help='config files or (quoted) glob patterns')
    add('--checkpoints',
        nargs='+',
        required=True,
        help='converted checkpoints (tools/convert_weights.py)')
    add('--out-dir', required=True, help='results and the runs\' work dirs')
    add('--data-root',
        nargs='+',
        default=[],
        metavar='CONFIG=PATH',
        help='data root of the configs named CONFIG (file name without .py)')
    add('--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='options of every run (tools/test.py --cfg-options)')
    add('--nproc', type=int, default=1, help='processes per run (torchrun)')
    return parser.parse_args(argv)


def expand_configs(patterns: Sequence[str]) -> List[str]:
    """Config files of paths and patterns, in order, without repeats."""
    configs = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                sys.exit(f'error: no config matches {pattern!r}.')
        elif osp.isfile(pattern):
            matches = [pattern]
        else:
            sys.exit(f'error: config not found: {pattern}.')
        for path in matches:
            path = osp.normpath(path)
            if path not in configs:
                configs.append(path)
    return configs


def parse_data_roots(items: Sequence[str],
                     configs: Sequence[str]) -> Dict[str, str]:
    """``CONFIG=PATH`` items as ``{config name: path}``."""
    names = {config_name(c) for c in configs}
    roots = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            sys.exit(f'error: --data-root expects CONFIG=PATH (the config '
                     f'file name without .py), got {item!r}.')
        if name not in names:
            sys.exit(f'error: --data-root {item!r}: {name!r} is not one of '
                     f'the configs ({", ".join(sorted(names))}).')
        roots[name] = path
    return roots


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def run_key(row: dict) -> Tuple[str, ...]:
    return tuple(str(row.get(k, '')) for k in KEY_COLUMNS)


def config_sha256(config: str, options: Sequence[str]) -> str:
    """SHA-256 of the config as a run resolves it with ``options`` (and of
    the files it names); of its bytes when it does not resolve."""
    from mmengine.config import Config, DictAction

    from mmseg_groupvit.evaluation.progress import named_file_digests
    try:
        cfg = Config.fromfile(config)
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        if options:
            cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
        # The content of the files it names (a vocabulary) too.
        text = json.dumps(
            [cfg.to_dict(), named_file_digests(cfg.model)],
            sort_keys=True,
            default=repr)
    except Exception:  # noqa: B902 (any failure: the run reports it)
        with open(config, 'rb') as f:
            text = f.read().hex() + json.dumps(list(options))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def read_table(path: str) -> List[dict]:
    """Rows of an existing results.csv (empty if there is none)."""
    if not osp.isfile(path):
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def write_atomic(path: str, text: str) -> None:
    folder, name = osp.split(path)
    with open_work_file(folder, f'{name}.tmp', 'w') as f:
        f.write(text)
    os.replace(f'{path}.tmp', path)


def csv_text(rows: Sequence[dict]) -> str:
    buf = StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, '') for k in COLUMNS})
    return buf.getvalue()


def markdown_text(rows: Sequence[dict]) -> str:
    """The table as Markdown (the CSV has every column)."""

    def cell(value) -> str:
        return str(value).replace('|', '\\|')

    lines = [
        '| ' + ' | '.join(MARKDOWN_COLUMNS) + ' |',
        '|' + '|'.join('---' for _ in MARKDOWN_COLUMNS) + '|'
    ]
    for row in rows:
        lines.append('| ' + ' | '.join(
            cell(row.get(k, '')) for k in MARKDOWN_COLUMNS) + ' |')
    return ('<!-- Written by tools/eval_suite.py; every column is in '
            'results.csv. -->\n' + '\n'.join(lines) + '\n')


def save_table(out_dir: str, rows: Sequence[dict]) -> None:
    write_atomic(osp.join(out_dir, 'results.csv'), csv_text(rows))
    write_atomic(osp.join(out_dir, 'results.md'), markdown_text(rows))


def classification_row(record: dict) -> dict:
    """The protocol and metric columns of a classification run."""
    protocol = record['protocol']
    metrics = record['metrics']
    resize, crop = protocol['resize'], protocol['crop']
    shown = [] if resize is None else [f'{resize["edge"]} {resize["scale"]}']
    if crop is not None:
        shown.append(f'crop {crop}')
    return dict(
        classes='-',
        resize=', '.join(shown) or 'none',
        window='-',
        bg_thresh='-',
        mIoU='-',
        mAcc='-',
        aAcc='-',
        top1=f'{metrics["accuracy/top1"]:.2f}',
        top5=(f'{metrics["accuracy/top5"]:.2f}'
              if 'accuracy/top5' in metrics else '-'))


def table_row(record: dict, config: str, checkpoint: str, data_root: str,
              cfg_options: str, work_dir: str, checkpoint_sha256: str,
              config_sha256: str) -> dict:
    """One table row from a run's ``results.json``."""
    protocol, metrics = record['protocol'], record['metrics']
    row = dict(
        config=config,
        dataset=protocol['dataset'],
        checkpoint=checkpoint,
        images=record['images'],
        seconds=f'{record["seconds"]:.1f}',
        data_root=data_root,
        cfg_options=cfg_options,
        work_dir=work_dir,
        checkpoint_sha256=checkpoint_sha256,
        config_sha256=config_sha256)
    if protocol.get('task') == 'classification':
        return dict(
            row,
            templates=format_templates(protocol['templates']),
            vocabulary=format_vocabulary(protocol['vocabulary']),
            **classification_row(record))
    texts = format_protocol(protocol)
    row.update((k, texts[k]) for k in ('classes', 'resize', 'window',
                                       'bg_thresh', 'templates', 'vocabulary'))
    row.update((k, f'{metrics[k]:.2f}') for k in ('mIoU', 'mAcc', 'aAcc'))
    return dict(row, top1='-', top5='-')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def is_classification(config: str) -> bool:
    """Whether the config builds a zero-shot classifier (one process)."""
    from mmseg_groupvit.evaluation import is_classification_config
    return is_classification_config(config)


def test_command(config: str, checkpoint: str, work_dir: str,
                 options: Sequence[str], nproc: int) -> List[str]:
    """The ``tools/test.py`` command line of one run."""
    args = [config, checkpoint, '--work-dir', work_dir]
    if nproc > 1 and is_classification(config):
        nproc = 1
    if options:
        args += ['--cfg-options', *options]
    if nproc <= 1:
        return [sys.executable, TEST_PY, *args]
    return [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
        f'--master_port={free_port()}', TEST_PY, *args, '--launcher', 'pytorch'
    ]


def run_dir_name(config: str, checkpoint: str, key: Tuple[str, ...]) -> str:
    digest = hashlib.sha1('\n'.join(key).encode()).hexdigest()[:8]
    stem = osp.splitext(osp.basename(checkpoint))[0]
    return f'{config_name(config)}__{stem}__{digest}'


IMAGES_LINE = re.compile(r'^images +(\d+)(?: \((\d+) already)?', re.M)


def images_recorded(progress_dir: str) -> int:
    """Images a running tools/test.py has recorded (a line each)."""
    count = 0
    for path in glob.glob(osp.join(progress_dir, 'rank*.jsonl')):
        with open(path, 'rb') as f:
            count += f.read().count(b'\n')
    return count


def watch(proc: subprocess.Popen,
          log: str,
          work_dir: str,
          poll: float = 0.5) -> int:
    """Wait for a tools/test.py process, with a progress bar over its
    images once its log says how many; its exit code."""
    state = dict(bar=None, shown=0)

    def update():
        if state['bar'] is None:
            with open(log, errors='replace') as f:
                match = IMAGES_LINE.search(f.read())
            if not match:
                return
            total = int(match.group(1)) - int(match.group(2) or 0)
            state['bar'] = progress(total, 'test', 'images').__enter__()
        done = images_recorded(osp.join(work_dir, 'progress'))
        if done > state['shown']:
            state['bar'].advance(done - state['shown'])
            state['shown'] = done

    try:
        while proc.poll() is None:
            time.sleep(poll)
            update()
        if proc.returncode == 0:
            update()
    finally:
        if state['bar'] is not None:
            state['bar'].__exit__(None, None, None)
    return proc.returncode


def run_one(command: List[str], work_dir: str) -> Optional[dict]:
    """Run one evaluation; its ``results.json``, or None if it failed."""
    os.makedirs(work_dir, exist_ok=True)
    results = osp.join(work_dir, 'results.json')
    if osp.exists(results):
        os.remove(results)
    log = osp.join(work_dir, 'suite_run.log')
    with open_work_file(work_dir, 'suite_run.log', 'w') as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)
        watch(proc, log, work_dir)
    if proc.returncode != 0 or not osp.isfile(results):
        with open(log) as f:
            lines = f.read().strip().splitlines()
        # tools/test.py reports bad input on one line starting 'error: '.
        shown = list(
            dict.fromkeys(
                line for line in lines if line.startswith('error: ')))[:2]
        print('  failed (exit code %d), see %s:\n    %s' %
              (proc.returncode, log, '\n    '.join(shown or lines[-5:])))
        return None
    with open(results) as f:
        return json.load(f)


def main(argv=None) -> int:
    args = parse_args(argv)
    configs = expand_configs(args.configs)
    checkpoints = [osp.normpath(c) for c in args.checkpoints]
    missing = [c for c in checkpoints if not osp.isfile(c)]
    if missing:
        sys.exit(f'error: checkpoint not found: {", ".join(missing)}. '
                 f'Convert the published weights with '
                 f'tools/convert_weights.py.')
    if args.nproc < 1:
        sys.exit('error: --nproc must be at least 1.')
    data_roots = parse_data_roots(args.data_root, configs)
    os.makedirs(args.out_dir, exist_ok=True)
    rows = read_table(osp.join(args.out_dir, 'results.csv'))
    done = {run_key(row) for row in rows}
    failed = []
    pairs = len(checkpoints) * len(configs)
    number = 0
    for checkpoint in checkpoints:
        digest = file_sha256(checkpoint)
        for config in configs:
            number += 1
            data_root = data_roots.get(config_name(config), '')
            options = list(args.cfg_options)
            if data_root:
                options.append(f'test_dataloader.dataset.data_root='
                               f'{data_root}')
            cfg_options = ' '.join(args.cfg_options)
            config_digest = config_sha256(config, options)
            key = run_key(
                dict(
                    config=config,
                    checkpoint=checkpoint,
                    data_root=data_root,
                    cfg_options=cfg_options,
                    checkpoint_sha256=digest,
                    config_sha256=config_digest))
            label = f'{config} with {checkpoint}'
            if key in done:
                print(f'skip {label}: already in results.csv '
                      f'({number} of {pairs})')
                continue
            work_dir = osp.join(args.out_dir, 'runs',
                                run_dir_name(config, checkpoint, key))
            print(f'run  {label} ({number} of {pairs}) ...', flush=True)
            # The run folders included, before this run writes in one.
            refuse_links(args.out_dir, '--out-dir')
            start = time.perf_counter()
            record = run_one(
                test_command(config, checkpoint, work_dir, options,
                             args.nproc), work_dir)
            if record is None:
                failed.append(label)
                continue
            # A row of the same pair with an older checkpoint or config
            # content goes.
            rows = [row for row in rows if run_key(row)[:4] != key[:4]]
            rows.append(
                table_row(record, config, checkpoint, data_root, cfg_options,
                          work_dir, digest, config_digest))
            done.add(key)
            save_table(args.out_dir, rows)
            metrics = record['metrics']
            if 'accuracy/top1' in metrics:
                shown = f'top-1 {metrics["accuracy/top1"]:.2f}'
            else:
                shown = f'mIoU {metrics["mIoU"]:.2f}'
            print(f'     {shown} ({time.perf_counter() - start:.0f} s)')
    save_table(args.out_dir, rows)
    print(f'results: {osp.join(args.out_dir, "results.md")} and '
          f'results.csv ({len(rows)} runs)')
    if failed:
        print(f'{len(failed)} run(s) failed: {"; ".join(failed)}')
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except DataFileError as e:  # a symbolic link where the suite writes
        sys.exit(f'error: {e}')
