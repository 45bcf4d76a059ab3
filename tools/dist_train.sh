#!/usr/bin/env bash
# Multi-process training through torchrun:
#   tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py options...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and optionally PORT) on every node, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh CONFIG 8
# On machines without CUDA the processes train on CPUs with the gloo backend (NUM_PROCS processes).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NUM_PROCS [tools/train.py options...]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG=$1
NPROC=$2
shift 2
exec "$HERE/_torchrun.sh" "$NPROC" "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
