#!/usr/bin/env bash
# Multi-process evaluation: tools/dist_test.sh CONFIG [CHECKPOINT] NPROC [ARGS]
# Without CHECKPOINT the config's weights (load_from) are used. Uses NCCL on
# GPUs and gloo on CPU-only machines (see tools/test.py).
CONFIG=$1
if [[ "$2" =~ ^[0-9]+$ ]]; then  # CONFIG NPROC [ARGS]
    CHECKPOINT=
    NPROC=$2
    shift 2
else
    CHECKPOINT=$2
    NPROC=$3
    shift 3
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
# The environment of tools/quickstart.sh when there is one (VENV, default
# .venv in the repository), else the python on PATH.
VENV=${VENV:-"$(dirname "$0")/../.venv"}
PYTHON=python
[ -x "$VENV/bin/python" ] && PYTHON="$VENV/bin/python"

# torchrun's own default, set here so that it does not print a notice
# about it; set OMP_NUM_THREADS to use more threads per process.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC --master_port=$PORT \
    $(dirname "$0")/test.py $CONFIG $CHECKPOINT --launcher pytorch "$@"
