#!/usr/bin/env bash
# Builds, on a machine with the Rust toolchain, everything scripts/gpu-check.sh runs on a GPU
# machine that has none, as gpu-bundle/payload.tar.gz (gpu-bundle/ is git-ignored; carry it to
# the GPU machine, where gpu-check.sh unpacks it). The payload holds:
#   sincut             the release binary (doctor, check-golden, fit, render)
#   cuda_kernels       the kernel tests (every kernel vs the CPU op, the CUDA engine vs the CPU engine)
#   bench_gpu          benches/gpu.rs (ms/iteration, peak GPU memory, render MP/s, per-op times)
#   cubins-sm_90/      kernels compiled beforehand, for a GPU machine without NVRTC
#   data/              the two pictures of ../shared/data (the 300-iteration fit)
#   golden/            the fixtures of ../shared/golden (the check prefers shared/ or ../shared/
#                      on the GPU machine when present)
# Compressed, it must stay under the 64 MiB a device run may carry (about 51 MiB today).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_MIB=${LIMIT_MIB:-62}
SHARED=${SINCUT_SHARED:-../shared}
rm -rf gpu-bundle && mkdir -p gpu-bundle/stage
S=gpu-bundle/stage
cargo build --release --quiet
cp target/release/sincut $S/
# The test and bench executables' paths are printed by cargo as JSON.
artifact() { # <cargo args...> : prints the executable of the one test/bench target built
  cargo "$@" --no-run --message-format=json 2>/dev/null | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] in (["test"], ["bench"]):
        print(m["executable"])'
}
cp "$(artifact test --release --test cuda_kernels)" $S/cuda_kernels
cp "$(artifact bench --bench gpu)" $S/bench_gpu
# The carry to the GPU machine is limited: drop debug info.
strip $S/sincut $S/cuda_kernels $S/bench_gpu
# Cubins for sm_90 in case the GPU machine has no NVRTC (scripts/gpu-check.sh points
# SINCUT_PREBUILT_CUBINS here when it finds none); needs NVRTC here (scripts/ci-nvrtc.sh).
if [ -n "${NVRTC_LIB:-}" ] || ldconfig -p | grep -q libnvrtc || [ -n "${LD_LIBRARY_PATH:-}" ]; then
  $S/sincut doctor --arch sm_90 --export $S/cubins-sm_90 > /dev/null || echo "no cubins exported (NVRTC not found)"
fi
if [ -d "$SHARED/data" ]; then cp -r "$SHARED/data" $S/data; fi
mkdir -p $S/golden
if [ -d "$SHARED/golden" ]; then cp -r "$SHARED"/golden/*/ $S/golden/; fi
tar czf gpu-bundle/payload.tar.gz -C $S .
chmod -R u+w $S && rm -rf $S
size=$(du -sm gpu-bundle/payload.tar.gz | cut -f1)
echo "gpu-bundle/payload.tar.gz: ${size} MiB"
if [ "$size" -ge "$LIMIT_MIB" ]; then
  echo "over the ${LIMIT_MIB} MiB limit: leave fixtures out (SINCUT_SHARED) or carry shared/" >&2
  exit 1
fi
