#!/usr/bin/env bash
# GroupViT GPU report in one command: correctness and inference throughput
# (gpu_report.py: outputs/gpu_report/report.json, report.md), then one
# pretraining step's throughput (pretrain_benchmark.py: train.json).
#
#   bash tools/analysis_tools/gpu_report.sh [CONFIG] [--checkpoint CKPT] [...]
#
# Without a GPU it is a dry run on the CPU (every step runs; no GPU figure).
# Other options: python tools/analysis_tools/gpu_report.py --help.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then
    PY=.venv/bin/python
fi
"$PY" tools/analysis_tools/gpu_report.py "$@"
"$PY" tools/analysis_tools/pretrain_benchmark.py --gpu-report \
    --out outputs/gpu_report/train.json
