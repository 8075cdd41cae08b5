#!/usr/bin/env bash
# Builds, on a machine with the Rust toolchain, everything the GPU check needs on a GPU machine
# that has none: gpu-bundle/payload.tar.gz (gpu-bundle/ is git-ignored; carry it there and run
# scripts/gpu-check.sh). The payload holds:
#   gpu-check.sh       the check itself (scripts/gpu-check.sh), run from the unpacked payload
#   official_bench.py  the official implementation's timing (scripts/official_bench.py)
#   sincut             the binary (doctor, check-golden, fit, render, report)
#   parity             the op parity suite (every op on the CUDA backend vs the CPU, tests/parity.rs)
#   cuda_kernels       the CUDA-only tests (conv rounding vs f64, the CUDA backend vs the CPU one)
#   bench_gpu          benches/gpu.rs (ms/iteration, peak GPU memory, render MP/s, per-op times)
#   cubins-sm_90/      every kernel compiled beforehand, used where the GPU machine has no NVRTC
#   data/, golden/     the pictures and fixtures of ../shared (a GPU machine has no ../shared)
#   BUNDLE.txt         commit, profile, and the NVRTC the cubins came from
# Compressed, it must stay under the 64 MiB a device run may carry (about 51 MiB today).
#
# BUNDLE_PROFILE=dev builds with the test profile (reusing `cargo test`'s build; the dry run).
# BUNDLE_CUBINS=emulator exports the cubins with the CPU emulator's NVRTC instead of NVRTC 13
# from PyPI (the dry run, scripts/gpu-dry-run.sh: its libcuda loads only those).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_MIB=${LIMIT_MIB:-62}
SHARED=${SINCUT_SHARED:-../shared}
PROFILE=${BUNDLE_PROFILE:-release}
rm -rf gpu-bundle && mkdir -p gpu-bundle/stage
S=gpu-bundle/stage
case $PROFILE in
    release) build=(--release) ;;
    # `cargo build` alone would take the dev profile, which differs from the test profile
    # (Cargo.toml) and would rebuild everything.
    dev) build=(--profile test) ;;
    *) echo "BUNDLE_PROFILE=$PROFILE: release or dev" >&2; exit 1 ;;
esac
# The executables' paths, as cargo reports them (JSON).
artifact() { # <kind> <cargo subcommand and args...>: the executable of that kind cargo built
    local kind=$1
    shift
    cargo "$@" --message-format=json 2>/dev/null | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == [sys.argv[1]]:
        print(m["executable"])' "$kind" | tail -1
}
cp "$(artifact bin build "${build[@]}" --bin sincut)" $S/sincut
cp "$(artifact test test "${build[@]}" --no-run --test cuda_kernels)" $S/cuda_kernels
cp "$(artifact test test "${build[@]}" --no-run --test parity)" $S/parity
cp "$(artifact bench test "${build[@]}" --no-run --bench gpu)" $S/bench_gpu
# The carry to the GPU machine is limited: drop debug info.
strip $S/sincut $S/cuda_kernels $S/parity $S/bench_gpu
cp scripts/gpu-check.sh scripts/official_bench.py $S/
case ${BUNDLE_CUBINS:-nvrtc} in
    nvrtc)
        wheels=$(scripts/nvrtc-wheels.sh)
        nvrtc=${SINCUT_NVRTC:-$wheels/cu13/nvidia/cu13/lib/libnvrtc.so.13}
        SINCUT_NVRTC=$nvrtc SINCUT_CACHE_DIR=$(mktemp -d) $S/sincut doctor --arch sm_90 --export $S/cubins-sm_90 > gpu-bundle/doctor.txt
        cubins_from=$(grep '^NVRTC:' gpu-bundle/doctor.txt)
        ;;
    emulator)
        scripts/cuda-emulator.sh $S/sincut doctor --arch sm_90 --export $S/cubins-sm_90 > gpu-bundle/doctor.txt || true
        cubins_from="the CPU emulator's NVRTC (dry run only: no GPU loads these)"
        ;;
    *) echo "BUNDLE_CUBINS: nvrtc or emulator" >&2; exit 1 ;;
esac
n=$(ls $S/cubins-sm_90 | wc -l)
[ "$n" -ge 21 ] || { echo "only $n cubins exported:" >&2; cat gpu-bundle/doctor.txt >&2; exit 1; }
[ -d "$SHARED/data" ] && cp -r "$SHARED/data" $S/data
mkdir -p $S/golden
[ -d "$SHARED/golden" ] && cp -r "$SHARED"/golden/*/ $S/golden/
{
    echo "bundle: $(git describe --always --dirty 2>/dev/null || echo unknown) ($PROFILE build, $(date -u +%FT%TZ))"
    echo "cubins: $n for sm_90 from $cubins_from"
} > $S/BUNDLE.txt
tar czf gpu-bundle/payload.tar.gz -C $S .
chmod -R u+w $S && rm -rf $S
size=$(du -sm gpu-bundle/payload.tar.gz | cut -f1)
echo "gpu-bundle/payload.tar.gz: ${size} MiB"
if [ "$size" -ge "$LIMIT_MIB" ]; then
    echo "over the ${LIMIT_MIB} MiB limit: leave fixtures out (SINCUT_SHARED) or carry shared/" >&2
    exit 1
fi
