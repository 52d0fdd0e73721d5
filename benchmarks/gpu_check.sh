#!/usr/bin/env bash
# The GPU check: one script for a machine with one CUDA GPU and no network (see benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh [OUT_DIR]        -> OUT_DIR/gpu_check.json (default: $OUT or ./gpu_check)
# It installs the project from this checkout without touching the network (the machine's torch,
# transformers and accelerate are used as they are), builds random-init Qwen3 models from
# configs/models/*.json, and prints one JSON object. Without a GPU it prints {"skipped": ...}.
# Extra arguments after OUT_DIR go to gpu_check.py (e.g. --parts update --tiny).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_check}}"
shift || true
mkdir -p "$out"
PY="${PYTHON:-python3}"
# Offline install: no build isolation (it would download setuptools), no dependencies (they are
# the machine's own); if even that fails, run from the checkout.
$PY -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec $PY benchmarks/gpu_check.py --out "$out/gpu_check.json" "$@"
