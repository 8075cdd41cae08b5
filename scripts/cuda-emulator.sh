#!/usr/bin/env bash
# Runs a command against the CPU emulator of the CUDA driver and NVRTC (tools/cuda-emulator):
# builds libcuda.so and libnvrtc.so into target/cuda-emulator, puts them first on the loader
# path, and gives the emulator its own kernel cache. Every CUDA code path of sincut (launchers,
# kernels, the CUDA engine) then runs on this machine's CPU, slowly, with out-of-bounds
# accesses, unwritten outputs and barrier deadlocks reported. Needs a C++17 compiler (c++).
#   scripts/cuda-emulator.sh cargo test --release --test parity --test cuda_kernels
#   scripts/cuda-emulator.sh target/release/sincut check-golden --device cuda
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${SINCUT_EMU_DIR:-$root/target/cuda-emulator}
src=$root/tools/cuda-emulator
mkdir -p "$out"
build() { # only when a source is newer than the library
    local lib=$1 cpp=$2
    if [[ ! -f $out/$lib || $src/$cpp -nt $out/$lib || $0 -nt $out/$lib ]]; then
        c++ -std=c++17 -O2 -fPIC -shared -Wall -o "$out/$lib.tmp" "$src/$cpp" -ldl
        mv "$out/$lib.tmp" "$out/$lib"
    fi
}
build libcuda.so libcuda.cpp
build libnvrtc.so libnvrtc.cpp
cp "$src/cuda_emu.h" "$out/cuda_emu.h"
export LD_LIBRARY_PATH="$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# By path: a real libnvrtc.so.13/.so.12 on this machine would otherwise be found first.
export SINCUT_NVRTC="$out/libnvrtc.so"
# The header and the compile flags are part of every module: new ones mean a new cache.
export SINCUT_CACHE_DIR="$out/cache-$(cat "$src/cuda_emu.h" "$src/libnvrtc.cpp" | cksum | cut -d' ' -f1)"
export SINCUT_CUDA_EMULATOR=1
exec "$@"
