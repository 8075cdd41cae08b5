#!/usr/bin/env python3
"""Trains the official SinCUT implementation on one picture pair and translates the whole source,
for an equal-budget comparison with `sincut fit` (issue 15).

Standalone, like scripts/official_bench.py (whose helpers it uses): the official code is not part
of this repository; pass a copy of github.com/taesungp/contrastive-unpaired-translation with
--official. Torch setup on a machine without a GPU: docs/OFFICIAL-BENCH.md ("Smoke test here").

What it does:
  * options as train.py parses them for `--model sincut` (singleimage dataset: zoom per batch,
    grid crops, flips, load size 1024; stylegan2 G and D; lr 0.002, betas (0, 0.99)), with
    --crop/--batch/--ngf/--ndf from the command line;
  * --iters calls of optimize_parameters() on batches of the official pipeline, with the lr
    constant for the first half and then decaying linearly to 0 per iteration, as `sincut fit`
    schedules it (train.py does the same per epoch: n_epochs constant, n_epochs_decay linear);
  * then the whole source translated as test.py does for SinCUT (`--preprocess none`: the
    picture at full size, rounded to a multiple of 4 by the official transform, not flipped; G in train mode
    as test.py leaves it without --eval, noise drawn per call), written with the official
    tensor2im / save_image.

Example (quick configuration, seed 0):
  python scripts/official_train.py --official .official \\
    --source ../shared/data/monet-etretat-painting.jpg --target ../shared/data/etretat-photo.jpg \\
    --crop 64 --batch 4 --ngf 4 --ndf 4 --iters 1500 --seed 0 --out official-s0.png
"""
import argparse
import contextlib
import io
import json
import os
import random
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="path of a copy of the official CUT repository")
    p.add_argument("--source", required=True, help="domain A picture (translated)")
    p.add_argument("--target", required=True, help="domain B picture (whose look is learned)")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ngf", type=int, default=10)
    p.add_argument("--ndf", type=int, default=8)
    p.add_argument("--iters", type=int, required=True, help="optimize_parameters() calls")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the translated source (PNG)")
    p.add_argument("--json", default=None, help="also write the run's figures here")
    p.add_argument("--log-every", type=int, default=100)
    return p.parse_args()


def lr_at(base, iteration, total):
    """sincut's schedule (src/fit.rs lr_at): constant for the first half, then linear to 0."""
    half = total // 2
    if iteration < half:
        return base
    return base * (total - iteration) / max(total - half, 1)


def main():
    a = parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from official_bench import checked_paths, official_commit, parse_train_options, stub_missing

    official, source, target = checked_paths(a.official, a.source, a.target)

    import numpy as np
    import torch

    stub_missing(["visdom", "dominate", "GPUtil"])
    import warnings
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
    sys.path.insert(0, official)
    from data import create_dataset
    from data.base_dataset import get_transform
    from models import create_model
    from util import util

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    # The official ModulatedConv2d makes its all-ones style with .cuda(): on a CPU, a no-op.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self

    opt, _ = parse_train_options(official, source, target, "official_train", "-1",
                                 a.crop, a.batch, a.ngf, a.ndf)

    with contextlib.redirect_stdout(io.StringIO()):
        dataset = create_dataset(opt)
    epoch = 1
    dataset.set_epoch(epoch)
    batches = iter(dataset)

    def next_batch():
        nonlocal batches, epoch
        try:
            return next(batches)
        except StopIteration:
            epoch += 1
            dataset.set_epoch(epoch)
            batches = iter(dataset)
            return next(batches)

    first = next_batch()
    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model(opt)
        model.data_dependent_initialize(first)
        model.setup(opt)
    base_lr = opt.lr
    t0 = time.perf_counter()
    batch = first
    for i in range(a.iters):
        lr = lr_at(base_lr, i, a.iters)
        for o in model.optimizers:
            for g in o.param_groups:
                g["lr"] = lr
        model.set_input(batch)
        model.optimize_parameters()
        batch = next_batch()
        if a.log_every and ((i + 1) % a.log_every == 0 or i + 1 == a.iters):
            losses = {k: round(float(v), 4) for k, v in model.get_current_losses().items()}
            print("iter %d/%d lr %.5f %.2f s/iter %s" % (
                i + 1, a.iters, lr, (time.perf_counter() - t0) / (i + 1), losses), flush=True)
    train_s = time.perf_counter() - t0

    # test.py for SinCUT: --preprocess none (full size, a multiple of 4), no --eval.
    from PIL import Image
    opt.preprocess = "none"
    opt.no_flip = True  # test.py sets it; without it the transform flips the picture half the time
    transform = get_transform(opt, grayscale=False, method=Image.BILINEAR)  # the dataset's test branch
    x = transform(Image.open(source).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        y = model.netG(x)
    util.save_image(util.tensor2im(y), a.out)
    res = {"official_commit": official_commit(official), "torch": torch.__version__,
           "threads": torch.get_num_threads(),
           "config": {"crop": a.crop, "batch": a.batch, "ngf": a.ngf, "ndf": a.ndf,
                      "iters": a.iters, "seed": a.seed, "lr": base_lr,
                      "schedule": "constant for the first half, then linear to 0"},
           "train_s": round(train_s, 1), "output": os.path.abspath(a.out),
           "output_size": list(y.shape[2:])}
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
