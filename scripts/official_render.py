#!/usr/bin/env python3
"""Translates a picture with the official SinCUT code using G's weights from a sincut checkpoint,
to separate training from inference when sincut's and the official pictures differ (issue 15).

The official G is built with the checkpoint's geometry (crop, ngf; batch and ndf do not change
G), its parameters are loaded from the checkpoint's `param.G.*` tensors (or `ema.G.*` with
--ema), and the picture is translated as the official test.py does for SinCUT: whole, rounded
to a multiple of 4 by the official transform, not flipped, G in train mode, noise drawn per
call, written with the official tensor2im / save_image. Compare the result with
`sincut render` of the same checkpoint (e.g. with `sincut eval`): the two differ only by the
noise draw and the official rounding to a multiple of 4.

Standalone like scripts/official_train.py: pass a copy of
github.com/taesungp/contrastive-unpaired-translation with --official; torch setup without a
GPU: docs/OFFICIAL-BENCH.md. The checkpoint is read without the safetensors package.

Example:
  python scripts/official_render.py --official .official --checkpoint runs/q/checkpoint.safetensors \\
    --input ../shared/data/monet-etretat-painting.jpg --out official-render.png
"""
import argparse
import contextlib
import io
import json
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="path of a copy of the official CUT repository")
    p.add_argument("--checkpoint", required=True, help="a sincut checkpoint.safetensors")
    p.add_argument("--input", required=True, help="the picture to translate")
    p.add_argument("--out", required=True, help="the translated picture (PNG)")
    p.add_argument("--ema", action="store_true", help="the checkpoint's moving average of G")
    p.add_argument("--seed", type=int, default=0, help="torch seed (the noise)")
    return p.parse_args()


def read_g(path, prefix):
    """(config dict, {official G state_dict name: float32 numpy array}) from a sincut checkpoint."""
    from official_bench import read_safetensors
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "sincut-checkpoint":
        sys.exit("%s: not a sincut checkpoint" % path)
    g = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not g:
        sys.exit("%s: no %s* tensors%s" % (path, prefix, " (the run kept no EMA)" if "ema" in prefix else ""))
    return json.loads(meta["config"]), g


def main():
    a = parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from official_bench import checked_paths, parse_train_options, stub_missing

    official, picture = checked_paths(a.official, a.input)
    config, tensors = read_g(a.checkpoint, "ema.G." if a.ema else "param.G.")
    if config.get("model_resolution", config["crop"]) != config["crop"]:
        sys.exit("the checkpoint's model resolution differs from its crop: the official G "
                 "cannot be built with that geometry")

    import torch
    stub_missing(["visdom", "dominate", "GPUtil"])
    sys.path.insert(0, official)
    from data.base_dataset import get_transform
    from models import create_model
    from PIL import Image
    from util import util

    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # ModulatedConv2d's .cuda() on a CPU
    # The pair only fills the options' dataroot; G does not depend on it.
    opt, _ = parse_train_options(official, picture, picture, "official_render", "-1",
                                 config["crop"], config["batch"], config["ngf"], config["ndf"])
    torch.manual_seed(a.seed)
    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model(opt)
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    res = model.netG.load_state_dict(state, strict=False)
    # The blur kernels are buffers, not parameters: the checkpoint does not hold them.
    if res.unexpected_keys or any(not k.endswith(".kernel") for k in res.missing_keys):
        sys.exit("the checkpoint's G does not fit the official G: missing %s, unexpected %s"
                 % (res.missing_keys, res.unexpected_keys))

    opt.preprocess = "none"
    opt.no_flip = True
    transform = get_transform(opt, grayscale=False, method=Image.BILINEAR)
    x = transform(Image.open(picture).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        y = model.netG(x)
    util.save_image(util.tensor2im(y), a.out)
    print("%s: %d tensors of G loaded, %dx%d written to %s"
          % (a.checkpoint, len(state), y.shape[3], y.shape[2], a.out))


if __name__ == "__main__":
    main()
