#!/usr/bin/env bash
# Create (or complete) the project's virtual environment with the tested OpenMMLab stack.
#
#   bash tools/install/setup_venv.sh [VENV_DIR]      (default: .venv at the repository root)
#
# Idempotent: every step checks what is already there, so a second run installs nothing.
# mmcv 2.1.0 has no wheel for torch 2.14, so it is built once from the PyPI sdist (with its C++/CPU ops, and CUDA
# ops when nvcc is present or FORCE_CUDA=1) and the wheel is cached under
#   ${L2VIT_CACHE:-~/.cache/l2vit}/mmcv-2.1.0/torch-<version>-<python tag>[-cuda]/
# keyed by torch version and Python, so it is never reused across torch versions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv}"
# Absolute from here on: the mmcv build below runs inside the unpacked sdist, where a relative path means nothing.
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
CONSTRAINTS="$ROOT/requirements/constraints.txt"
CACHE="${L2VIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/l2vit}"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

pin() { sed -n "s/^$1==//p" "$CONSTRAINTS"; }
have() { "$PY" - "$@" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split('==')
    try:
        if version(name).split('+')[0] != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PYEOF
}

if [ ! -x "$PY" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
  "${PIP[@]}" install -q --upgrade "pip>=24"
fi

TORCH="$(pin torch)"; TV="$(pin torchvision)"; MMCV="$(pin mmcv)"
if ! have "torch==$TORCH" "torchvision==$TV"; then
  echo "[setup] installing torch $TORCH + torchvision $TV"
  "${PIP[@]}" install -q "torch==$TORCH" "torchvision==$TV"
fi

if ! have "mmcv==$MMCV" || ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  CUDA_SUFFIX=""
  if [ "${FORCE_CUDA:-0}" = "1" ] || { command -v nvcc >/dev/null 2>&1 &&
      "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; }; then
    export FORCE_CUDA=1; CUDA_SUFFIX="-cuda"
  fi
  WHEELDIR="$CACHE/mmcv-$MMCV/torch-$TORCH-$PYTAG$CUDA_SUFFIX"
  WHEEL="$(ls "$WHEELDIR"/mmcv-"$MMCV"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$WHEEL" ]; then
    echo "[setup] building mmcv $MMCV from source against torch $TORCH (7-25 minutes on 2 cores)"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    # The sdist's setup.py needs an old setuptools (its pkg_resources use); the pinned one is put back below.
    "${PIP[@]}" install -q "setuptools<70" wheel ninja
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV"
    # torch >= 2.10 headers require C++20; the sdist hard-codes older standards.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    mkdir -p "$WHEELDIR"
    (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$PY" -m pip wheel --no-build-isolation --no-deps --no-cache-dir -w "$WHEELDIR" .)
    WHEEL="$(ls "$WHEELDIR"/mmcv-"$MMCV"-*.whl | head -n1)"
  else
    echo "[setup] using cached mmcv wheel $WHEEL"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL"
  # mmcv's own runtime requirements (the wheel was installed without resolving them).
  "${PIP[@]}" install -q -c "$CONSTRAINTS" addict mmengine numpy packaging Pillow pyyaml yapf opencv-python
fi

# torch wants setuptools >= 77; mmengine's `mmdet::`-style config bases need pkg_resources (gone in setuptools 81).
if ! have "setuptools==$(pin setuptools)"; then
  "${PIP[@]}" install -q "setuptools==$(pin setuptools)"
fi

if ! have "mmengine==$(pin mmengine)" "mmdet==$(pin mmdet)" "mmsegmentation==$(pin mmsegmentation)" \
    "mmpretrain==$(pin mmpretrain)" "ftfy==$(pin ftfy)" "regex==$(pin regex)" "pycocotools==$(pin pycocotools)"; then
  echo "[setup] installing the OpenMMLab stack"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" mmengine mmdet mmsegmentation mmpretrain ftfy regex pycocotools
fi

# l2vit/.mim (the configs, tools and model index in the package, linked by setup.py) is made by the editable install.
if ! "$PY" -c "import l2vit, mmdet_l2vit" 2>/dev/null || [ ! -e "$ROOT/l2vit/.mim/model-index.yml" ] ||
    ! have "pytest==$(pin pytest)" "pytest-xdist==$(pin pytest-xdist)" "flake8==$(pin flake8)" "isort==$(pin isort)" \
      "onnx==$(pin onnx)" "onnxruntime==$(pin onnxruntime)"; then
  echo "[setup] installing this project (editable) with its test, lint and deploy (ONNX) extras"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" --no-build-isolation -e "$ROOT[all,tests,lint,deploy]"
fi
# mim (`mim train mmdet CONFIG`, `mim test mmdet CONFIG --checkpoint CKPT`). Unconstrained, openmim's dataset
# downloader (opendatalab -> openxlab 0.1.x) would take setuptools down to 60.2 (torch needs >= 77) and requests to
# 2.28; the constraints pin openxlab 0.0.11, which asks for neither.
if ! have "openmim==$(pin openmim)"; then
  echo "[setup] installing openmim $(pin openmim) (the mim command)"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "openmim==$(pin openmim)"
fi
echo "[setup] $VENV is ready: $("$PY" -c 'import torch, mmcv, mmdet, mmseg, mmpretrain; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}")')"
