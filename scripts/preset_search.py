#!/usr/bin/env python3
"""Preset search (issue 15): train candidate configurations on several picture pairs and seeds,
score every result with `sincut eval` at full resolution, and check the quality bar.

The bar, per pair: SWD texture below both colour baselines' (Reinhard colour transfer and
histogram matching, measured by `sincut eval --baselines` on the same pair) with SSIM to the
source of at least 0.5. Each run's wall time comes from its metrics.jsonl (training only, across
resumes), so a configuration can be held to a time budget (`--budget-min`).

Runs live in WORK/<config>/<pair>-s<seed>; finished ones are skipped and interrupted ones resumed
when the script runs again. Prints a Markdown table (every run, then per configuration and pair
the mean and min-max) and writes it to WORK/table.md.

Example (the quick preset against a longer run with an EMA, on both pairs, two seeds):
  python3 scripts/preset_search.py --sincut target/release/sincut --work runs/search \\
    --config quick='--preset quick' \\
    --config q3k-ema='--preset quick --iters 3000 --ema-half-life 2000 --ema-rampup 0.2' \\
    --seeds 0,1
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SHARED = os.path.join(ROOT, "..", "shared", "data")
PAIRS = {
    "monet": (os.path.join(SHARED, "monet-etretat-painting.jpg"), os.path.join(SHARED, "etretat-photo.jpg")),
    "autumn": (os.path.join(ROOT, "data", "painting.jpg"), os.path.join(ROOT, "data", "photo.jpg")),
}
BASELINES = ("reinhard", "histogram")
SSIM_BAR = 0.5


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sincut", required=True, help="the sincut binary (a release build)")
    p.add_argument("--work", required=True, help="folder for runs and scores")
    p.add_argument("--config", action="append", default=[], metavar="NAME='FIT ARGS'",
                   help="a candidate: a name and the `sincut fit` options it adds (repeatable)")
    p.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated, of {', '.join(PAIRS)}")
    p.add_argument("--seeds", default="0", help="comma-separated")
    p.add_argument("--budget-min", type=float, default=30.0,
                   help="training minutes a run may take (marked in the table when exceeded)")
    p.add_argument("--table-only", action="store_true", help="score and tabulate what exists")
    a = p.parse_args()
    configs = []
    for c in a.config:
        name, sep, args = c.partition("=")
        if not sep or not name or "/" in name:
            p.error(f"--config {c!r}: expected NAME='FIT ARGS'")
        configs.append((name, shlex.split(args)))
    if not configs:
        p.error("give at least one --config")
    a.configs = configs
    a.pair_names = [s for s in a.pairs.split(",") if s]
    for n in a.pair_names:
        if n not in PAIRS:
            p.error(f"unknown pair {n!r} (known: {', '.join(PAIRS)})")
    a.seed_list = [int(s) for s in a.seeds.split(",") if s]
    return a


def run(cmd, log):
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"preset_search: {' '.join(cmd[:2])} ... failed (exit {rc}); see {log}")


def evaluate(a, picture, pair, js, baselines=False):
    """sincut eval's rows {name: metrics} for a picture (cached in js)."""
    if not os.path.exists(js):
        src, tgt = PAIRS[pair]
        cmd = [a.sincut, "eval", "--output", picture, "--source", src, "--target", tgt, "--json", js]
        run(cmd + (["--baselines"] if baselines else []), js + ".log")
    with open(js) as f:
        return {r["name"]: r["metrics"] for r in json.load(f)["rows"]}


def train_minutes(run_dir):
    """Training wall time in minutes from metrics.jsonl (elapsed_s restarts at each resume)."""
    total, last = 0.0, 0.0
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            e = r.get("elapsed_s")
            if e is None:
                continue
            if e < last:
                total += last
            last = e
    return (total + last) / 60


def one_run(a, name, args, pair, seed):
    run_dir = os.path.join(a.work, name, f"{pair}-s{seed}")
    result = os.path.join(run_dir, "result.png")
    if not a.table_only and not os.path.exists(result):
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
        if os.path.exists(os.path.join(run_dir, "run.json")):
            cmd = [a.sincut, "fit", "--resume", run_dir]
        else:
            src, tgt = PAIRS[pair]
            cmd = [a.sincut, "fit", src, tgt, *args, "--seed", str(seed), "--device", "cpu", "--out", run_dir]
        run(cmd, run_dir + ".log")
    if not os.path.exists(result):
        return None
    m = evaluate(a, result, pair, os.path.join(run_dir, "result.eval.json"))["result"]
    return {"texture": m["swd"]["texture"], "ssim": m["ssim"], "lab": m["lab_w1_sum"],
            "minutes": train_minutes(run_dir)}


def baselines(a, pair):
    """Texture SWD of each colour baseline on a pair (scored once, on the source picture)."""
    src, _ = PAIRS[pair]
    rows = evaluate(a, src, pair, os.path.join(a.work, f"baselines-{pair}.json"), baselines=True)
    out = {}
    for b in BASELINES:
        key = next((k for k in rows if k.lower().startswith(b)), None)
        if key is None:
            sys.exit(f"preset_search: sincut eval --baselines gave no {b} row ({', '.join(rows)})")
        out[b] = rows[key]["swd"]["texture"]
    return out


def meets(r, base):
    return r["texture"] < min(base.values()) and r["ssim"] >= SSIM_BAR


def main():
    a = parse_args()
    os.makedirs(a.work, exist_ok=True)
    base = {p: baselines(a, p) for p in a.pair_names}
    lines = ["| configuration | pair | seed | train min | SWD texture | SSIM | Lab W1 | bar |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary = []
    for name, args in a.configs:
        for pair in a.pair_names:
            got = []
            for seed in a.seed_list:
                r = one_run(a, name, args, pair, seed)
                if r is None:
                    continue
                got.append(r)
                over = " (over budget)" if r["minutes"] > a.budget_min else ""
                lines.append(f"| {name} | {pair} | {seed} | {r['minutes']:.1f}{over} | {r['texture']:.1f} | "
                             f"{r['ssim']:.3f} | {r['lab']:.1f} | {'met' if meets(r, base[pair]) else 'no'} |")
            if len(got) > 1:
                cell = lambda k, d: (f"{sum(r[k] for r in got) / len(got):.{d}f} "
                                     f"({min(r[k] for r in got):.{d}f}–{max(r[k] for r in got):.{d}f})")
                n_met = sum(meets(r, base[pair]) for r in got)
                summary.append(f"| **{name}** | {pair} | {len(got)} seeds | {cell('minutes', 1)} | "
                               f"{cell('texture', 1)} | {cell('ssim', 3)} | {cell('lab', 1)} | "
                               f"{n_met} of {len(got)} |")
    text = "\n".join(lines + summary) + "\n\nBaselines (SWD texture): " + "; ".join(
        f"{p}: " + ", ".join(f"{b} {v:.1f}" for b, v in base[p].items()) for p in a.pair_names) + \
        f". Bar: texture below both, SSIM ≥ {SSIM_BAR}.\n"
    with open(os.path.join(a.work, "table.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"({time.time() - t:.0f} s)", file=sys.stderr)
