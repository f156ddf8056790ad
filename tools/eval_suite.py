# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluate configs x checkpoints with ``tools/test.py`` into one table
(``OUT_DIR/results.md``, ``.csv``), resuming (docs/evaluation.md)."""
import argparse
import csv
import glob
import hashlib
import json
import os
import os.path as osp
import re
import signal
import socket
import subprocess
import sys
import time
from io import StringIO
from typing import List, Optional, Sequence, Tuple

from groupvit_common.errors import (DataFileError, error_line,
                                    exit_on_user_error, interruptible, shown)
from groupvit_common.files import (check_out_dir, file_sha256, open_work_file,
                                   read_json, read_text, refuse_links)
from groupvit_common.tool_options import add_cfg_options, read_cfg_option
from mmseg_groupvit.evaluation.protocol import format_protocol
from mmseg_groupvit.utils.console import progress

TEST_PY = osp.join(osp.dirname(osp.abspath(__file__)), 'test.py')
COLUMNS = [
    'config', 'dataset', 'classes', 'resize', 'window', 'bg_thresh',
    'templates', 'checkpoint', 'mIoU', 'mAcc', 'aAcc', 'top1', 'top5',
    'images', 'seconds', 'vocabulary', 'data_root', 'cfg_options', 'work_dir',
    'checkpoint_sha256', 'config_sha256'
]
MARKDOWN_COLUMNS = COLUMNS[:COLUMNS.index('seconds') + 1]
# A finished run: the pair (first four) and its files' content.
KEY_COLUMNS = ('config', 'checkpoint', 'data_root', 'cfg_options',
               'checkpoint_sha256', 'config_sha256')
IMAGES_LINE = re.compile(r'^images +(\d+)(?: \((\d+) already)?', re.M)
DATA_ROOT = 'test_dataloader.dataset.data_root'


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
                sys.exit(error_line(f'no config matches {pattern!r}.'))
        elif osp.isfile(pattern):
            matches = [pattern]
        else:
            sys.exit(error_line(f'config not found: {pattern}.'))
        configs += [osp.normpath(p) for p in matches]
    return list(dict.fromkeys(configs))


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def run_key(row: dict) -> Tuple[str, ...]:
    """The row's key columns, its config and checkpoint as real absolute
    paths (from the working directory: a row written there by any spelling
    matches)."""
    values = [str(row.get(k, '')) for k in KEY_COLUMNS]
    return tuple(
        osp.realpath(value) if value and i < 2 else value
        for i, value in enumerate(values))


def inspect_config(config: str, options: Sequence[str]) -> Tuple[str, bool]:
    """SHA-256 of the config resolved with ``options`` and of the files it
    names (of its bytes when it does not resolve), and whether it builds a
    classifier (run in one process)."""
    from mmseg_groupvit.evaluation import is_classification_config
    from mmseg_groupvit.evaluation.progress import named_file_digests
    from mmseg_groupvit.utils.config_file import load_config
    classification = False
    try:
        # Not read_config: a config failing its checks gets a key too.
        cfg = load_config(config)
        if options:  # read as tools/test.py's --cfg-options reads them
            parser = argparse.ArgumentParser()
            add_cfg_options(parser)
            cfg.merge_from_dict(
                parser.parse_args(['--cfg-options', *options]).cfg_options)
        text = json.dumps(
            [cfg.to_dict(), named_file_digests(cfg.model)],
            sort_keys=True,
            default=repr)
        classification = is_classification_config(cfg)
    except Exception:  # noqa: B902 (any failure: the run reports it)
        with open(config, 'rb') as f:
            text = f.read().hex() + json.dumps(list(options))
    return hashlib.sha256(text.encode('utf-8')).hexdigest(), classification


def save_table(out_dir: str, rows: Sequence[dict]) -> None:
    """Write results.csv and results.md, each through a temporary file."""
    buf = StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows({k: row.get(k, '') for k in COLUMNS} for row in rows)
    lines = [
        '<!-- Written by tools/eval_suite.py; every column is in '
        'results.csv. -->', '| ' + ' | '.join(MARKDOWN_COLUMNS) + ' |',
        '|' + '|'.join('---' for _ in MARKDOWN_COLUMNS) + '|'
    ] + [
        '| ' + ' | '.join(
            str(row.get(k, '')).replace('|', '\\|')
            for k in MARKDOWN_COLUMNS) + ' |' for row in rows
    ]
    for name, text in (('results.csv', buf.getvalue()),
                       ('results.md', '\n'.join(lines) + '\n')):
        with open_work_file(out_dir, f'{name}.tmp', 'w') as f:
            f.write(text)
        os.replace(osp.join(out_dir, f'{name}.tmp'), osp.join(out_dir, name))


def test_command(config: str, checkpoint: str, work_dir: str,
                 options: Sequence[str], nproc: int) -> List[str]:
    """The ``tools/test.py`` command line of one run."""
    args = [config, checkpoint, '--work-dir', work_dir]
    if options:
        args += ['--cfg-options', *options]
    if nproc <= 1:
        return [sys.executable, TEST_PY, *args]
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
        f'--master_port={port}', TEST_PY, *args, '--launcher', 'pytorch'
    ]


def run_dir_name(config: str, checkpoint: str, key: Tuple[str, ...]) -> str:
    digest = hashlib.sha1('\n'.join(key).encode()).hexdigest()[:8]
    stem = osp.splitext(osp.basename(checkpoint))[0]
    return f'{config_name(config)}__{stem}__{digest}'


def run_one(command: List[str], work_dir: str) -> Optional[dict]:
    """Run one evaluation, with a progress bar over its images (its log's
    ``images`` line, its progress records); its ``results.json``, or None if
    it failed."""
    results = osp.join(work_dir, 'results.json')
    if osp.exists(results):
        os.remove(results)
    log = osp.join(work_dir, 'suite_run.log')
    bar, shown = None, 0

    def update():
        nonlocal bar, shown
        if bar is None:
            with open(log, errors='replace') as f:
                match = IMAGES_LINE.search(f.read())
            if not match:
                return
            total = int(match.group(1)) - int(match.group(2) or 0)
            bar = progress(total, 'test', 'images').__enter__()
        done = 0
        for path in glob.glob(osp.join(work_dir, 'progress', 'rank*.jsonl')):
            with open(path, 'rb') as f:
                done += f.read().count(b'\n')
        if done > shown:
            bar.advance(done - shown)
            shown = done

    with open_work_file(work_dir, 'suite_run.log', 'w') as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                update()
            if proc.returncode == 0:
                update()
        finally:
            try:  # Ctrl-C in a terminal reached the run too
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)  # as tools/test.py expects
                proc.wait()
            if bar is not None:
                bar.__exit__(None, None, None)
    if proc.returncode != 0 or not osp.isfile(results):
        with open(log) as f:
            lines = f.read().strip().splitlines()
        # tools/test.py reports bad input on one 'error: ' line.
        errors = [line for line in lines if line.startswith('error: ')]
        shown = list(dict.fromkeys(errors))[:2]
        print('  failed (exit code %d), see %s:\n    %s' %
              (proc.returncode, log, '\n    '.join(shown or lines[-5:])))
        return None
    return read_json(results)


@interruptible(then='run the same command again to go on (the runs in '
               'results.csv are skipped, the one interrupted starts over)')
def main(argv=None) -> int:
    args = parse_args(argv)
    configs = expand_configs(args.configs)
    checkpoints = [osp.normpath(c) for c in args.checkpoints]
    missing = [c for c in checkpoints if not osp.isfile(c)]
    if missing:
        sys.exit(
            error_line(f'checkpoint not found: {", ".join(missing)}. '
                       f'Convert the published weights with '
                       f'tools/convert_weights.py.'))
    if args.nproc < 1:
        sys.exit(error_line('--nproc must be at least 1.'))
    names, data_roots = {config_name(c) for c in configs}, {}
    for item in args.data_root:  # CONFIG=PATH
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            sys.exit(
                error_line(f'--data-root expects CONFIG=PATH (the config '
                           f'file name without .py), got {item!r}.'))
        if name not in names:
            sys.exit(
                error_line(f'--data-root {item!r}: {name!r} is not one of '
                           f'the configs ({", ".join(sorted(names))}).'))
        try:  # spaces, commas, quotes, brackets, numbers
            read = repr(read_cfg_option(DATA_ROOT, path))
            read = f'would read the path as {read}'
        except ValueError as e:
            read = f'cannot pass it ({str(e).split("; ")[0]})'
        if read != f'would read the path as {path!r}':
            sys.exit(
                error_line(f'--data-root {item!r}: tools/test.py\'s '
                           f'--cfg-options {read}; move or link the data to '
                           f'a path without spaces, commas, quotes or '
                           f'brackets.'))
        data_roots[name] = path
    check_out_dir(args.out_dir, '--out-dir')
    table = osp.join(args.out_dir, 'results.csv')
    rows = []
    if osp.lexists(table):
        reader = csv.DictReader(StringIO(read_text(table, what='table')))
        try:
            rows = list(reader)
            # Earlier versions wrote fewer of the columns, the first four
            # keys always.
            fields = set(reader.fieldnames or COLUMNS)
            if not set(KEY_COLUMNS[:4]) <= fields <= set(COLUMNS):
                raise csv.Error(f'its columns: {shown(reader.fieldnames)}')
        except csv.Error as e:
            raise DataFileError(
                f'{table} is not a results table of this tool ({e}); move it '
                f'away or use a fresh --out-dir.') from None
    done = {run_key(row) for row in rows}
    failed, number = [], 0
    pairs = len(checkpoints) * len(configs)
    for checkpoint in checkpoints:
        digest = file_sha256(checkpoint)
        for config in configs:
            number += 1
            data_root = data_roots.get(config_name(config), '')
            options = list(args.cfg_options)
            if data_root:
                options.append(f'{DATA_ROOT}={data_root}')
            config_digest, classification = inspect_config(config, options)
            columns = dict(
                config=config,
                checkpoint=checkpoint,
                data_root=data_root,
                cfg_options=' '.join(args.cfg_options),
                checkpoint_sha256=digest,
                config_sha256=config_digest)
            key = run_key(columns)
            label = f'{config} with {checkpoint}'
            if key in done:
                print(f'skip {label}: already in results.csv '
                      f'({number} of {pairs})')
                continue
            work_dir = osp.join(args.out_dir, 'runs',
                                run_dir_name(config, checkpoint, key))
            print(f'run  {label} ({number} of {pairs}) ...', flush=True)
            refuse_links(args.out_dir, '--out-dir')
            start = time.perf_counter()
            record = run_one(
                test_command(config, checkpoint, work_dir, options,
                             1 if classification else args.nproc), work_dir)
            if record is None:
                failed.append(label)
                continue
            # The pair's row of older file content goes.
            rows = [row for row in rows if run_key(row)[:4] != key[:4]]
            metrics = record['metrics']
            row = dict(
                columns,
                work_dir=work_dir,
                dataset=record['protocol']['dataset'],
                images=record['images'],
                seconds=f'{record["seconds"]:.1f}',
                **format_protocol(record['protocol']))
            for name in ('mIoU', 'mAcc', 'aAcc', 'top1', 'top5'):
                value = metrics.get(name, metrics.get(f'accuracy/{name}'))
                row[name] = '-' if value is None else f'{value:.2f}'
            rows.append(row)
            done.add(key)
            save_table(args.out_dir, rows)
            score = (f'top-1 {metrics["accuracy/top1"]:.2f}' if 'accuracy/top1'
                     in metrics else f'mIoU {metrics["mIoU"]:.2f}')
            print(f'     {score} ({time.perf_counter() - start:.0f} s)')
    save_table(args.out_dir, rows)
    print(f'results: {osp.join(args.out_dir, "results.md")} and '
          f'results.csv ({len(rows)} runs)')
    if failed:
        print(f'{len(failed)} run(s) failed: {"; ".join(failed)}')
        return 1
    return 0


if __name__ == '__main__':
    with exit_on_user_error():  # a link where it writes, a foreign table
        sys.exit(main())
