#!/usr/bin/env bash
# Run the test suite in the environment made by tools/quickstart.sh.
# Tests that need the reference fixtures in ../shared/fixtures are reported
# as skipped, with the reason, when that folder is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
# -rs: the reason of every skipped test is printed at the end.
exec "${VENV:-.venv}/bin/python" -m pytest tests -rs "$@"
