#!/usr/bin/env bash
# The whole device procedure rehearsed on this machine under the CPU emulator of the CUDA
# driver (tools/cuda-emulator), so that no GPU minute is lost to a path, an unpack step, the
# NVRTC fallback or a file copy:
#   1. scripts/gpu-bundle.sh (dev build, cubins from the emulator's NVRTC);
#   2. the bundle alone in a bare folder outside the repository, beside a copy of
#      gpu-check.sh taken from the bundle, laid out as the repository is on the GPU machine;
#   3. scripts/gpu-check.sh there with a clean environment: no cargo on PATH, OUT set, the
#      emulator's libcuda on the loader path, no NVRTC anywhere (so every kernel comes from
#      the bundle's prebuilt cubins), the tiny configuration (GPU_CHECK_TINY=1: the emulator is
#      slow) and generous step limits (GPU_CHECK_LIMIT_SCALE);
#   4. checks: every step ok, nothing skipped, the expected files and at most 8 in OUT.
# It runs every kernel test and the c64 golden fixture (trajectory included) on the emulated
# CUDA engine, as CI does, except the bf16 engine comparison (about 4 minutes emulated; run it
# with scripts/cuda-emulator.sh cargo test --release --test cuda_kernels -- in_bf16).
# c128 differs from c64 in D's tiled windows, which the CUDA engine
# meets against the CPU engine in tests/cuda_kernels.rs while the CPU engine meets c128 in
# tests/golden.rs; replaying it here too cost CI 2 of its 20 minutes. GPU_CHECK_FIXTURES=all
# replays every fixture (as gpu-check.sh does on a GPU). DRY_RUN_DIR keeps the bare folder
# (default: a temporary one, removed on success).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/cuda-emulator.sh true
emu=${SINCUT_EMU_DIR:-$root/target/cuda-emulator}
BUNDLE_PROFILE=${BUNDLE_PROFILE:-dev} BUNDLE_CUBINS=emulator scripts/gpu-bundle.sh

nfiles=$(ls kernels/*.cu | wc -l)
bare=${DRY_RUN_DIR:-$(mktemp -d /tmp/sincut-dry-run.XXXXXX)}
rm -rf "$bare" && mkdir -p "$bare/gpu-bundle" "$bare/scripts"
cp gpu-bundle/payload.tar.gz "$bare/gpu-bundle/"
tar xzf "$bare/gpu-bundle/payload.tar.gz" -C "$bare/scripts" ./gpu-check.sh
cd "$bare"
echo "dry run in $bare"
set +e
env -i HOME="$bare" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    OUT="$bare/out" GPU_CHECK_DIR="$bare/unpacked" GPU_CHECK_TINY=1 \
    GPU_CHECK_LIMIT_SCALE=${GPU_CHECK_LIMIT_SCALE:-6} DEADLINE_S=${DEADLINE_S:-1500} \
    GPU_CHECK_FIXTURES="${GPU_CHECK_FIXTURES:-c64-b2-g4-d2}" \
    GPU_CHECK_TESTS="${GPU_CHECK_TESTS:---skip cuda_engine_matches_cpu_engine_in_bf16}" \
    LD_LIBRARY_PATH="$emu" SINCUT_NVRTC="$bare/no-nvrtc/libnvrtc.so.13" SINCUT_CUDA_EMULATOR=1 \
    bash scripts/gpu-check.sh
rc=$?
set -e
fail=0
if command -v cargo >/dev/null 2>&1 && env -i PATH=/usr/local/bin:/usr/bin:/bin bash -c 'command -v cargo' >/dev/null; then
    echo "dry run: cargo was on the clean PATH"; fail=1
fi
[ $rc -eq 0 ] || { echo "dry run: gpu-check exited $rc"; fail=1; }
if grep -E 'FAIL|TIMEOUT|SKIPPED' out/summary.txt; then echo "dry run: a step failed or was skipped"; fail=1; fi
grep -q "prebuilt cubins: .*($nfiles of $nfiles kernel files for sm_90, each loaded by the driver)" out/summary.txt \
    || { echo "dry run: the doctor did not load the prebuilt cubins"; fail=1; }
for f in gpu-check.log summary.txt fit-metrics.jsonl fit-report.html render-64.png; do
    [ -s "out/$f" ] || { echo "dry run: out/$f missing"; fail=1; }
done
n=$(find out -type f | wc -l)
[ "$n" -le 8 ] || { echo "dry run: $n files in OUT (at most 8 come back)"; fail=1; }
if [ $fail -ne 0 ]; then
    echo "dry run FAILED; everything is in $bare (log: $bare/out/gpu-check.log)"
    exit 1
fi
echo "dry run passed: $n files in OUT"
[ -n "${DRY_RUN_DIR:-}" ] || rm -rf "$bare"
