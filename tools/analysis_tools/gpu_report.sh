#!/usr/bin/env bash
# GroupViT GPU report in one command: correctness (CUDA against CPU on the
# reference fixture, fp16/bf16 against fp32), then throughput (fp32, fp16,
# bf16, ours against transformers, onnxruntime's CUDA provider when
# installed). Writes outputs/gpu_report/report.json and report.md. Then
# training throughput: one pretraining step at 256 images per GPU, fp32 and
# AMP fp16/bf16, ours against plain PyTorch layers (images/s per GPU, peak
# memory), written to outputs/gpu_report/train.json.
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
