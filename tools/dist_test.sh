#!/usr/bin/env bash
# Multi-process testing through torchrun (results are gathered across processes):
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py options...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and optionally PORT) on every node.
# On machines without CUDA the processes run on CPUs with the gloo backend.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS [tools/test.py options...]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
exec "$HERE/_torchrun.sh" "$NPROC" "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
