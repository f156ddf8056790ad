#!/usr/bin/env bash
# Set up everything on a fresh machine (Python 3.11+), then segment a real
# photo (outputs/demo/) and evaluate zero-shot on the VOC val photos shipped
# in samples/ (work_dirs/quickstart/).
#
#   bash tools/quickstart.sh [CHECKPOINT | --random-weights]
#
# Creates .venv/ (reused when present) with the CPU build of PyTorch 2.13,
# MMSegmentation 1.2.2 and this package (docs/installation.md). Without
# CHECKPOINT (any form tools/test.py takes) the config's published weights
# are fetched once (tools/fetch_weights.py); offline, or with
# --random-weights, it runs with random weights and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_python() {  # $1 must run as Python 3.11+; $2: the fix
    if ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        2>/dev/null; then
        echo "error: $1 did not run as Python 3.11 or newer, which this" \
            "package needs; $2." >&2
        exit 1
    fi
}
if [ ! -x "$VENV/bin/python" ]; then
    need_python "$PYTHON" "run with PYTHON=python3.11 (or newer)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
need_python "$PY" "delete $VENV, then run with PYTHON=python3.11 (or newer)"
"$PY" -m pip install --quiet --upgrade pip 'setuptools<81' wheel
"$PY" -m pip install --quiet 'torch==2.13.0'
"$PY" -m pip install --quiet -e '.[lite,tests]'

DEMO_ARGS=()
TEST_ARGS=()
if [ "${1:-}" = "--random-weights" ]; then
    DEMO_ARGS=(--random-weights)
    TEST_ARGS=(--random-weights)
elif [ $# -ge 1 ]; then
    DEMO_ARGS=(--checkpoint "$1")
    TEST_ARGS=("$1")
else
    # Status 2: the weights could not be had (its error line says why and
    # how to place the file by hand); any other failure, a download whose
    # bytes are not what the release's name promises included, stops here.
    STATUS=0
    "$PY" -W ignore tools/fetch_weights.py configs/groupvit_voc.py || STATUS=$?
    if [ "$STATUS" -ne 0 ] && [ "$STATUS" -ne 2 ]; then
        exit "$STATUS"
    fi
fi
if [ "${STATUS:-0}" -eq 2 ]; then
    echo "warning: the published weights could not be had (see the error" \
        "above); the demo and the evaluation run with random weights" \
        "instead, and say so." >&2
    DEMO_ARGS=(--random-weights)
    TEST_ARGS=(--random-weights)
fi
"$PY" -W ignore tools/demo.py samples/images/groupvit_demo_voc.jpg \
    --vocab "dog,plant,flower pot,chair,floor,curtain" \
    --show overlay,prediction,groups,panel --out outputs/demo \
    "${DEMO_ARGS[@]+"${DEMO_ARGS[@]}"}"
# The main job: zero-shot PASCAL VOC evaluation, on the 25 real val photos
# shipped in samples/ (the full set: README, "Evaluate zero-shot").
"$PY" -W ignore tools/test.py configs/groupvit_voc.py \
    "${TEST_ARGS[@]+"${TEST_ARGS[@]}"}" --work-dir work_dirs/quickstart \
    --cfg-options \
    test_dataloader.dataset.data_root=samples/voc2012_sample/VOCdevkit/VOC2012
