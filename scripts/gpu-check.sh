#!/usr/bin/env bash
# Validates all GPU code on a machine with an NVIDIA GPU and no Rust toolchain, from binaries
# built beforehand by scripts/gpu-bundle.sh (in gpu-bundle/). Writes a short table last and
# keeps the full log in gpu-check.log. Record each run's results in docs/GPU-RUNS.md.
#
# Today the CUDA engine has its kernels only (the GPU training step and render come next):
# this runs the doctor (GPU, driver, NVRTC, every kernel compiled for the GPU's architecture)
# and every kernel test against the CPU engine. Later stages are added here as they land.
set -uo pipefail
cd "$(dirname "$0")/.."
B=gpu-bundle
log=gpu-check.log
: > "$log"
results=()
step() {
  local name=$1; shift
  local t0=$(date +%s.%N)
  if "$@" >> "$log" 2>&1; then r=ok; else r=FAIL; fi
  local t1=$(date +%s.%N)
  results+=("$(printf '%-34s %-5s %6.1f s' "$name" "$r" "$(echo "$t1 - $t0" | bc)")")
}
# Without NVRTC on this machine, run the cubins compiled beforehand (sm_90 only).
if ! ldconfig -p 2>/dev/null | grep -q libnvrtc && [ -d "$B/cubins-sm_90" ]; then
  export SINCUT_PREBUILT_CUBINS="$PWD/$B/cubins-sm_90"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$log" 2>&1
step "doctor (compile all kernels)" "$B/sincut" doctor
step "kernel tests vs CPU" "$B/cuda_kernels" --test-threads=1 --nocapture
# Optional (issue 5): the official implementation's figures at the same configurations, when
# OFFICIAL_CUT_DIR names a copy of its code (never committed; see docs/OFFICIAL-BENCH.md).
# JSON per run in $OFFICIAL_BENCH_OUT (default: $OUT/official-bench, else gpu-check-official/).
if [ -n "${OFFICIAL_CUT_DIR:-}" ] && [ -d "${OFFICIAL_CUT_DIR:-}" ]; then
  ob_out=${OFFICIAL_BENCH_OUT:-${OUT:+$OUT/official-bench}}
  ob_out=${ob_out:-gpu-check-official}
  mkdir -p "$ob_out"
  ob() { python3 scripts/official_bench.py --official "$OFFICIAL_CUT_DIR" --source data/painting.jpg \
    --target data/photo.jpg --device cuda --iters 30 --warmup 5 "$@"; }
  step "official crop 128 b16 + render 16MP" ob --crop 128 --batch 16 --render-mp 16 \
    --json "$ob_out/official-c128-b16.json"
  step "official crop 64 b16 (official geometry)" ob --crop 64 --batch 16 \
    --json "$ob_out/official-c64-b16.json"
  for f in "$ob_out"/official-c128-b16.json "$ob_out"/official-c64-b16.json; do
    [ -f "$f" ] || continue
    results+=("$(python3 - "$f" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = r["config"]; t = r.get("train", {}); s = []
s.append("official c%d b%d: %.1f ms/iter (median %.1f), peak %.0f MiB alloc / %.0f reserved"
         % (c["crop"], c["batch"], t.get("mean_ms", float("nan")), t.get("median_ms", float("nan")),
            t.get("peak_alloc_mib", float("nan")), t.get("peak_reserved_mib", float("nan"))))
g = r.get("render")
if g:
    s.append("official render %dx%d: %s" % (g["width"], g["height"], "OUT OF MEMORY" if g["oom"] else
             "%.0f ms (first %.0f), peak %.0f MiB alloc" % (g.get("median_ms", g["first_ms"]),
             g["first_ms"], g.get("peak_alloc_mib", float("nan")))))
print("\n".join(s))
PY
)")
  done
fi
echo "== gpu-check: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
grep -E "worst|skipped" "$log" | head -40
printf '%s\n' "${results[@]}"
