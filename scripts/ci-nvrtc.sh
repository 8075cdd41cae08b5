#!/usr/bin/env bash
# Compiles every CUDA kernel with NVRTC on a machine without a GPU or CUDA toolkit:
# installs NVRTC and the CUDA headers from PyPI, puts libnvrtc on the loader path (it must be
# there before the test process starts: cudarc dlopens it by name) and runs the kernel tests.
# The GPU-side tests print "skipped: no CUDA device"; the compile test must pass: every kernel
# compiles for sm_90 with no register spills.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check \
    nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79

# nvidia/ is a namespace package: locate its two subpackages by their __path__.
NVRTC_LIB=$("$PY" -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], "lib"))')
CUDA_INC=$("$PY" -c 'import nvidia.cuda_runtime as m, os; print(os.path.join(list(m.__path__)[0], "include"))')
test -e "$NVRTC_LIB/libnvrtc.so.12" || { echo "libnvrtc.so.12 not found in $NVRTC_LIB" >&2; exit 1; }
test -e "$CUDA_INC/cuda_fp16.h" || { echo "cuda_fp16.h not found in $CUDA_INC" >&2; exit 1; }

export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SINCUT_CUDA_INCLUDE="$CUDA_INC"
# A private cache, so this run really compiles (and exercises the cache writes).
export SINCUT_CACHE_DIR="${SINCUT_CACHE_DIR:-$(mktemp -d)}"

echo "NVRTC: $NVRTC_LIB"
echo "headers: $CUDA_INC"
cargo build --quiet
# The doctor compiles every kernel for sm_90 and exits non-zero on an error or a spill.
target/debug/sincut doctor --arch sm_90
cargo test --test cuda_kernels -- --nocapture --test-threads=1 "$@"
