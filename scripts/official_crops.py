#!/usr/bin/env python3
"""Statistics of the training crops the official SinCUT dataset draws (train.py's data loader:
singleimage dataset, shuffled), in the line format of `examples/crop_stats.rs`; with --compare,
sets them against sincut's and prints, per side and channel, the two means of each statistic and
their difference in standard errors (issue 15: is sincut's data sampling the official one?).

  cargo run --release --example crop_stats -- SOURCE TARGET 500 > sincut-crops.txt
  python scripts/official_crops.py --official .official --source SOURCE --target TARGET \\
    --iters 500 --compare sincut-crops.txt

Standalone like scripts/official_train.py; torch without a GPU: docs/OFFICIAL-BENCH.md.
"""
import argparse
import contextlib
import io
import math
import os
import random
import sys

NAMES = ("mean", "std", "|step|")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="path of a copy of the official CUT repository")
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--iters", type=int, default=500, help="batches drawn")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", default=None, help="crop_stats output of sincut to compare with")
    return p.parse_args()


def official_lines(a):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from official_bench import parse_train_options, stub_missing
    import numpy as np
    import torch
    official = os.path.abspath(a.official)
    stub_missing(["visdom", "dominate", "GPUtil"])
    sys.path.insert(0, official)
    from data import create_dataset
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    opt, _ = parse_train_options(official, os.path.abspath(a.source), os.path.abspath(a.target),
                                 "official_crops", "-1", a.crop, a.batch, 4, 4)
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = create_dataset(opt)
    dataset.set_epoch(1)
    batches = iter(dataset)
    lines = []
    for _ in range(a.iters):
        b = next(batches)
        for side in "AB":
            t = b[side].numpy().astype(np.float64)
            for crop in t:
                cells = []
                for plane in crop:
                    cells += [plane.mean(), plane.std(), np.abs(np.diff(plane, axis=1)).mean()]
                lines.append(side + "".join(" %.6f" % v for v in cells))
    return lines


def parse(lines):
    out = {"A": [], "B": []}
    for line in lines:
        f = line.split()
        if f and f[0] in out:
            out[f[0]].append([float(v) for v in f[1:]])
    return out


def compare(ours, theirs):
    print("| side | channel | statistic | sincut | official | difference / s.e. |")
    print("| --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for side in "AB":
        s, o = ours[side], theirs[side]
        for ch, name in enumerate("RGB"):
            for j, stat in enumerate(NAMES):
                col = 3 * ch + j
                xs, ys = [r[col] for r in s], [r[col] for r in o]
                mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
                vx = sum((v - mx) ** 2 for v in xs) / len(xs)
                vy = sum((v - my) ** 2 for v in ys) / len(ys)
                z = (mx - my) / math.sqrt(vx / len(xs) + vy / len(ys))
                worst = max(worst, abs(z))
                print("| %s | %s | %s | %.4f | %.4f | %+.1f |" % (side, name, stat, mx, my, z))
    print("\n%d (sincut) and %d (official) crops per side; largest |difference| %.1f standard "
          "errors (the largest of 18 such figures is about 2 by chance alone)"
          % (len(ours["A"]), len(theirs["A"]), worst))


def main():
    a = parse_args()
    lines = official_lines(a)
    if a.compare is None:
        print("\n".join(lines))
        return
    with open(a.compare) as f:
        ours = parse(f)
    compare(ours, parse(lines))


if __name__ == "__main__":
    main()
