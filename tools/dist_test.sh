#!/usr/bin/env bash
# Multi-process testing through torchrun:
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py options...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and optionally PORT) on every node, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_test.sh CONFIG CHECKPOINT 8
# On machines without CUDA the processes test on CPUs with the gloo backend (NUM_PROCS processes).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [tools/test.py options...]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$( [ -x "$HERE/../.venv/bin/python" ] && echo "$HERE/../.venv/bin/python" || echo python )}"
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
