#!/usr/bin/env bash
# Compiles every CUDA kernel with NVRTC on a machine without a GPU or CUDA toolkit, with the
# CUDA 13 NVRTC from PyPI (scripts/nvrtc-wheels.sh; tests/nvrtc_discovery.rs compiles them
# with 12.9 and 13.0 as part of `cargo test`). The GPU-side tests print "skipped: no CUDA
# device"; the compile test must pass: every kernel compiles for sm_90 with no register spills.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=$(scripts/nvrtc-wheels.sh)
export SINCUT_NVRTC="$wheels/cu13/nvidia/cu13/lib/libnvrtc.so.13"
# A private cache, so this run really compiles (and exercises the cache writes).
export SINCUT_CACHE_DIR="${SINCUT_CACHE_DIR:-$(mktemp -d)}"
cargo build --quiet
# The doctor compiles every kernel for sm_90 and exits non-zero on an error or a spill.
target/debug/sincut doctor --arch sm_90
cargo test --test cuda_kernels -- --nocapture --test-threads=1 "$@"
