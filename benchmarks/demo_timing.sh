#!/usr/bin/env bash
# Wall time of `sdlab demo` with its defaults, pretraining included (cold organism cache).
# Usage: bash benchmarks/demo_timing.sh [OUT_DIR] [extra sdlab demo args...]
set -euo pipefail
out=${1:-runs/demo-timing}
shift || true
cache=$(mktemp -d)
start=$(date +%s)
SDLAB_ORGANISM_CACHE="$cache" sdlab demo --out "$out" "$@"
end=$(date +%s)
echo "sdlab demo wall time: $((end - start)) s (cold cache, $(nproc) CPU cores)"
