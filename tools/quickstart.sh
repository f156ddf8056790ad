#!/usr/bin/env bash
# Set up everything on a fresh machine (Python 3.8+, nothing else needed) and
# run zero-shot segmentation on a real photo shipped in samples/.
#
#   bash tools/quickstart.sh [CHECKPOINT | --random-weights]
#
# Creates .venv/ (reused when present), installs the CPU build of PyTorch
# 2.13, MMSegmentation 1.2.2 and this package (with mmcv-lite, see README,
# "Installation"), plus the test requirements, then writes the demo pictures
# to outputs/demo/. Without CHECKPOINT the config's published weights are
# downloaded once into torch hub's cache; CHECKPOINT may be any form
# tools/demo.py takes (a file of any architecture, a transformers folder, a
# URL, hf://OWNER/NAME). --random-weights runs offline with random weights,
# and the output says so; so does a run whose download fails (offline), after
# the error that says where to place the file by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip 'setuptools<81' wheel
"$PY" -m pip install --quiet 'torch==2.13.0'
"$PY" -m pip install --quiet -e '.[lite,tests]'

CKPT_ARGS=()
if [ "${1:-}" = "--random-weights" ]; then
    CKPT_ARGS=(--random-weights)
elif [ $# -ge 1 ]; then
    CKPT_ARGS=(--checkpoint "$1")
elif ! "$PY" -W ignore tools/fetch_weights.py configs/groupvit_voc.py; then
    echo "warning: the published weights could not be had (see the error" \
        "above); the demo runs with random weights instead, and its" \
        "pictures say so." >&2
    CKPT_ARGS=(--random-weights)
fi
"$PY" -W ignore tools/demo.py samples/images/groupvit_demo_voc.jpg \
    --vocab "dog,plant,flower pot,chair,floor,curtain" \
    --show overlay,prediction,groups,panel --out outputs/demo \
    "${CKPT_ARGS[@]+"${CKPT_ARGS[@]}"}"
