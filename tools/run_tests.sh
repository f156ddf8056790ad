#!/usr/bin/env bash
# Run the test suite in the environment made by tools/quickstart.sh, in
# TEST_WORKERS processes (pytest-xdist; default 2; 0: this process only).
# Tests that need ../shared/fixtures are skipped, with the reason, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
# -rs: the reason of every skipped test is printed at the end.
exec "${VENV:-.venv}/bin/python" -m pytest tests -rs -n "${TEST_WORKERS:-2}" "$@"
