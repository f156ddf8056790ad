# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""docs/robustness.md is the one table of bad inputs, each row with the
tests that hold it: every test it names must exist."""
import os.path as osp
import re

from tests.conftest import REPO

# `test_x/test_y.py::test_z[...]`, `test_y.py (every test)` or `::test_z`
# (a test of the file named last in the row).
REFERENCE = re.compile(
    r'`((?:test_\w+/)*test_\w+\.py)?(?:::(test_\w+))?[^`]*`')


def named_tests():
    with open(osp.join(REPO, 'docs', 'robustness.md'), encoding='utf-8') as f:
        rows = [line for line in f if line.startswith('|')]
    for row in rows:
        last = None
        for path, name in REFERENCE.findall(row):
            last = path or last
            if (path or name) and last:
                yield row[:60], last, name


def test_every_test_the_table_names_exists():
    named = list(named_tests())
    assert len(named) > 100  # the table names its tests
    missing = []
    for row, path, name in named:
        file = osp.join(REPO, 'tests', path)
        if not osp.isfile(file):
            missing.append(f'{path} (row {row!r})')
            continue
        with open(file, encoding='utf-8') as f:
            if name and not re.search(rf'def {name}\b', f.read()):
                missing.append(f'{path}::{name} (row {row!r})')
    assert not missing, missing
