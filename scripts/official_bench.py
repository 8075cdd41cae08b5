#!/usr/bin/env python3
"""Times the official SinCUT implementation (CUT repository, `--model sincut`) on one device.

Standalone: the crate never builds or imports this file. The official code is NOT part of this
repository: pass the path of a copy of it (the tree of github.com/taesungp/contrastive-unpaired-
translation) with --official. See docs/OFFICIAL-BENCH.md.

What it measures, as the official train.py runs it:
  * options from TrainOptions().parse() with `--model sincut` (dataset mode singleimage,
    stylegan2 G and D, lr 0.002, betas (0, 0.99), ...), plus --crop_size/--batch_size/--ngf/--ndf;
  * batches from the official singleimage data pipeline (zoom_and_patch, load_size 1024),
    drawn before timing (train.py's data loading is not inside its optimize timer either);
  * create_model, data_dependent_initialize(first batch), setup, parallelize (on CUDA);
  * per iteration: set_input (untimed), synchronize, optimize_parameters(), synchronize;
    mean / median / min ms per iteration after --warmup iterations;
  * torch.cuda.max_memory_allocated / max_memory_reserved over the warm-up and timed iterations;
  * with --render-mp (or --render-size) the official generator's whole-image forward pass
    (as test.py: eval, no_grad, size rounded to a multiple of 4) on the source image resized to
    that many megapixels: first call (cuDNN autotuning included) and best/median of --render-reps,
    peak memory, or the out-of-memory error.

Widths. The official code derives the network widths from min(load_size, crop_size) (its "model
resolution") and builds D for the whole crop. Official SinCUT trains at crop 64, so model
resolution 64 (G 80/160 channels at ngf 10; D 32..384 at ndf 8). sincut keeps those widths at
any crop and scores each 64x64 tile of a larger crop with D (DESIGN.md section 5). By default
(--model-res 64 --d-window 64) this script builds the official networks the same way: G and D are
constructed with crop_size = model resolution, and D is the official TileStyleGAN2Discriminator
(models/stylegan_networks.py) with D_patch_size = d-window, which scores the tiles of each crop
in row-major order. At crop 64 this is exactly train.py. --as-trainpy instead builds everything
from --crop_size as train.py would (at crop 128: G 40/80 channels, D built for 128).
"""
import argparse
import copy
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import types


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="path of a copy of the official CUT repository")
    p.add_argument("--source", required=True, help="domain A picture (e.g. the painting)")
    p.add_argument("--target", required=True, help="domain B picture (e.g. the photo)")
    p.add_argument("--crop", type=int, default=64, help="crop size (official SinCUT: 64)")
    p.add_argument("--batch", type=int, default=16, help="batch size (official SinCUT: 16)")
    p.add_argument("--ngf", type=int, default=10, help="official SinCUT default: 10")
    p.add_argument("--ndf", type=int, default=8, help="official SinCUT default: 8")
    p.add_argument("--model-res", type=int, default=64,
                   help="resolution the widths come from (official SinCUT: 64, as sincut)")
    p.add_argument("--d-window", type=int, default=64,
                   help="D scores each d-window x d-window tile of a crop (sincut: 64)")
    p.add_argument("--as-trainpy", action="store_true",
                   help="ignore --model-res/--d-window: widths and D from --crop, exactly as "
                        "train.py --crop_size CROP would build them")
    p.add_argument("--iters", type=int, default=30, help="timed iterations (0: no training)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations before them")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-batches", type=int, default=8,
                   help="distinct batches drawn from the pipeline, reused in turn (timing does "
                        "not depend on the pixels; this keeps the untimed data preparation short)")
    p.add_argument("--synthetic", action="store_true",
                   help="random crops of the right shape instead of the official data pipeline")
    p.add_argument("--render-mp", type=float, default=0.0,
                   help="also time the whole-image G forward pass on the source resized to this "
                        "many megapixels (aspect kept)")
    p.add_argument("--render-size", default=None, help="WxH for the render instead of --render-mp")
    p.add_argument("--save-render-input", default=None,
                   help="write the resized render input here (PNG), to render the same picture "
                        "with sincut render")
    p.add_argument("--render-reps", type=int, default=3, help="timed render passes after the first")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--label", default=None, help="free text stored in the JSON")
    return p.parse_args()


def stub_missing(names):
    """Empty stand-in modules for optional packages (visdom, dominate, GPUtil) that are not
    installed, should an import reach them. Nothing this script calls uses them (only train.py's
    Visualizer does, and it is never created). Every attribute lookup on a stand-in raises
    AttributeError, as on any module: code that probes modules (inspect.getmodule's
    hasattr(module, '__file__') over all of sys.modules, run by torch.library when torchvision
    registers its operators, or importlib.util.find_spec) must see an ordinary module that lacks
    the attribute; `from visdom import Visdom` then fails with the usual ImportError."""
    import importlib.machinery
    import importlib.util

    def missing(name):
        def __getattr__(attr):
            raise AttributeError("module %r is an empty stand-in made by official_bench.py "
                                 "(the package is not installed); it has no attribute %r"
                                 % (name, attr))
        return __getattr__

    for name in names:
        if name in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            m = types.ModuleType(name, "empty stand-in for %s (official_bench.py)" % name)
            m.__spec__ = importlib.machinery.ModuleSpec(name, None)
            m.__getattr__ = missing(name)
            sys.modules[name] = m


def official_commit(path):
    for f in ("COMMIT", ".commit"):
        fp = os.path.join(path, f)
        if os.path.isfile(fp):
            return open(fp).read().strip()
    try:
        return subprocess.check_output(["git", "-C", path, "rev-parse", "HEAD"],
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except Exception:
        return None


def parse_train_options(official, source, target, name, gpu_ids, crop, batch, ngf, ndf):
    """train.py's options for `--model sincut` on a temporary dataroot holding the pair (the
    singleimage dataset reads <dataroot>/trainA and trainB, one picture each): (opt, dataroot).
    The official packages must be importable (`official` on sys.path)."""
    import contextlib
    import io
    from options.train_options import TrainOptions
    work = tempfile.mkdtemp(prefix=name + "_")
    for sub, pic in (("trainA", source), ("trainB", target)):
        os.makedirs(os.path.join(work, sub))
        os.symlink(pic, os.path.join(work, sub, os.path.basename(pic)))
    cmd = ("--model sincut --dataroot %s --name %s --checkpoints_dir %s "
           "--gpu_ids %s --crop_size %d --batch_size %d --ngf %d --ndf %d --num_threads 0 "
           "--display_id 0 --no_html" % (work, name, os.path.join(work, "checkpoints"),
                                          gpu_ids, crop, batch, ngf, ndf))
    # CUTModel.modify_commandline_options reads sys.argv itself: show it train.py's command line.
    argv, sys.argv = sys.argv, [os.path.join(official, "train.py")] + cmd.split()
    try:
        # TrainOptions prints every option; keep our output short.
        with contextlib.redirect_stdout(io.StringIO()):
            opt = TrainOptions(cmd_line=cmd).parse()
    finally:
        sys.argv = argv
    return opt, work


def checked_paths(official, *pictures):
    """Absolute paths of the official repository copy and the pictures, or a one-line exit."""
    official = os.path.abspath(official)
    if not os.path.isfile(os.path.join(official, "models", "sincut_model.py")):
        sys.exit("--official %s: no models/sincut_model.py there" % official)
    pictures = [os.path.abspath(p) for p in pictures]
    for f in pictures:
        if not os.path.isfile(f):
            sys.exit("no such picture: %s" % f)
    return [official] + pictures


def read_safetensors(path):
    """({name: numpy array}, metadata) of a safetensors file of F32/F64/I64 tensors, read
    without the safetensors package; a one-line exit for anything else."""
    import struct
    import numpy as np
    try:
        with open(path, "rb") as f:
            raw = f.read()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
    except (OSError, struct.error, ValueError) as e:
        sys.exit("%s: not a readable safetensors file (%s)" % (path, e))
    meta = header.pop("__metadata__", {})
    types = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, t in header.items():
        if t["dtype"] not in types:
            sys.exit("%s: %s is %s" % (path, name, t["dtype"]))
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=types[t["dtype"]]).reshape(t["shape"]).copy()
    return out, meta


def main():
    a = parse_args()
    official, source, target = checked_paths(a.official, a.source, a.target)

    import numpy as np
    import torch
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")

    stub_missing(["visdom", "dominate", "GPUtil"])
    import warnings
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")
    # get_current_losses() does float(loss) on tensors that require grad (harmless).
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
    sys.path.insert(0, official)
    from data import create_dataset
    from models import create_model, networks
    from models import stylegan_networks

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)

    cuda = a.device == "cuda"
    if not cuda:
        # The official ModulatedConv2d.forward creates its all-ones style with .cuda(): the code
        # runs on CUDA only. For a CPU run (smoke tests) make Tensor.cuda() return the tensor.
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    opt, work = parse_train_options(official, source, target, "official_bench",
                                    "0" if cuda else "-1", a.crop, a.batch, a.ngf, a.ndf)
    import contextlib
    import io

    if a.as_trainpy:
        model_res = 2 ** int(np.rint(np.log2(min(opt.load_size, opt.crop_size))))
        d_window = model_res
    else:
        model_res, d_window = a.model_res, a.d_window
        if a.crop % d_window:
            sys.exit("--crop %d is not a multiple of --d-window %d" % (a.crop, d_window))
    exact_trainpy = a.as_trainpy or (
        model_res == d_window == 2 ** int(np.rint(np.log2(min(opt.load_size, opt.crop_size)))))
    variant = ("train.py as is" if exact_trainpy else
               "official layers, widths from resolution %d, D on %dx%d tiles (%s per crop)"
               % (model_res, d_window, d_window, (a.crop // d_window) ** 2))

    # ---- batches: official data pipeline, drawn before timing --------------------------------
    n_batches = max(1, min(a.warmup + a.iters, a.data_batches))
    t0 = time.perf_counter()
    batches = []
    if a.synthetic:
        for _ in range(n_batches):
            batches.append({"A": torch.rand(a.batch, 3, a.crop, a.crop) * 2 - 1,
                            "B": torch.rand(a.batch, 3, a.crop, a.crop) * 2 - 1,
                            "A_paths": [source] * a.batch, "B_paths": [target] * a.batch})
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            dataset = create_dataset(opt)
        dataset.set_epoch(1)
        for i, d in enumerate(dataset):
            batches.append(d)
            if len(batches) == n_batches:
                break
    data_s = time.perf_counter() - t0
    assert tuple(batches[0]["A"].shape) == (a.batch, 3, a.crop, a.crop), batches[0]["A"].shape

    # ---- model, as train.py builds it --------------------------------------------------------
    if not exact_trainpy:
        orig_define_D = networks.define_D

        def define_D_tiled(input_nc, ndf, netD, n_layers_D=3, norm='batch', init_type='normal',
                           init_gain=0.02, no_antialias=False, gpu_ids=[], opt=None):
            opt.D_patch_size = d_window
            net = stylegan_networks.TileStyleGAN2Discriminator(
                input_nc, ndf, n_layers_D, no_antialias=no_antialias, size=d_window, opt=opt)
            return networks.init_net(net, init_type, init_gain, gpu_ids, initialize_weights=False)

        networks.define_D = define_D_tiled
        opt.crop_size = model_res  # the widths of G come from here (read at construction only)
    with contextlib.redirect_stdout(io.StringIO()):
        model = create_model(opt)
    if not exact_trainpy:
        networks.define_D = orig_define_D
        opt.crop_size = a.crop

    def n_params(net):
        return sum(p.numel() for p in net.parameters())

    with contextlib.redirect_stdout(io.StringIO()):
        model.data_dependent_initialize(batches[0])
        model.setup(opt)
        if cuda:
            model.parallelize()  # train.py does; DataParallel over one GPU
    params = {"G": n_params(model.netG), "D": n_params(model.netD), "F": n_params(model.netF)}
    g = getattr(model.netG, "module", model.netG)
    d = getattr(model.netD, "module", model.netD)
    def out_width(block):  # output channels of a ConvLayer or ResBlock
        convs = [m for m in block.modules() if getattr(m, "weight", None) is not None
                 and m.weight.dim() == 4]
        return int(convs[-1].weight.shape[0])

    widths = {"G_encoder": [out_width(c) for c in list(g.encoder.convs)[1:]],
              "D": [out_width(c) for c in d.convs],
              "D_class": type(d).__name__}

    res = {
        "label": a.label,
        "official_path": official,
        "official_commit": official_commit(official),
        "variant": variant,
        "config": {"crop": a.crop, "batch": a.batch, "ngf": a.ngf, "ndf": a.ndf,
                   "model_res": model_res, "d_window": d_window, "exact_trainpy": exact_trainpy,
                   "data": "synthetic" if a.synthetic else "official singleimage pipeline",
                   "load_size": opt.load_size, "preprocess": opt.preprocess,
                   "lr": opt.lr, "beta1": opt.beta1, "beta2": opt.beta2,
                   "lambda_NCE": opt.lambda_NCE, "nce_layers": opt.nce_layers,
                   "netG": opt.netG, "netD": opt.netD, "gan_mode": opt.gan_mode,
                   "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
                   "warmup": a.warmup, "iters": a.iters, "seed": a.seed,
                   "data_batches": len(batches)},
        "params": params,
        "widths": widths,
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "data_prep_s": round(data_s, 3),
    }
    if cuda:
        res["cuda_runtime"] = torch.version.cuda
    else:
        res["cpu_patch"] = "Tensor.cuda() made a no-op (official ModulatedConv2d calls .cuda())"

    # ---- training iterations -----------------------------------------------------------------
    if a.iters > 0:
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(a.warmup + a.iters):
            model.set_input(batches[i % len(batches)])
            sync()
            t = time.perf_counter()
            model.optimize_parameters()
            sync()
            dt = (time.perf_counter() - t) * 1e3
            if i >= a.warmup:
                times.append(dt)
        losses = {k: float(v) for k, v in model.get_current_losses().items()}
        train = {"mean_ms": statistics.mean(times), "median_ms": statistics.median(times),
                 "min_ms": min(times), "max_ms": max(times),
                 "stdev_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
                 "ms": [round(x, 3) for x in times], "last_losses": losses,
                 "finite": all(math.isfinite(v) for v in losses.values())}
        if cuda:
            train["peak_alloc_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
            train["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2 ** 20
        res["train"] = train

    # ---- whole-image render (test.py: eval, no_grad, size a multiple of 4) ---------------------
    if a.render_mp > 0 or a.render_size:
        from PIL import Image
        img = Image.open(source).convert("RGB")
        if a.render_size:
            w, h = (int(v) for v in a.render_size.lower().split("x"))
        else:
            s = math.sqrt(a.render_mp * 1e6 / (img.size[0] * img.size[1]))
            w, h = img.size[0] * s, img.size[1] * s
        w, h = int(round(w / 4) * 4), int(round(h / 4) * 4)
        render = {"width": w, "height": h, "megapixels": w * h / 1e6}
        big = img.resize((w, h), Image.BILINEAR)
        if a.save_render_input:
            big.save(a.save_render_input)
            render["input_saved"] = os.path.abspath(a.save_render_input)
        arr = np.asarray(big, dtype=np.float32)
        del big
        x_cpu = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous() / 127.5 - 1.0
        del arr
        G = model.netG
        G.eval()
        # Free the training state first so the peak below is the render's own.
        for name in ("real_A", "real_B", "real", "fake", "fake_B", "idt_B", "pred_real",
                     "loss_D", "loss_G"):
            if hasattr(model, name):
                setattr(model, name, None)
        for o in model.optimizers:
            o.state.clear()
        for p in list(model.netD.parameters()) + list(model.netF.parameters()) + list(G.parameters()):
            p.grad = None
        oom_types = tuple(t for t in (getattr(torch.cuda, "OutOfMemoryError", None),) if t)
        try:
            if cuda:
                torch.cuda.empty_cache()
                sync()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            x = x_cpu.to(a.device)
            times = []
            with torch.no_grad():
                for i in range(1 + a.render_reps):
                    sync()
                    t = time.perf_counter()
                    y = G(x)
                    sync()
                    times.append((time.perf_counter() - t) * 1e3)
                    assert tuple(y.shape) == (1, 3, h, w), y.shape
                    del y
            render["first_ms"] = times[0]
            if len(times) > 1:
                render["min_ms"] = min(times[1:])
                render["median_ms"] = statistics.median(times[1:])
            render["ms"] = [round(t, 3) for t in times]
            if cuda:
                render["peak_alloc_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
                render["peak_alloc_above_weights_mib"] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
                render["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2 ** 20
            render["oom"] = False
        except Exception as e:  # OOM: report it instead of failing
            msg = str(e)
            if not (isinstance(e, oom_types) or "out of memory" in msg.lower()):
                raise
            render["oom"] = True
            render["error"] = msg.splitlines()[0][:300]
            if cuda:
                render["peak_alloc_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
                render["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2 ** 20
                torch.cuda.empty_cache()
        res["render"] = render

    # ---- report ------------------------------------------------------------------------------
    print("official SinCUT (%s) on %s, torch %s: crop %d, batch %d, ngf %d, ndf %d; %s"
          % (res["official_commit"] or "commit unknown", res["device"], res["torch"],
             a.crop, a.batch, a.ngf, a.ndf, variant))
    print("params: G %d, D %d, F %d; widths: G encoder %s, D %s (%s)"
          % (params["G"], params["D"], params["F"], widths["G_encoder"], widths["D"],
             widths["D_class"]))
    rows = []
    if "train" in res:
        t = res["train"]
        rows.append(("optimize_parameters ms/iter (mean)", "%.2f" % t["mean_ms"]))
        rows.append(("optimize_parameters ms/iter (median)", "%.2f" % t["median_ms"]))
        rows.append(("optimize_parameters ms/iter (min)", "%.2f" % t["min_ms"]))
        if "peak_alloc_mib" in t:
            rows.append(("train peak allocated MiB", "%.0f" % t["peak_alloc_mib"]))
            rows.append(("train peak reserved MiB", "%.0f" % t["peak_reserved_mib"]))
        rows.append(("losses finite", str(t["finite"])))
    if "render" in res:
        r = res["render"]
        tag = "render %dx%d (%.1f MP)" % (r["width"], r["height"], r["megapixels"])
        if r["oom"]:
            rows.append((tag, "OUT OF MEMORY"))
        else:
            rows.append((tag + " first ms", "%.1f" % r["first_ms"]))
            if "median_ms" in r:
                rows.append((tag + " median ms", "%.1f" % r["median_ms"]))
                rows.append((tag + " min ms", "%.1f" % r["min_ms"]))
        if "peak_alloc_mib" in r:
            rows.append((tag + " peak allocated MiB", "%.0f" % r["peak_alloc_mib"]))
            rows.append((tag + " peak reserved MiB", "%.0f" % r["peak_reserved_mib"]))
    width = max(len(k) for k, _ in rows) if rows else 0
    for k, v in rows:
        print("  %-*s  %s" % (width, k, v))
    if a.json:
        d = os.path.dirname(os.path.abspath(a.json))
        os.makedirs(d, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
        print("wrote %s" % a.json)


if __name__ == "__main__":
    main()
