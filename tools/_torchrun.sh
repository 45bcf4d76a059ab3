#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: run a tool in NUM_PROCS processes per node through torchrun.
#   tools/_torchrun.sh NUM_PROCS TOOL.py [args...]
# Multi-node through NNODES, NODE_RANK, MASTER_ADDR and PORT; PYTHON picks the interpreter (default: the repo's .venv).
set -euo pipefail
NPROC=$1
shift
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$( [ -x "$HERE/../.venv/bin/python" ] && echo "$HERE/../.venv/bin/python" || echo python )}"
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" "$@"
