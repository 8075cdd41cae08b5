#!/usr/bin/env python3
"""Equal-budget comparison of sincut with the official SinCUT implementation (issue 15).

For each seed: the official code trained by scripts/official_train.py and `sincut fit` with the
same configuration (the quick preset's geometry: crop 64, batch 4, ngf 4, ndf 4, 1500
iterations, lr constant for the first half then linear to 0; one PatchNCE patch per crop and
layer, the official num_patches), each whole source translated, then both pictures
scored by `sincut eval` at full resolution. Finished steps are kept in --work and skipped when
the script runs again, so an interrupted comparison continues where it stopped. Prints the
Markdown tables (every run, then mean and min-max per side: the pictures' scores, then the
training losses over the last third of the iterations) and writes them to WORK/table.md.

The official side needs torch: --python names an interpreter that has it (docs/OFFICIAL-BENCH.md
shows how to install one on a machine without a GPU, LD_LIBRARY_PATH included).

Example (what README's equal-budget table came from):
  python3 scripts/equal_budget.py --sincut target/release/sincut --official .official \\
    --python /tmp/torchvenv/bin/python --work runs/equal-budget --seeds 0,1,2
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
COLUMNS = [("SWD mean", ("swd", "mean"), 1), ("SWD texture", ("swd", "texture"), 1),
           ("SSIM", ("ssim",), 3), ("SSIM ¼", ("ssim_4x",), 3),
           ("edge r", ("edge_correlation",), 3), ("Lab W1", ("lab_w1_sum",), 1)]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sincut", required=True, help="the sincut binary (a release build)")
    p.add_argument("--official", required=True, help="copy of the official CUT repository")
    p.add_argument("--python", default=sys.executable, help="an interpreter with torch")
    p.add_argument("--source", default=os.path.join(SHARED, "monet-etretat-painting.jpg"))
    p.add_argument("--target", default=os.path.join(SHARED, "etretat-photo.jpg"))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated")
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--work", required=True, help="folder for runs, pictures and scores")
    p.add_argument("--table-only", action="store_true", help="score and tabulate what exists")
    p.add_argument("--train", choices=["both", "official", "sincut"], default="both",
                   help="which side to train (the other is scored if its picture exists)")
    return p.parse_args()


def run(cmd, log):
    """Runs cmd with its output in log; the wall time in seconds, or exits on failure."""
    start = time.time()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"equal_budget: {' '.join(cmd[:3])} ... failed (exit {rc}); see {log}")
    return time.time() - start


def train(a, seed):
    """Trains both sides for one seed unless done; returns {side: picture}."""
    w = a.work
    off = os.path.join(w, f"official-s{seed}.png")
    if not a.table_only and a.train != "sincut" and not os.path.exists(off):
        run([a.python, os.path.join(HERE, "official_train.py"), "--official", a.official,
             "--source", a.source, "--target", a.target, "--crop", "64", "--batch", "4",
             "--ngf", "4", "--ndf", "4", "--iters", str(a.iters), "--seed", str(seed),
             "--out", off + ".part.png", "--json", os.path.join(w, f"official-s{seed}.json"),
             "--log-every", "10"], os.path.join(w, f"official-s{seed}.log"))
        os.replace(off + ".part.png", off)
    run_dir = os.path.join(w, f"sincut-s{seed}")
    ours = os.path.join(run_dir, "result.png")
    if not a.table_only and a.train != "official" and not os.path.exists(ours):
        if os.path.exists(os.path.join(run_dir, "run.json")):
            cmd = [a.sincut, "fit", "--resume", run_dir]  # stopped part-way: continue
        else:
            # One PatchNCE patch per crop and layer, as the official SinCUT (the quick preset
            # takes 64).
            cmd = [a.sincut, "fit", a.source, a.target, "--preset", "quick", "--nce-patches", "1",
                   "--iters", str(a.iters), "--seed", str(seed), "--device", "cpu", "--out",
                   run_dir]
        run(cmd, os.path.join(w, f"sincut-s{seed}.log"))
    return {"official": off, "sincut": ours}


def score(a, picture):
    """sincut eval's figures of one picture (cached beside it)."""
    js = os.path.splitext(picture)[0] + ".eval.json"
    if not os.path.exists(js):
        if not os.path.exists(picture):
            return None
        run([a.sincut, "eval", "--output", picture, "--source", a.source, "--target", a.target,
             "--json", js], js + ".log")
    with open(js) as f:
        rows = json.load(f)["rows"]
    return next(r["metrics"] for r in rows if r["name"] == "result")


def figure(m, path):
    for k in path:
        m = m[k]
    return m


def table(results):
    head = "| run | " + " | ".join(c[0] for c in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 1)]
    for side in ("official", "sincut"):
        runs = [(s, m) for s, sides in results for k, m in sides.items() if k == side and m]
        for seed, m in runs:
            cells = [f"{figure(m, c[1]):.{c[2]}f}" for c in COLUMNS]
            lines.append(f"| {side}, seed {seed} | " + " | ".join(cells) + " |")
        if len(runs) > 1:
            cells = []
            for c in COLUMNS:
                v = [figure(m, c[1]) for _, m in runs]
                mean = sum(v) / len(v)
                cells.append(f"**{mean:.{c[2]}f}** ({min(v):.{c[2]}f}–{max(v):.{c[2]}f})")
            lines.append(f"| **{side}, mean (min–max) of {len(runs)}** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# Training losses compared over the last third of the iterations: (official log name, sincut
# metrics.jsonl name, column header).
LOSSES = [("G_GAN", "g_gan", "G GAN"), ("D_real", "d_real", "D real"), ("D_fake", "d_fake", "D fake"),
          ("D_R1", "d_r1", "R1"), ("NCE", "nce", "PatchNCE"), ("NCE_Y", "nce_y", "PatchNCE idt"),
          ("idt", "idt", "identity L1")]


def losses(a, seed):
    """{side: {loss: mean over iterations after 2/3 of the run}} from the official log (one line
    per --log-every iterations, a single iteration's losses each) and sincut's metrics.jsonl
    (every iteration)."""
    import ast
    import re
    start = a.iters * 2 // 3
    out = {}
    log = os.path.join(a.work, f"official-s{seed}.log")
    if os.path.exists(log):
        rows = []
        with open(log) as f:
            for line in f:
                m = re.match(r"iter (\d+)/\d+ .*? (\{.*\})$", line.strip())
                if m and int(m.group(1)) > start:
                    rows.append(ast.literal_eval(m.group(2)))
        if rows:
            out["official"] = {k: sum(r[k] for r in rows) / len(rows) for k, _, _ in LOSSES}
            out["official"]["n"] = len(rows)
    jl = os.path.join(a.work, f"sincut-s{seed}", "metrics.jsonl")
    if os.path.exists(jl):
        rows = []
        with open(jl) as f:
            for line in f:
                r = json.loads(line)
                if "idt" in r and r["iter"] >= start:
                    rows.append(r)
        if rows:
            out["sincut"] = {k: sum(r[s] for r in rows) / len(rows) for k, s, _ in LOSSES}
            out["sincut"]["n"] = len(rows)
    return out


def loss_table(a, seeds):
    start = a.iters * 2 // 3
    head = f"| run (mean over iterations {start + 1}–{a.iters}) | samples | " + \
        " | ".join(c for _, _, c in LOSSES) + " |"
    lines = [head, "|" + " --- |" * (len(LOSSES) + 2)]
    per_side = {}
    for seed in seeds:
        for side, m in losses(a, seed).items():
            per_side.setdefault(side, []).append((seed, m))
    for side in ("official", "sincut"):
        runs = per_side.get(side, [])
        for seed, m in runs:
            lines.append(f"| {side}, seed {seed} | {m['n']} | " +
                         " | ".join(f"{m[k]:.3f}" for k, _, _ in LOSSES) + " |")
        if len(runs) > 1:
            cells = []
            for k, _, _ in LOSSES:
                v = [m[k] for _, m in runs]
                cells.append(f"**{sum(v) / len(v):.3f}** ({min(v):.3f}–{max(v):.3f})")
            lines.append(f"| **{side}, mean (min–max) of {len(runs)}** | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    a = parse_args()
    os.makedirs(a.work, exist_ok=True)
    results = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        pics = train(a, seed)
        results.append((seed, {side: score(a, p) for side, p in pics.items()}))
    text = table(results) + "\n" + loss_table(a, [s for s, _ in results])
    with open(os.path.join(a.work, "table.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
