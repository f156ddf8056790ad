#!/usr/bin/env bash
# Multi-process training: tools/dist_train.sh CONFIG NPROC [ARGS]
# Uses NCCL on GPUs and gloo on CPU-only machines (see tools/train.py).
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
# The environment of tools/quickstart.sh when there is one (VENV, default
# .venv in the repository), else the python on PATH.
VENV=${VENV:-"$(dirname "$0")/../.venv"}
PYTHON=python
[ -x "$VENV/bin/python" ] && PYTHON="$VENV/bin/python"

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC --master_port=$PORT \
    $(dirname "$0")/train.py $CONFIG --launcher pytorch ${@:3}
