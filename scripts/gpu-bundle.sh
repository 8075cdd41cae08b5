#!/usr/bin/env bash
# Builds, on a machine with the Rust toolchain, everything scripts/gpu-check.sh runs on a GPU
# machine that has none: the release binary and the CUDA kernel test binary, in gpu-bundle/.
# Carry gpu-bundle/ to the GPU machine (it is git-ignored) and run scripts/gpu-check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu-bundle && mkdir -p gpu-bundle
cargo build --release --quiet
cp target/release/sincut gpu-bundle/
# The test binary's path is printed by cargo as JSON; take the cuda_kernels executable.
exe=$(cargo test --release --no-run --test cuda_kernels --message-format=json 2>/dev/null \
  | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda_kernels":
        print(m["executable"])')
cp "$exe" gpu-bundle/cuda_kernels
# The carry to the GPU machine is limited (64 MiB): drop debug info.
strip gpu-bundle/sincut gpu-bundle/cuda_kernels
# Cubins for sm_90 in case the GPU machine has no NVRTC (scripts/gpu-check.sh points
# SINCUT_PREBUILT_CUBINS here when it finds none); needs NVRTC here (scripts/ci-nvrtc.sh).
if [ -n "${NVRTC_LIB:-}" ] || ldconfig -p | grep -q libnvrtc; then
  gpu-bundle/sincut doctor --arch sm_90 --export gpu-bundle/cubins-sm_90 > /dev/null
fi
du -sh gpu-bundle; ls -la gpu-bundle
