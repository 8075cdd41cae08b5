#!/usr/bin/env python3
"""Writes a golden fixture (the format of ../shared/GOLDEN.md) with the official SinCUT code,
starting from the parameters of a sincut checkpoint: the official numbers for a *trained* state,
which the shared fixtures (near initialisation) cannot show (issue 15). Check it with
`sincut check-golden DIR`.

What it writes to --out:
  * params.safetensors: the checkpoint's G, D and F parameters (official names);
  * step.safetensors: inputs (real crops drawn by the official singleimage dataset with
    --seed, decoder noise, NCE patch ids), outputs (fake, d_real, d_fake, r1.input_grad),
    every loss, grad.D.* (of loss D), grad.G.* and grad.F.* (of loss G, D frozen) and
    grad_r1.D.* (the R1 term alone);
  * traj.safetensors: --iters official optimize_parameters() iterations with fresh Adam (lr,
    betas as the checkpoint's config), their inputs and losses, and the final parameters;
  * rounding.json: per quantity, how far float32 rounding alone moves it: the largest distance
    to the same computation in float64 of the float32 result and of float32 replays in other
    summation orders (another thread count; oneDNN off). A trained state is worse conditioned
    than one near initialisation (a few gradients, such as the noise weight's, sum terms that
    nearly cancel), so one float32 realisation understates the spread of correct float32
    engines there. Trajectory quantities also take float32 replays with every parameter
    perturbed by a relative 3e-5 after the first iteration (about how far two correct float32
    engines are apart by then);
  * meta.json: the configuration.

The randomness the official code draws itself (decoder noise, NCE patch ids) is fixed by
replacing NoiseInjection's draw and PatchSampleF's permutation with the fixture's values, so the
official computation is otherwise untouched.

Standalone like scripts/official_train.py: --official is a copy of
github.com/taesungp/contrastive-unpaired-translation; torch without a GPU: docs/OFFICIAL-BENCH.md.
The checkpoint is read without the safetensors package; the fixture is written the same way.

Example (a checkpoint after 1500 quick-preset iterations):
  python scripts/official_fixture.py --official .official --checkpoint runs/q/checkpoint.safetensors \\
    --source ../shared/data/monet-etretat-painting.jpg --target ../shared/data/etretat-photo.jpg \\
    --out fixtures/trained-q
  sincut check-golden fixtures/trained-q
"""
import argparse
import contextlib
import io
import json
import os
import struct
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="path of a copy of the official CUT repository")
    p.add_argument("--checkpoint", required=True, help="a sincut checkpoint.safetensors")
    p.add_argument("--source", required=True, help="domain A picture")
    p.add_argument("--target", required=True, help="domain B picture")
    p.add_argument("--iters", type=int, default=3, help="trajectory iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="fixture folder (created)")
    p.add_argument("--f64", action="store_true",
                   help="also write step64.safetensors: the step computed in float64 (F64), to "
                        "set sincut's float64 engine against the official one")
    return p.parse_args()


def write_safetensors(path, tensors):
    """Writes {name: numpy float32 / int64 array} as safetensors (names sorted, data aligned)."""
    import numpy as np
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float64): "F64"}[a.dtype]
        data = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    a = parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from official_bench import checked_paths, parse_train_options, read_safetensors, stub_missing

    official, source, target = checked_paths(a.official, a.source, a.target)
    ck, meta = read_safetensors(a.checkpoint)
    if meta.get("format") != "sincut-checkpoint":
        sys.exit("%s: not a sincut checkpoint" % a.checkpoint)
    cfg = json.loads(meta["config"])
    if cfg["d_window"] != cfg["crop"] or cfg.get("model_resolution", cfg["crop"]) != cfg["crop"]:
        sys.exit("only checkpoints whose D window and model resolution equal the crop "
                 "(train.py's geometry) are supported")
    params = {k[len("param."):]: v for k, v in ck.items() if k.startswith("param.")}

    import random
    import numpy as np
    import torch

    stub_missing(["visdom", "dominate", "GPUtil"])
    sys.path.insert(0, official)
    from data import create_dataset
    from models import create_model, networks, stylegan_networks

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # ModulatedConv2d's .cuda() on a CPU
    opt, _ = parse_train_options(official, source, target, "official_fixture", "-1",
                                 cfg["crop"], cfg["batch"], cfg["ngf"], cfg["ndf"])
    for key, ours in (("lambda_NCE", "lambda_NCE"), ("lambda_R1", "lambda_R1"),
                      ("lambda_identity", "lambda_identity"), ("lambda_GAN", "lambda_GAN"),
                      ("nce_T", "nce_T"), ("netF_nc", "netF_nc")):
        setattr(opt, key, type(getattr(opt, key))(cfg[ours]))

    # The fixture's randomness, consumed in the official call order.
    injected = {"noise": None, "ids": []}

    def noise_forward(self, image, noise=None):
        if noise is None:
            assert injected["noise"] is not None, "the decoder asked for noise twice in one pass"
            noise, injected["noise"] = injected["noise"].to(image.dtype), None
        return image + self.weight * noise

    stylegan_networks.NoiseInjection.forward = noise_forward

    class FixedPermutation:
        """Stands in for numpy in PatchSampleF: permutation(n) starts with the next fixture id."""
        def __getattr__(self, name):
            return getattr(np.random, name)

        def permutation(self, n):
            want = injected["ids"].pop(0)
            assert 0 <= want < n
            return np.array([want] + [i for i in range(n) if i != want])

    class NumpyShim:
        random = FixedPermutation()

        def __getattr__(self, name):
            return getattr(np, name)

    networks.np = NumpyShim()

    with contextlib.redirect_stdout(io.StringIO()):
        dataset = create_dataset(opt)
    dataset.set_epoch(1)
    batches = iter(dataset)
    rng = np.random.RandomState(a.seed + 1)
    n, s = cfg["batch"], cfg["crop"]

    def draw():
        b = next(batches)
        return {"real_A": b["A"].numpy().astype(np.float32), "real_B": b["B"].numpy().astype(np.float32),
                "noise": rng.standard_normal((2 * n, 1, s, s)).astype(np.float32),
                "nce_ids_x": np.array([rng.randint(s * s), rng.randint((s // 2) ** 2),
                                       rng.randint((s // 2) ** 2)], dtype=np.int64),
                "nce_ids_y": np.array([rng.randint(s * s), rng.randint((s // 2) ** 2),
                                       rng.randint((s // 2) ** 2)], dtype=np.int64)}

    step_in = draw()
    traj_in = [draw() for _ in range(a.iters)]

    def build():
        """A fresh official model holding the checkpoint's parameters."""
        with contextlib.redirect_stdout(io.StringIO()):
            model = create_model(opt)
            # Builds F's MLPs (their shapes follow the features), then every parameter is replaced.
            injected["noise"] = torch.zeros(2 * n, 1, s, s)
            injected["ids"] = [0] * 6
            first = {"A": torch.from_numpy(step_in["real_A"]), "B": torch.from_numpy(step_in["real_B"]),
                     "A_paths": source, "B_paths": target}
            model.data_dependent_initialize(first)
        nets = {"G": model.netG, "D": model.netD, "F": model.netF}
        for net, module in nets.items():
            own = dict(module.named_parameters())
            got = {k[2:]: v for k, v in params.items() if k.startswith(net + ".")}
            if sorted(own) != sorted(got):
                sys.exit("the checkpoint's %s parameters do not match the official %s: missing %s, "
                         "unexpected %s" % (net, net, sorted(set(own) - set(got)), sorted(set(got) - set(own))))
            with torch.no_grad():
                for k, p in own.items():
                    if tuple(p.shape) != got[k].shape:
                        sys.exit("%s.%s: shape %s in the checkpoint, %s official" % (net, k, got[k].shape, tuple(p.shape)))
                    p.copy_(torch.from_numpy(got[k]))
        return model

    def set_step_input(m, x, dtype):
        injected["noise"] = torch.from_numpy(x["noise"]).to(dtype)
        injected["ids"] = [int(i) for i in x["nce_ids_x"]] + [int(i) for i in x["nce_ids_y"]]
        m.set_input({"A": torch.from_numpy(x["real_A"]).to(dtype).clone(),
                     "B": torch.from_numpy(x["real_B"]).to(dtype).clone(),
                     "A_paths": source, "B_paths": target})

    def losses(m):
        return {"loss." + k: float(getattr(m, "loss_" + k)) for k in
                ("D_fake", "D_real", "D_R1", "D", "G_GAN", "NCE", "NCE_Y", "idt", "G")}

    def one_step(m, x, dtype):
        """The fixture's step quantities (no update) as float64 numpy arrays."""
        mn = {"G": m.netG, "D": m.netD, "F": m.netF}
        set_step_input(m, x, dtype)
        m.forward()
        out = {"fake": m.fake.detach()}
        m.set_requires_grad(m.netD, True)
        for p in list(m.netD.parameters()) + list(m.netG.parameters()) + list(m.netF.parameters()):
            p.grad = None
        loss_d = m.compute_D_loss()
        out["d_real"] = m.pred_real.detach().reshape(n, -1)
        out["d_fake"] = m.netD(m.fake_B.detach()).detach().reshape(n, -1)
        out["r1.input_grad"], = torch.autograd.grad(m.pred_real.sum(), m.real_B, retain_graph=True)
        d_params = dict(m.netD.named_parameters())
        r1 = torch.autograd.grad(m.loss_D_R1, list(d_params.values()), retain_graph=True,
                                 allow_unused=True)  # the last bias does not reach R1
        for (k, p), g in zip(d_params.items(), r1):
            out["grad_r1.D." + k] = torch.zeros_like(p) if g is None else g
        loss_d.backward()
        for k, p in d_params.items():
            out["grad.D." + k] = p.grad.detach().clone()
        m.set_requires_grad(m.netD, False)
        for p in list(m.netG.parameters()) + list(m.netF.parameters()):
            p.grad = None
        m.compute_G_loss().backward()
        for net in ("G", "F"):
            for k, p in mn[net].named_parameters():
                out["grad.%s.%s" % (net, k)] = p.grad.detach().clone()
        assert injected["noise"] is None and not injected["ids"], "fixture randomness left unused"
        res = {k: v.detach().double().numpy() for k, v in out.items()}
        res.update({k: np.array([v]) for k, v in losses(m).items()})
        return res

    def trajectory(m, xs, dtype, perturb=None):
        """--iters official iterations with fresh Adam: {k<i>.loss.*, final.*} as float64."""
        m.optimizer_G = torch.optim.Adam(m.netG.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"])
        m.optimizer_D = torch.optim.Adam(m.netD.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"])
        m.optimizer_F = torch.optim.Adam(m.netF.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"])
        res = {}
        for i, x in enumerate(xs):
            set_step_input(m, x, dtype)
            m.optimize_parameters()
            assert injected["noise"] is None and not injected["ids"], "fixture randomness left unused"
            res.update({"k%d.%s" % (i, k): np.array([v]) for k, v in losses(m).items()})
            if i == 0 and perturb is not None:
                with torch.no_grad():
                    for p in list(m.netG.parameters()) + list(m.netD.parameters()) + list(m.netF.parameters()):
                        p.mul_(1 + perturb * torch.randn_like(p))
        for net, mod in (("G", m.netG), ("D", m.netD), ("F", m.netF)):
            for k, p in mod.named_parameters():
                res["final.%s.%s" % (net, k)] = p.detach().double().numpy()
        return res

    def rel(x, ref):
        d = np.linalg.norm((x - ref).ravel())
        r = np.linalg.norm(ref.ravel())
        return float(d / r) if r > 0 else float(d > 0)

    def fresh(dtype):
        m = build()
        if dtype == torch.float64:
            for net in (m.netG, m.netD, m.netF):
                net.double()
        return m

    # One f32 model object is used throughout; optimizers are rebuilt per trajectory.
    step32 = one_step(fresh(torch.float32), step_in, torch.float32)
    step64 = one_step(fresh(torch.float64), step_in, torch.float64)
    threads = torch.get_num_threads()
    # Other correct float32 summation orders: another thread count, and oneDNN off.
    torch.set_num_threads(1 if threads > 1 else 2)
    step_orders = [one_step(fresh(torch.float32), step_in, torch.float32)]
    torch.set_num_threads(threads)
    with torch.backends.mkldnn.flags(enabled=False):
        step_orders.append(one_step(fresh(torch.float32), step_in, torch.float32))
    traj32 = trajectory(fresh(torch.float32), traj_in, torch.float32)
    traj64 = trajectory(fresh(torch.float64), traj_in, torch.float64)
    torch.set_num_threads(1 if threads > 1 else 2)
    traj_threads = trajectory(fresh(torch.float32), traj_in, torch.float32)
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed + 2)
    traj_perturbed = [trajectory(fresh(torch.float32), traj_in, torch.float32, perturb=3e-5) for _ in range(2)]

    rounding = {k: max([rel(v, step64[k])] + [rel(o[k], step64[k]) for o in step_orders])
                for k, v in step32.items()}
    for k, v in traj32.items():
        rounding[k] = max([rel(v, traj64[k]), rel(traj_threads[k], traj64[k])] +
                          [rel(t[k], traj64[k]) for t in traj_perturbed])

    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "params.safetensors"),
                      {k: v.astype(np.float32) for k, v in params.items()})
    step = {k: v.astype(np.float32) for k, v in step32.items()}
    step.update({k: v for k, v in step_in.items()})
    write_safetensors(os.path.join(a.out, "step.safetensors"), step)
    traj = {k: v.astype(np.float32) for k, v in traj32.items()}
    for i, x in enumerate(traj_in):
        traj.update({"k%d.%s" % (i, k): v for k, v in x.items()})
    write_safetensors(os.path.join(a.out, "traj.safetensors"), traj)
    if a.f64:
        write_safetensors(os.path.join(a.out, "step64.safetensors"), dict(step64))
    with open(os.path.join(a.out, "rounding.json"), "w") as f:
        json.dump({k: float("%.3g" % v) for k, v in sorted(rounding.items())}, f, indent=1)
    meta_cfg = dict(cfg)
    meta_cfg.update({"d_tiles_per_side": 1, "nce_layers": [0, 2, 4], "nce_idt": True, "num_patches": 1,
                     "nce_includes_all_negatives_from_minibatch": True, "gan_mode": "nonsaturating",
                     "iters": a.iters})
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"source": "official PyTorch SinCUT implementation (%s), torch %s, CPU, float32, "
                             "from the parameters of %s (iteration %s)"
                             % (official, torch.__version__, os.path.abspath(a.checkpoint),
                                meta.get("iteration", "?")),
                   "config": meta_cfg}, f, indent=1)
    worst = sorted(rounding.items(), key=lambda kv: -kv[1])[:3]
    print("%s: step losses %s; largest rounding %s" % (
        a.out, {k: round(float(v[0]), 4) for k, v in step32.items() if k.startswith("loss.")}, worst))


if __name__ == "__main__":
    main()
