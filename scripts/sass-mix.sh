#!/usr/bin/env bash
# The static instruction mix of the conv kernels' main K loop on sm_90 (no GPU needed): NVRTC
# 13.0 from PyPI (scripts/nvrtc-wheels.sh) compiles every kernel through `sincut doctor
# --export`, cuobjdump (PyPI: nvidia-cuda-cuobjdump with nvidia-cuda-nvdisasm, into target/cuda-tools) disassembles the
# cubins, and for each conv kernel the innermost loop that holds its multiply instructions
# (HMMA for bf16, FFMA for f32) is taken as one K step and its instructions are counted by
# opcode. Registers, shared memory and spills come from ptxas' report (the doctor's table).
#   scripts/sass-mix.sh [path/to/sincut]        (default target/release/sincut)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/sincut}
tools=$root/target/cuda-tools
wheels=$("$root/scripts/nvrtc-wheels.sh")
# cuobjdump -sass runs nvdisasm, found on PATH.
for tool in cuobjdump nvdisasm; do
  if [ ! -x "$tools/$tool/nvidia/cu13/bin/$tool" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$tools/$tool" "nvidia-cuda-$tool" >&2
  fi
done
export PATH="$tools/nvdisasm/nvidia/cu13/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
SINCUT_NVRTC=$wheels/cu13/nvidia/cu13/lib/libnvrtc.so.13 "$bin" doctor --arch sm_90 --export "$out/cubins" \
  > "$out/doctor.txt" 2>&1 || { cat "$out/doctor.txt" >&2; exit 1; }
echo "ptxas (sm_90, NVRTC 13.0): file, kernel, registers, shared bytes, spill stores/loads ..."
grep -E '^\s+conv2d' "$out/doctor.txt"
for f in "$out"/cubins/conv2d*.cubin; do
  "$tools/cuobjdump/nvidia/cu13/bin/cuobjdump" -sass "$f" > "$out/$(basename "$f" .cubin).sass"
done
python3 - "$out" <<'PY'
import collections, glob, re, sys
inst = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);')
for path in sorted(glob.glob(sys.argv[1] + '/*.sass')):
    fn, body = None, {}
    for line in open(path):
        m = re.search(r'Function : (\S+)', line)
        if m:
            fn = m.group(1)
            body[fn] = []
            continue
        m = inst.search(line)
        if m and fn:
            body[fn].append((int(m.group(1), 16), m.group(3), m.group(4)))
    for fn, ins in sorted(body.items()):
        if 'conv2d' not in fn or 'sum_splits' in fn:
            continue
        mul = 'HMMA' if fn.endswith('bf16') or '_nhwc' in fn else 'FFMA'
        # Loops: a branch back to an earlier address. Take the smallest that holds `mul`s.
        loops = []
        for a, op, args in ins:
            t = re.search(r'0x([0-9a-f]+)', args)
            if op.startswith('BRA') and t and int(t.group(1), 16) <= a:
                lo, hi = int(t.group(1), 16), a
                n = sum(1 for x, o, _ in ins if lo <= x <= hi and o.startswith(mul))
                if n:
                    loops.append((hi - lo, lo, hi))
        if not loops:
            print(f'{fn}: no loop with {mul}')
            continue
        _, lo, hi = min(loops)
        ops = collections.Counter(o.split('.')[0] for x, o, _ in ins if lo <= x <= hi and o != 'NOP')
        total = sum(ops.values())
        top = ', '.join(f'{o} {n}' for o, n in ops.most_common(12))
        print(f'{fn}: K-step loop 0x{lo:x}-0x{hi:x}: {ops[mul]} {mul}, {total} instructions '
              f'(static, not NOP); {top}')
PY
