#!/usr/bin/env bash
# Validates all GPU code on a machine with an NVIDIA GPU and no Rust toolchain, from binaries
# built beforehand by scripts/gpu-bundle.sh (in gpu-bundle/). Sized for about 8 minutes on an
# H100; each step has its own time limit so one hang cannot eat the session. Writes a short
# results table last and keeps the full log in gpu-check.log. Record each run in
# docs/GPU-RUNS.md.
#
# Steps: the doctor (driver, NVRTC, every kernel compiled for the GPU); every kernel test and
# the CUDA engine against the CPU engine; check-golden --device cuda on every fixture; the GPU
# benchmark (ms/iteration at crops 64 and 128, peak memory, render MP/s, per-op times); a
# 300-iteration fit (crop 128, batch 16) on the Étretat pair; a tiled render of its result
# (tiles 512). The fit's run directory (metrics, snapshots, result.png, render-512.png) is
# copied to gpu-check-run/ for the record.
#
# QUICK=1 shortens the run (fit 60 iterations, bench 2 iterations without per-op times) for a
# first try when device time is short.
set -uo pipefail
cd "$(dirname "$0")/.."
FIT_ITERS=300; BENCH_ARGS=(--iters 3 --profile)
if [ "${QUICK:-0}" = 1 ]; then FIT_ITERS=60; BENCH_ARGS=(--iters 2); fi
B=gpu-bundle
log=gpu-check.log
: > "$log"
results=()
step() { # <name> <time limit s> <command...>
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" >> "$log"
  local t0=$(date +%s.%N)
  timeout "$limit" "$@" >> "$log" 2>&1; local rc=$?
  local t1=$(date +%s.%N)
  case $rc in 0) r=ok;; 124) r=TIMEOUT;; *) r="FAIL($rc)";; esac
  results+=("$(printf '%-40s %-9s %7.1f s' "$name" "$r" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")")
}
# Unpack the bundle once (gpu-bundle.sh packs it to fit the carry limit).
if [ -f "$B/payload.tar.gz" ] && [ ! -x "$B/sincut" ]; then
  tar xzf "$B/payload.tar.gz" -C "$B" || { echo "cannot unpack $B/payload.tar.gz"; exit 1; }
fi
# The shared folder (fixtures, pictures): $SINCUT_SHARED, ./shared, ../shared, else the bundle's.
SHARED=""
for d in "${SINCUT_SHARED:-}" shared ../shared; do
  if [ -n "$d" ] && [ -d "$d/golden" ] && [ -d "$d/data" ]; then SHARED=$d; break; fi
done
GOLDEN=${SHARED:+$SHARED/golden}; GOLDEN=${GOLDEN:-$B/golden}
DATA=${SHARED:+$SHARED/data}; DATA=${DATA:-$B/data}
echo "fixtures: $GOLDEN ($(ls "$GOLDEN" 2>/dev/null | tr '\n' ' ')); pictures: $DATA" >> "$log"
# Without NVRTC on this machine, run the cubins compiled beforehand (sm_90 only).
if ! ldconfig -p 2>/dev/null | grep -q libnvrtc && [ -d "$B/cubins-sm_90" ]; then
  export SINCUT_PREBUILT_CUBINS="$PWD/$B/cubins-sm_90"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$log" 2>&1
run=$(mktemp -d)/run
step "doctor (compile all kernels)" 120 "$B/sincut" doctor
step "kernel + engine tests vs CPU" 180 "$B/cuda_kernels" --test-threads=1 --nocapture
# c128-b2-g4-d2-w64's trajectory is expected to fail (its step to pass): it leaves its bounds
# after a 3e-6 perturbation even on the CPU engine (docs/CUDA.md, "CPU emulator").
for fx in "$GOLDEN"/*/; do
  step "check-golden --device cuda $(basename "$fx")" 90 "$B/sincut" check-golden --device cuda "$fx"
done
# The benchmark before the fit: its timings are wanted even if a slow fit runs out of time.
step "bench (train, memory, render)" 150 "$B/bench_gpu" "${BENCH_ARGS[@]}"
# Checkpoints every 50 iterations, so that a fit cut short still leaves one to render.
step "fit $FIT_ITERS iters crop 128 b16" 300 "$B/sincut" fit "$DATA/monet-etretat-painting.jpg" "$DATA/etretat-photo.jpg" \
  --preset default --iters "$FIT_ITERS" --checkpoint-every 50 --device cuda --out "$run"
step "render --tiles 512" 60 "$B/sincut" render "$run" --tiles 512 --device cuda --output "$run/render-512.png"
# Optional (issue 5): the official implementation's figures at the same configurations, when
# OFFICIAL_CUT_DIR names a copy of its code (never committed; see docs/OFFICIAL-BENCH.md).
# JSON per run in $OFFICIAL_BENCH_OUT (default: $OUT/official-bench, else gpu-check-official/).
if [ -n "${OFFICIAL_CUT_DIR:-}" ] && [ -d "${OFFICIAL_CUT_DIR:-}" ]; then
  ob_out=${OFFICIAL_BENCH_OUT:-${OUT:+$OUT/official-bench}}
  ob_out=${ob_out:-gpu-check-official}
  mkdir -p "$ob_out"
  # (An array, not a function: `timeout` in step runs programs only.)
  ob=(python3 scripts/official_bench.py --official "$OFFICIAL_CUT_DIR" --source "$DATA/monet-etretat-painting.jpg"
    --target "$DATA/etretat-photo.jpg" --device cuda --iters 30 --warmup 5)
  step "official crop 128 b16 + render 16MP" 240 "${ob[@]}" --crop 128 --batch 16 --render-mp 16 \
    --json "$ob_out/official-c128-b16.json"
  step "official crop 64 b16 (official geometry)" 120 "${ob[@]}" --crop 64 --batch 16 \
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
grep -E "worst element|skipped|PASS|FAIL|fixtures pass|error" "$log" | head -60
grep -E "^iter |ms/iter|MP/s|peak GPU|^\|" "$log" | tail -20
grep -A14 "per-op times" "$log" | head -34
rm -rf gpu-check-run && cp -r "$run" gpu-check-run 2>/dev/null && rm -f gpu-check-run/checkpoint.safetensors
printf '%s\n' "${results[@]}"
