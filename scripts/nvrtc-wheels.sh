#!/usr/bin/env bash
# Installs NVRTC from PyPI for CUDA 12 (12.9) and CUDA 13 (13.0), each alone in its own folder
# (`pip install --target`, nothing else touched), at target/nvrtc-wheels/{cu12,cu13}.
# tests/nvrtc_discovery.rs finds libnvrtc there through every search route, and
# tests/nvrtc_discovery.rs compiles every kernel with both. Prints the folder. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${SINCUT_NVRTC_WHEELS:-$root/target/nvrtc-wheels}
PY=${PYTHON:-python3}
install() { # <folder> <requirement>: pip packages into dest/<folder> unless already there
  local d=$dest/$1
  if [ -f "$d/.installed" ] && [ "$(cat "$d/.installed")" = "$2" ]; then return; fi
  rm -rf "$d"
  "$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$d" $2 >&2
  echo "$2" > "$d/.installed"
}
install cu12 "nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79"
install cu13 "nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96"
test -e "$dest/cu12/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" || { echo "no libnvrtc.so.12 in $dest/cu12" >&2; exit 1; }
test -e "$dest/cu13/nvidia/cu13/lib/libnvrtc.so.13" || { echo "no libnvrtc.so.13 in $dest/cu13" >&2; exit 1; }
echo "$dest"
