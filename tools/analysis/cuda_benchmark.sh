#!/usr/bin/env bash
# The GPU benchmark in one command: L²ViT-T against Swin-T on one CUDA device, in fp32 and in bf16 autocast, for
# inference, the backbone training step (with and without with_cp), the whole Mask R-CNN training iteration and a
# profile of the training step, then docs/benchmarks.md's sections for them.
#
#     tools/analysis/cuda_benchmark.sh [OUT_DIR]      # default work_dirs/benchmark_cuda
#
# Every run is tools/analysis/benchmark.py (see its --help); each precision writes OUT_DIR/<precision>/benchmark.json
# and the tables go to OUT_DIR/<precision>/log.txt. Add the JSON files to docs/benchmarks/ and to the --from-json list
# in docs/benchmarks.md's header to put them on the page. Needs the project's stack with mmcv's CUDA ops
# (FORCE_CUDA=1 make setup on a GPU machine). On an H100 both precisions take a few minutes.
#
# Environment (for other machines or a quick check): PYTHON (default .venv/bin/python if present, else python3),
# DEVICE (cuda), SIZES ("512 800x1333 1536"), MODES ("infer train train-cp detector-train"), PROFILE (800x1333;
# empty: no profile), PRECISIONS ("fp32 bf16"), REPEATS (10), WARMUP (3), BUDGET (60).
set -euo pipefail

out=${1:-work_dirs/benchmark_cuda}
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$([ -x "$root/.venv/bin/python" ] && echo "$root/.venv/bin/python" || echo python3)}
device=${DEVICE:-cuda}
read -r -a sizes <<< "${SIZES:-512 800x1333 1536}"
read -r -a modes <<< "${MODES:-infer train train-cp detector-train}"
read -r -a precisions <<< "${PRECISIONS:-fp32 bf16}"
profile=${PROFILE-800x1333}

jsons=()
for precision in "${precisions[@]}"; do
    case $precision in
        fp32) autocast=() ;;
        bf16|fp16) autocast=(--autocast "$precision") ;;
        *) echo "error: PRECISIONS: unknown precision '$precision'; use fp32, bf16 or fp16" >&2; exit 2 ;;
    esac
    mkdir -p "$out/$precision"
    echo "== $precision: $out/$precision" >&2
    "$python" "$root/tools/analysis/benchmark.py" --device "$device" --models l2vit-t swin-t \
        --sizes "${sizes[@]}" --modes "${modes[@]}" ${profile:+--profile "$profile"} "${autocast[@]}" \
        --repeats "${REPEATS:-10}" --warmup "${WARMUP:-3}" --budget "${BUDGET:-60}" --out-dir "$out/$precision" \
        > "$out/$precision/log.txt"
    jsons+=("$out/$precision/benchmark.json")
done
"$python" "$root/tools/analysis/benchmark.py" --from-json "${jsons[@]}" --docs "$out/benchmarks.md" > /dev/null
echo "wrote ${jsons[*]} and $out/benchmarks.md" >&2
