#!/usr/bin/env bash
# Check the code style (flake8, isort, yapf; settings in setup.cfg) in the
# environment made by tools/quickstart.sh, installing the checkers first.
# With --fix, format the code instead of only checking it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
"$PY" -m pip install -q -r requirements/lint.txt
PATHS=(mmseg_groupvit groupvit_common configs tools tests setup.py _mmseg_groupvit_mmcv_shim.py)
if [[ "${1:-}" == "--fix" ]]; then
    "$PY" -m isort -q "${PATHS[@]}"
    "$PY" -m yapf -i -r "${PATHS[@]}"
fi
"$PY" -m flake8 "${PATHS[@]}"
"$PY" -m isort --check-only -q "${PATHS[@]}"
"$PY" -m yapf --diff -r "${PATHS[@]}"
echo "style: flake8, isort and yapf pass"
