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
echo "== gpu-check: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
grep -E "worst|skipped" "$log" | head -40
printf '%s\n' "${results[@]}"
