#!/usr/bin/env bash
# Run the test suite in the environment made by tools/quickstart.sh.
# Tests that need the reference fixtures in ../shared/fixtures are reported
# as skipped, with the reason, when that folder is absent.
# The tests run in TEST_WORKERS processes (pytest-xdist; default 2, the
# cores of the reference machine, which share them: tests/conftest.py). Most
# of the suite's time is tool runs in subprocesses, which one process would
# wait for one at a time. TEST_WORKERS=0 runs everything in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
# -rs: the reason of every skipped test is printed at the end.
exec "${VENV:-.venv}/bin/python" -m pytest tests -rs -n "${TEST_WORKERS:-2}" "$@"
