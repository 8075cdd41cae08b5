//! The op parity suite: every op of `trait Backend`, written once here, run on each backend
//! (`cpu::*` on `CpuBackend<f32>`, `cuda::*` on `CudaBackend` when a GPU or the CPU emulator
//! of the driver opens; without one they print `skipped: no CUDA device` and pass).
//!
//! Each case draws fresh seeded inputs (channel widths 3, 80, 160, 384; odd and non-square
//! sizes, so no shape is a multiple of a block or tile), runs the op on the backend under test,
//! on `CpuBackend<f32>` (the reference every kernel is held to) and on `CpuBackend<f64>` with
//! the same (f32-exact) inputs, and checks two things, printing the worst element of each:
//! - against f64: the f32 result is within the op's rounding allowance (this is what makes the
//!   CPU backend's own run a test: its AVX-512 GEMM and its f32 sums meet the f64 code);
//! - against CPU f32: within the op's kernel allowance, 0 for the ops whose kernels repeat the
//!   CPU's operation order (elementwise, layout, Adam): bit for bit.
//!
//! CUDA outputs are poison-filled (NaN) before each launch, so an element a kernel does not
//! write fails.

mod common;
use common::Rng;
use ndarray::Array4;
use sincut::backend::Backend;
use sincut::backend::cpu::CpuBackend;
use sincut::ops::adam::AdamConfig;
use sincut::ops::blur::Blur;

type Cpu32 = CpuBackend<f32>;
type Cpu64 = CpuBackend<f64>;

/// An allowance |got − want| ≤ atol·max|want| + rtol·|want|, element by element.
#[derive(Clone, Copy, Debug)]
struct Tol {
    /// Relative to the largest magnitude of the expected result (sums that cancel).
    atol: f64,
    rtol: f64,
}

const EXACT: Tol = Tol {
    atol: 0.0,
    rtol: 0.0,
};

/// One rounding of an elementwise result (a few units of f32's roundoff).
const ROUNDED: Tol = Tol {
    atol: 1e-7,
    rtol: 1e-6,
};

const fn tol(atol: f64, rtol: f64) -> Tol {
    Tol { atol, rtol }
}

/// Asserts `got` is within `tol` of `want` everywhere (NaN fails) and prints the worst element.
fn within(what: &str, got: &[f64], want: &[f64], t: Tol) {
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ratio = if err.is_nan() {
            f64::INFINITY
        } else if err == 0.0 {
            0.0
        } else {
            err / (t.atol * scale + t.rtol * w.abs())
        };
        if ratio > worst.1 {
            worst = (i, ratio);
        }
    }
    let i = worst.0;
    println!(
        "{what}: worst element {i}: {} vs {} (|err| {:e}, {:.3} of the allowance)",
        got[i],
        want[i],
        (got[i] - want[i]).abs(),
        worst.1
    );
    assert!(
        worst.1 <= 1.0,
        "{what}: element {i}: {} vs {} exceeds {t:?}",
        got[i],
        want[i]
    );
}

fn flat<T: num_traits::ToPrimitive>(a: &Array4<T>) -> Vec<f64> {
    a.iter().map(|v| v.to_f64().unwrap()).collect()
}

/// The outputs of one case on the backend under test, the CPU in f32 and the CPU in f64.
struct Runs {
    got: Vec<Array4<f32>>,
    cpu: Vec<Array4<f32>>,
    exact: Vec<Array4<f64>>,
}

impl Runs {
    /// Checks output `k` (named `what`): against f64 within `vs_f64`, against the CPU within
    /// `vs_cpu`.
    fn check(&self, k: usize, what: &str, vs_f64: Tol, vs_cpu: Tol) {
        assert_eq!(self.got[k].dim(), self.exact[k].dim(), "{what}: shapes");
        within(
            &format!("{what} vs f64"),
            &flat(&self.got[k]),
            &flat(&self.exact[k]),
            vs_f64,
        );
        within(
            &format!("{what} vs cpu f32"),
            &flat(&self.got[k]),
            &flat(&self.cpu[k]),
            vs_cpu,
        );
    }
}

/// Runs `$body` (which returns a `Vec` of tensors downloaded from `$e`) on the backend `$b`,
/// on CPU f32 and on CPU f64; each input array named in `[...]` is given to the body as a
/// reference in the backend's element type.
macro_rules! runs {
    ($b:expr, [$($x:ident),*], |$e:ident| $body:expr) => {{
        let got = {
            let $e = $b;
            $(let $x = &$x;)*
            $body
        };
        let cpu = {
            let $e = &Cpu32::new();
            $(let $x = &$x;)*
            $body
        };
        let exact = {
            let $e = &Cpu64::new();
            $(let $x = &$x.mapv(f64::from);)*
            $body
        };
        Runs { got, cpu, exact }
    }};
}

/// Activation shapes: channels 3, 80, 160, 384; odd and non-square spatial sizes.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (2, 3, 17, 19),
    (3, 80, 13, 9),
    (2, 160, 7, 33),
    (2, 384, 5, 5),
    (1, 80, 64, 65),
];

/// A (C, 1, 1, 1) vector.
fn vec4(r: &mut Rng, c: usize) -> Array4<f32> {
    r.a4((c, 1, 1, 1))
}

fn relu<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let mut r = Rng(100 + i as u64);
        let (x, dy) = (r.a4(s), r.a4(s));
        let o = runs!(b, [x, dy], |e| {
            let mut y = e.upload(x).unwrap();
            e.relu(&mut y).unwrap();
            let mut d = e.upload(dy).unwrap();
            e.relu_backward(&y, &mut d).unwrap();
            vec![e.download(&y).unwrap(), e.download(&d).unwrap()]
        });
        o.check(0, &format!("relu fwd {s:?}"), EXACT, EXACT);
        o.check(1, &format!("relu bwd {s:?}"), EXACT, EXACT);
    }
}

fn residual<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let mut r = Rng(200 + i as u64);
        let (x, y) = (r.a4(s), r.a4(s));
        let o = runs!(b, [x, y], |e| {
            let a = e
                .residual(&e.upload(x).unwrap(), &e.upload(y).unwrap())
                .unwrap();
            let mut d = e.upload(x).unwrap();
            e.residual_backward(&mut d).unwrap();
            vec![e.download(&a).unwrap(), e.download(&d).unwrap()]
        });
        // (a + b)/√2 can cancel: an allowance on the result's scale too.
        o.check(0, &format!("residual fwd {s:?}"), ROUNDED, EXACT);
        o.check(1, &format!("residual bwd {s:?}"), ROUNDED, EXACT);
    }
}

/// SHAPES, and a linear layer's many rows of 1×1 planes (a channel sum's pieces span images).
const CHANNEL_SUM_SHAPES: &[(usize, usize, usize, usize)] =
    &[(2100, 16, 1, 1), (40, 8, 11, 13), (3, 8, 30, 31)];

fn bias<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().chain(CHANNEL_SUM_SHAPES).enumerate() {
        let mut r = Rng(300 + i as u64);
        let (x, v) = (r.a4(s), vec4(&mut r, s.1));
        let o = runs!(b, [x, v], |e| {
            let mut y = e.upload(x).unwrap();
            e.add_bias(&mut y, &e.upload(v).unwrap()).unwrap();
            let g = e.bias_grad(&e.upload(x).unwrap()).unwrap();
            vec![e.download(&y).unwrap(), e.download(&g).unwrap()]
        });
        o.check(0, &format!("bias add {s:?}"), ROUNDED, EXACT);
        // Channel sums, accumulated in double on both sides and rounded once.
        o.check(1, &format!("bias grad {s:?}"), ROUNDED, tol(1e-6, 1e-6));
    }
}

fn fused_lrelu<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().chain(CHANNEL_SUM_SHAPES).enumerate() {
        let mut r = Rng(400 + i as u64);
        let (x, v, dy, t) = (r.a4(s), vec4(&mut r, s.1), r.a4(s), r.a4(s));
        let o = runs!(b, [x, v, dy, t], |e| {
            let mut y = e.upload(x).unwrap();
            e.fused_lrelu(&mut y, &e.upload(v).unwrap()).unwrap();
            let d_in = e.upload(dy).unwrap();
            let (d, db) = e.fused_lrelu_backward(&y, &d_in).unwrap();
            let mut tt = e.upload(t).unwrap();
            e.fused_lrelu_tangent(&y, &mut tt).unwrap();
            let out = [&y, &d, &db, &tt, &d_in];
            out.iter()
                .map(|a| e.download(a).unwrap())
                .collect::<Vec<_>>()
        });
        // f64 takes the other slope where x + b rounds across 0 in f32: at these sizes no
        // such element is drawn (the allowance would show it).
        o.check(0, &format!("fused_lrelu fwd {s:?}"), ROUNDED, EXACT);
        o.check(1, &format!("fused_lrelu bwd dx {s:?}"), ROUNDED, EXACT);
        o.check(
            2,
            &format!("fused_lrelu bwd db {s:?}"),
            ROUNDED,
            tol(1e-6, 1e-6),
        );
        o.check(3, &format!("fused_lrelu tangent {s:?}"), ROUNDED, EXACT);
        o.check(4, &format!("fused_lrelu bwd leaves dy {s:?}"), EXACT, EXACT);
    }
}

fn noise<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let mut r = Rng(500 + i as u64);
        let (x, n, dy) = (r.a4(s), r.a4((s.0, 1, s.2, s.3)), r.a4(s));
        let w = Array4::from_elem((1, 1, 1, 1), 0.37f32);
        let o = runs!(b, [x, n, dy, w], |e| {
            let nt = e.upload(n).unwrap();
            let mut y = e.upload(x).unwrap();
            e.noise(&mut y, &e.upload(w).unwrap(), &nt).unwrap();
            let dw = e
                .noise_backward_weight(&e.upload(dy).unwrap(), &nt)
                .unwrap();
            vec![e.download(&y).unwrap(), e.download(&dw).unwrap()]
        });
        o.check(0, &format!("noise fwd {s:?}"), ROUNDED, EXACT);
        // One dot product of random signs: its rounding is relative to Σ|dy·n|, not the sum.
        o.check(
            1,
            &format!("noise wgrad {s:?}"),
            tol(1e-5, 1e-6),
            tol(1e-6, 1e-6),
        );
    }
}

fn l1<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let mut r = Rng(600 + i as u64);
        let (x, mut y) = (r.a4(s), r.a4(s));
        // Some equal elements: their gradient is 0 (torch.sign).
        y.iter_mut()
            .zip(x.iter())
            .step_by(7)
            .for_each(|(yv, xv)| *yv = *xv);
        let o = runs!(b, [x, y], |e| {
            let (a, c) = (e.upload(x).unwrap(), e.upload(y).unwrap());
            let l = e.l1_mean(&a, &c).unwrap();
            let d = e.l1_mean_backward(&a, &c).unwrap();
            vec![e.download(&l).unwrap(), e.download(&d).unwrap()]
        });
        o.check(0, &format!("l1 fwd {s:?}"), tol(0.0, 1e-6), tol(0.0, 1e-6));
        o.check(1, &format!("l1 bwd {s:?}"), ROUNDED, EXACT);
    }
}

fn softplus_mean<B: Backend<Elem = f32>>(b: &B) {
    for (i, &n) in [1usize, 3, 16, 64, 257, 4099].iter().enumerate() {
        let mut r = Rng(700 + i as u64);
        // Logits over [-30, 30]: both softplus branches (threshold 20) are hit.
        let x = r.a4((n, 1, 1, 1)).mapv(|v| 30.0 * v);
        for negate in [false, true] {
            let o = runs!(b, [x], |e| {
                let t = e.upload(x).unwrap();
                let l = e.softplus_mean(&t, negate).unwrap();
                let d = e.softplus_mean_backward(&t, negate).unwrap();
                vec![e.download(&l).unwrap(), e.download(&d).unwrap()]
            });
            // expf/log1pf (GPU) and libm (CPU) differ by an ulp or two per element.
            let what = format!("softplus n={n} negate={negate}");
            o.check(0, &format!("{what} fwd"), tol(1e-7, 1e-6), tol(1e-7, 1e-6));
            o.check(
                1,
                &format!("{what} bwd"),
                tol(1e-12, 1e-6),
                tol(1e-12, 1e-6),
            );
        }
    }
}

fn adam<B: Backend<Elem = f32>>(b: &B) {
    for (i, &n) in [1usize, 3, 80, 1000, 384 * 384 * 9 + 7].iter().enumerate() {
        let mut r = Rng(800 + i as u64);
        for cfg in [
            AdamConfig {
                beta1: 0.0,
                beta2: 0.99,
                eps: 1e-8,
            },
            AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        ] {
            let p0 = r.a4((n, 1, 1, 1));
            let (g1, g2, g3) = (r.a4((n, 1, 1, 1)), r.a4((n, 1, 1, 1)), r.a4((n, 1, 1, 1)));
            let o = runs!(b, [p0, g1, g2, g3], |e| {
                let mut p = e.upload(p0).unwrap();
                let mut m = e.zeros([n, 1, 1, 1]).unwrap();
                let mut v = e.zeros([n, 1, 1, 1]).unwrap();
                for (step, g) in [g1, g2, g3].into_iter().enumerate() {
                    let g = e.upload(g).unwrap();
                    e.adam(&mut p, &g, &mut m, &mut v, step as u64 + 1, 0.002, &cfg)
                        .unwrap();
                }
                vec![
                    e.download(&p).unwrap(),
                    e.download(&m).unwrap(),
                    e.download(&v).unwrap(),
                ]
            });
            let what = format!("adam n={n} beta1={}", cfg.beta1);
            // Three updates, each a handful of roundings; the step's size is lr·m̂/√v̂, so
            // a parameter's allowance is on the scale of lr, not of the parameter.
            o.check(0, &format!("{what} param"), tol(1e-5, 1e-6), EXACT);
            o.check(1, &format!("{what} exp_avg"), tol(1e-6, 1e-5), EXACT);
            o.check(2, &format!("{what} exp_avg_sq"), tol(1e-6, 1e-5), EXACT);
        }
    }
}

fn blur<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        for (j, kind) in [Blur::DOWN_3X3, Blur::DOWN_1X1, Blur::UP]
            .iter()
            .enumerate()
        {
            let mut r = Rng(900 + 10 * i as u64 + j as u64);
            let x = r.a4(s);
            let dy = r.a4((s.0, s.1, kind.out_len(s.2), kind.out_len(s.3)));
            let o = runs!(b, [x, dy], |e| {
                let y = e.blur(kind, &e.upload(x).unwrap()).unwrap();
                let d = e
                    .blur_backward(kind, &e.upload(dy).unwrap(), (s.2, s.3))
                    .unwrap();
                vec![e.download(&y).unwrap(), e.download(&d).unwrap()]
            });
            // Same taps, same order, explicitly rounded: bit for bit with the CPU.
            o.check(
                0,
                &format!("blur fwd {kind:?} {s:?}"),
                tol(1e-6, 1e-6),
                EXACT,
            );
            o.check(
                1,
                &format!("blur bwd {kind:?} {s:?}"),
                tol(1e-6, 1e-6),
                EXACT,
            );
        }
    }
}

fn demod<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(co, ci, k)) in [(80, 160, 3), (3, 80, 3), (160, 3, 1), (384, 384, 3)]
        .iter()
        .enumerate()
    {
        let mut r = Rng(1000 + i as u64);
        let (w, gw) = (r.a4((co, ci, k, k)), r.a4((co, ci, k, k)));
        let o = runs!(b, [w, gw], |e| {
            let wt = e.upload(w).unwrap();
            let y = e.demod(&wt).unwrap();
            let d = e.demod_backward(&wt, &e.upload(gw).unwrap()).unwrap();
            vec![e.download(&y).unwrap(), e.download(&d).unwrap()]
        });
        // Sums of Cin·k² squares (≤ 3456): the CPU sums in f32, the GPU in double.
        o.check(
            0,
            &format!("demod fwd {:?}", w.dim()),
            tol(0.0, 1e-5),
            tol(0.0, 1e-5),
        );
        // a·g − b·w cancels: an allowance on the result's scale.
        let t = tol(1e-5, 1e-5);
        o.check(1, &format!("demod bwd {:?}", w.dim()), t, t);
    }
}

fn l2norm<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(n, d)) in [(1, 3), (16, 256), (32, 80), (5, 384), (3, 1000)]
        .iter()
        .enumerate()
    {
        let mut r = Rng(1100 + i as u64);
        let mut x = r.a4((n, d, 1, 1));
        // One all-zero row: its norm has no derivative (taken as 0).
        x.slice_mut(ndarray::s![0, .., .., ..]).fill(0.0);
        let dy = r.a4((n, d, 1, 1));
        let o = runs!(b, [x, dy], |e| {
            let xt = e.upload(x).unwrap();
            let y = e.l2norm(&xt).unwrap();
            let g = e.l2norm_backward(&xt, &e.upload(dy).unwrap()).unwrap();
            vec![e.download(&y).unwrap(), e.download(&g).unwrap()]
        });
        o.check(
            0,
            &format!("l2norm fwd ({n}, {d})"),
            tol(1e-7, 1e-6),
            tol(1e-7, 1e-6),
        );
        o.check(
            1,
            &format!("l2norm bwd ({n}, {d})"),
            tol(1e-6, 1e-5),
            tol(1e-6, 1e-5),
        );
    }
}

/// Rows normalised to unit length, as F's outputs are.
fn unit_rows(r: &mut Rng, n: usize, d: usize) -> Array4<f32> {
    let mut a = r.a4((n, d, 1, 1));
    for mut row in a.outer_iter_mut() {
        let len = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.mapv_inplace(|v| v / len);
    }
    a
}

fn patchnce<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(n, d)) in [(1, 256), (2, 256), (16, 256), (32, 3), (17, 80), (300, 40)]
        .iter()
        .enumerate()
    {
        let mut r = Rng(1200 + i as u64);
        let (q, k) = (unit_rows(&mut r, n, d), unit_rows(&mut r, n, d));
        let dl = r.a4((n, 1, 1, 1));
        let tau = 0.07;
        let o = runs!(b, [q, k, dl], |e| {
            let (qt, kt) = (e.upload(q).unwrap(), e.upload(k).unwrap());
            let l = e.patchnce(&qt, &kt, tau).unwrap();
            let g = e
                .patchnce_backward(&qt, &kt, tau, &e.upload(dl).unwrap())
                .unwrap();
            vec![e.download(&l).unwrap(), e.download(&g).unwrap()]
        });
        // Dot products of ≤ D terms (√D·eps), amplified by 1/τ ≈ 14 in the logits.
        let t = tol(1e-5, 1e-5);
        o.check(0, &format!("patchnce fwd ({n}, {d})"), t, t);
        let t = tol(1e-5, 1e-4);
        o.check(1, &format!("patchnce bwd ({n}, {d})"), t, t);
    }
}

/// (N, Cin, Cout, H, W, k, stride, pad).
type Conv = (usize, usize, usize, usize, usize, usize, usize, usize);

/// Every conv the networks use, at awkward sizes.
const CONVS: &[Conv] = &[
    (2, 3, 80, 17, 19, 1, 1, 0),   // G's first 1×1
    (2, 80, 80, 15, 13, 3, 1, 1),  // ResBlock conv1
    (3, 80, 160, 19, 21, 3, 2, 0), // down conv after the 3×3 blur (pad 2)
    (2, 80, 160, 12, 10, 1, 2, 0), // down skip after the 1×1 blur
    (2, 160, 160, 9, 7, 3, 1, 1),  // decoder ResBlock
    (2, 384, 384, 4, 4, 3, 1, 1),  // D's last conv
    (16, 384, 384, 1, 1, 1, 1, 0), // D's EqualLinear as a 1×1 conv
    (2, 80, 3, 33, 31, 1, 1, 0),   // G's last 1×1
    (4, 32, 64, 66, 66, 3, 2, 0),  // D at crop 64 (long weight-gradient reduction)
    (2, 48, 40, 11, 12, 3, 2, 1),  // stride 2 with padding: input-gradient phases start apart
    (2, 24, 16, 7, 9, 3, 1, 1),    // fewer channels than a bf16 K step (NHWC kernels' carries)
    (2, 160, 80, 9, 11, 3, 2, 1),  // stride-2 input gradient over 160 rows (160-row bf16 tile)
];

fn conv2d<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(n, ci, co, h, w, k, s, p)) in CONVS.iter().enumerate() {
        let mut r = Rng(1300 + i as u64);
        let (x, wt) = (r.a4((n, ci, h, w)), r.a4((co, ci, k, k)));
        let ho = (h + 2 * p - k) / s + 1;
        let wo = (w + 2 * p - k) / s + 1;
        let dy = r.a4((n, co, ho, wo));
        let bias = vec4(&mut r, co);
        let o = runs!(b, [x, wt, dy, bias], |e| {
            let (xg, wg, dyg) = (
                e.upload(x).unwrap(),
                e.upload(wt).unwrap(),
                e.upload(dy).unwrap(),
            );
            let y = e.conv2d(&xg, &wg, s, p).unwrap();
            let dx = e.conv2d_backward_input(&dyg, &wg, s, p, (h, w)).unwrap();
            let dw = e.conv2d_backward_weight(&xg, &dyg, k, s, p).unwrap();
            let bg = e.upload(bias).unwrap();
            let ya = e.conv2d_bias_lrelu(&xg, &wg, s, p, &bg).unwrap();
            vec![
                e.download(&y).unwrap(),
                e.download(&dx).unwrap(),
                e.download(&dw).unwrap(),
                e.download(&ya).unwrap(),
            ]
        });
        // f32 GEMMs of K terms summed in different orders: rounding grows like √K·eps on
        // the result's scale.
        let tag = format!("conv2d N{n} {ci}→{co} {h}×{w} k{k} s{s} p{p}");
        o.check(0, &format!("{tag} fwd"), tol(2e-5, 1e-4), tol(2e-5, 1e-4));
        o.check(
            1,
            &format!("{tag} bwd input"),
            tol(2e-5, 1e-4),
            tol(2e-5, 1e-4),
        );
        o.check(
            2,
            &format!("{tag} bwd weight"),
            tol(5e-5, 1e-4),
            tol(5e-5, 1e-4),
        );
        o.check(
            3,
            &format!("{tag} fwd + bias + leaky ReLU"),
            tol(2e-5, 1e-4),
            tol(2e-5, 1e-4),
        );
    }
}

fn conv_transpose2d<B: Backend<Elem = f32>>(b: &B) {
    // The decoder's upsampling StyledConv: 3×3 stride 2, and odd sizes.
    for (i, &(n, ci, co, h, w)) in [(2, 160, 80, 8, 8), (2, 160, 80, 7, 9), (1, 3, 384, 5, 3)]
        .iter()
        .enumerate()
    {
        let mut r = Rng(1400 + i as u64);
        let (x, wt) = (r.a4((n, ci, h, w)), r.a4((ci, co, 3, 3)));
        let dy = r.a4((n, co, 2 * h + 1, 2 * w + 1));
        let o = runs!(b, [x, wt, dy], |e| {
            let (xg, wg, dyg) = (
                e.upload(x).unwrap(),
                e.upload(wt).unwrap(),
                e.upload(dy).unwrap(),
            );
            let y = e.conv_transpose2d(&xg, &wg, 2).unwrap();
            let dx = e.conv_transpose2d_backward_input(&dyg, &wg, 2).unwrap();
            let dw = e.conv_transpose2d_backward_weight(&xg, &dyg, 3, 2).unwrap();
            vec![
                e.download(&y).unwrap(),
                e.download(&dx).unwrap(),
                e.download(&dw).unwrap(),
            ]
        });
        let tag = format!("conv_transpose2d N{n} {ci}→{co} {h}×{w}");
        o.check(0, &format!("{tag} fwd"), tol(2e-5, 1e-4), tol(2e-5, 1e-4));
        o.check(
            1,
            &format!("{tag} bwd input"),
            tol(2e-5, 1e-4),
            tol(2e-5, 1e-4),
        );
        o.check(
            2,
            &format!("{tag} bwd weight"),
            tol(5e-5, 1e-4),
            tol(5e-5, 1e-4),
        );
    }
}

fn scale<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let x = Rng(1500 + i as u64).a4(s);
        let f = 1.0 / ((s.1 * 9) as f64).sqrt();
        let o = runs!(b, [x], |e| {
            vec![
                e.download(&e.scale(&e.upload(x).unwrap(), f).unwrap())
                    .unwrap(),
            ]
        });
        o.check(0, &format!("scale {s:?}"), ROUNDED, EXACT);
    }
}

fn add_into<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let mut r = Rng(1600 + i as u64);
        let (d, a, big) = (r.a4(s), r.a4(s), r.a4((2 * s.0, s.1, s.2, s.3)));
        let len = a.len();
        let o = runs!(b, [d, a, big], |e| {
            let at = e.upload(a).unwrap();
            let mut dt = e.upload(d).unwrap();
            e.add_into(&mut dt, 0, &at).unwrap();
            // Into the second half of a doubled batch only (G's identity gradient).
            let mut bt = e.upload(big).unwrap();
            e.add_into(&mut bt, len, &at).unwrap();
            vec![e.download(&dt).unwrap(), e.download(&bt).unwrap()]
        });
        o.check(0, &format!("add_into {s:?}"), ROUNDED, EXACT);
        o.check(1, &format!("add_into at offset {s:?}"), ROUNDED, EXACT);
    }
    let z = b.upload(&Array4::zeros((1, 3, 1, 1))).unwrap();
    let mut small = b.upload(&Array4::zeros((1, 3, 1, 1))).unwrap();
    assert!(b.add_into(&mut small, 1, &z).is_err());
}

fn swap01<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in [
        (80, 160, 3, 3),
        (160, 80, 3, 3),
        (3, 384, 1, 1),
        (7, 5, 2, 3),
    ]
    .iter()
    .enumerate()
    {
        let x = Rng(1700 + i as u64).a4(s);
        let o = runs!(b, [x], |e| {
            vec![
                e.download(&e.swap01(&e.upload(x).unwrap()).unwrap())
                    .unwrap(),
            ]
        });
        o.check(0, &format!("swap01 {s:?}"), EXACT, EXACT);
    }
}

fn windows<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(s, win)) in [
        ((2, 3, 128, 128), 64),
        ((3, 3, 16, 24), 8),
        ((2, 5, 64, 64), 64),
    ]
    .iter()
    .enumerate()
    {
        let x = Rng(1800 + i as u64).a4(s);
        let o = runs!(b, [x], |e| {
            let w = e.to_windows(&e.upload(x).unwrap(), win).unwrap();
            let back = e.from_windows(&w, s.0, s.2, s.3).unwrap();
            vec![e.download(&w).unwrap(), e.download(&back).unwrap()]
        });
        o.check(0, &format!("to_windows {s:?} / {win}"), EXACT, EXACT);
        o.check(1, &format!("from_windows {s:?} / {win}"), EXACT, EXACT);
        assert_eq!(o.got[1], x, "windows round trip {s:?}");
    }
    let odd = b.upload(&Array4::zeros((1, 3, 20, 16))).unwrap();
    assert!(b.to_windows(&odd, 8).is_err());
}

/// One position (one patch per crop) and several (`--nce-patches`), a repeated one included
/// (its scatter adds both rows), on shapes that are not multiples of a block.
fn gather_positions<B: Backend<Elem = f32>>(b: &B) {
    type Case<'a> = ((usize, usize, usize, usize), usize, usize, &'a [usize]);
    let cases: [Case; 6] = [
        ((6, 3, 17, 19), 3, 3, &[17 * 19 - 1]),
        ((4, 160, 32, 32), 0, 2, &[0]),
        ((32, 160, 64, 64), 16, 16, &[4095]),
        ((2, 80, 13, 9), 1, 1, &[50]),
        ((6, 80, 13, 9), 2, 3, &[116, 0, 57, 3, 88]),
        ((4, 40, 7, 5), 0, 4, &[9, 34, 9]),
    ];
    for (i, &(s, r0, n, ids)) in cases.iter().enumerate() {
        let mut r = Rng(1900 + i as u64);
        let (f, d, add) = (r.a4(s), r.a4(s), r.a4((n * ids.len(), s.1, 1, 1)));
        let o = runs!(b, [f, d, add], |e| {
            let rows = e
                .gather_positions(&e.upload(f).unwrap(), r0, n, ids)
                .unwrap();
            let mut dt = e.upload(d).unwrap();
            e.scatter_add_positions(&mut dt, r0, ids, &e.upload(add).unwrap())
                .unwrap();
            vec![e.download(&rows).unwrap(), e.download(&dt).unwrap()]
        });
        assert_eq!(o.got[0].dim(), (n * ids.len(), s.1, 1, 1));
        o.check(
            0,
            &format!("gather {s:?} rows {r0}+{n} at {ids:?}"),
            EXACT,
            EXACT,
        );
        o.check(
            1,
            &format!("scatter_add {s:?} rows {r0}+{n} at {ids:?}"),
            ROUNDED,
            EXACT,
        );
    }
    let small = b.upload(&Array4::zeros((2, 3, 4, 4))).unwrap();
    assert!(b.gather_positions(&small, 1, 2, &[0]).is_err());
    assert!(b.gather_positions(&small, 0, 2, &[3, 16]).is_err());
    assert!(b.gather_positions(&small, 0, 2, &[]).is_err());
    let mut d = b.upload(&Array4::zeros((2, 3, 4, 4))).unwrap();
    let rows = b.upload(&Array4::zeros((3, 3, 1, 1))).unwrap();
    assert!(b.scatter_add_positions(&mut d, 0, &[1, 2], &rows).is_err());
}

fn sum_squares<B: Backend<Elem = f32>>(b: &B) {
    for (i, &s) in SHAPES.iter().enumerate() {
        let x = Rng(2000 + i as u64).a4(s);
        let o = runs!(b, [x], |e| {
            vec![
                e.download(&e.sum_squares(&e.upload(x).unwrap()).unwrap())
                    .unwrap(),
            ]
        });
        // Accumulated in double, rounded once to the element type.
        o.check(
            0,
            &format!("sum_squares {s:?}"),
            tol(0.0, 1e-6),
            tol(0.0, 1e-6),
        );
    }
}

/// The CUDA backend with poisoned outputs, or None (after printing the skip line).
fn cuda() -> Option<sincut::backend::cuda::CudaBackend> {
    match sincut::backend::cuda::CudaBackend::open(0) {
        Ok(mut b) => {
            b.gpu.set_poison(true);
            Some(b)
        }
        Err(e) => {
            eprintln!("skipped: no CUDA device ({e})");
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

/// One test per op and backend: `cpu::relu`, `cuda::relu`, ….
macro_rules! parity {
    ($($op:ident),* $(,)?) => {
        mod cpu {
            $(#[test]
            fn $op() {
                super::$op(&super::Cpu32::new());
            })*
        }
        mod cuda {
            $(#[test]
            fn $op() {
                if let Some(b) = super::cuda() {
                    super::$op(&b);
                }
            })*
        }
    };
}

parity!(
    relu,
    residual,
    bias,
    fused_lrelu,
    noise,
    l1,
    softplus_mean,
    adam,
    blur,
    demod,
    l2norm,
    patchnce,
    conv2d,
    conv_transpose2d,
    scale,
    add_into,
    swap01,
    windows,
    gather_positions,
    sum_squares,
);

// ---- bf16 matrix products (issue 14): rounding the operands of every convolution and linear
// layer to bfloat16, products accumulated in f32. ----

/// bfloat16's unit roundoff (8 significant bits, round to nearest even).
const U_BF16: f64 = 1.0 / 256.0;
/// f32's unit roundoff.
const U_F32: f64 = f32::EPSILON as f64 / 2.0;

/// Checks a bf16-operand result against the f64 product of the unrounded operands: every
/// element within the worst-case bound (2u + u²)·S + γ_K·(1 + u)²·S, S = Σ|a·b| of its sum
/// (both operands rounded, then K f32 additions), and the whole result measurably further from
/// f64 than f32 rounding alone would put it (so the rounding did happen). Returns the relative
/// norm error.
fn bf16_within_bound(
    what: &str,
    got: &Array4<f32>,
    exact: &Array4<f64>,
    sum_abs: &Array4<f64>,
    k: usize,
) -> f64 {
    let per_term = 2.0 * U_BF16 + U_BF16 * U_BF16;
    let accumulate = k as f64 * U_F32 / (1.0 - k as f64 * U_F32) * (1.0 + U_BF16).powi(2);
    let (mut d, mut n, mut worst) = (0.0f64, 0.0f64, (0usize, 0.0f64));
    for (i, ((&g, &e), &s)) in got.iter().zip(exact).zip(sum_abs).enumerate() {
        let err = (f64::from(g) - e).abs();
        d += err * err;
        n += e * e;
        let bound = (per_term + accumulate) * s;
        let ratio = if err.is_nan() {
            f64::INFINITY
        } else if err == 0.0 {
            0.0
        } else {
            err / bound
        };
        if ratio > worst.1 {
            worst = (i, ratio);
        }
    }
    let rel = (d / n).sqrt();
    println!(
        "{what}: ‖bf16 − f64‖/‖f64‖ = {rel:.2e}; worst element {} at {:.3} of the bf16 bound",
        worst.0, worst.1
    );
    assert!(
        worst.1 <= 1.0,
        "{what}: element {} exceeds the bf16 bound",
        worst.0
    );
    // f32 alone stays near 1e-7 at these sizes; bf16 operands put the result near 1e-3.
    assert!(
        rel > 1e-4,
        "{what}: {rel:.2e} is f32-level: the operands were not rounded"
    );
    rel
}

/// Every convolution of the networks (forward and both gradients) with bf16 operands on the
/// CPU backend, against the f64 product of the unrounded operands.
#[test]
fn bf16_convolutions_round_within_the_bf16_bound() {
    use sincut::backend::cpu::MatmulPrecision;
    use sincut::ops::conv2d as conv;
    let b = Cpu32::with_matmul(MatmulPrecision::Bf16);
    let wide = |a: &Array4<f32>| a.mapv(f64::from);
    let abs = |a: &Array4<f32>| a.mapv(|v| f64::from(v).abs());
    let mut worst = 0.0f64;
    for (i, &(n, ci, co, h, w, k, s, p)) in CONVS.iter().enumerate() {
        let mut r = Rng(2300 + i as u64);
        let (x, wt) = (r.a4((n, ci, h, w)), r.a4((co, ci, k, k)));
        let ho = (h + 2 * p - k) / s + 1;
        let wo = (w + 2 * p - k) / s + 1;
        let dy = r.a4((n, co, ho, wo));
        let tag = format!("bf16 conv2d N{n} {ci}→{co} {h}×{w} k{k} s{s} p{p}");
        let (xg, wg, dyg) = (
            b.upload(&x).unwrap(),
            b.upload(&wt).unwrap(),
            b.upload(&dy).unwrap(),
        );
        let y = b.download(&b.conv2d(&xg, &wg, s, p).unwrap()).unwrap();
        let exact = conv::conv2d_forward(&wide(&x), wide(&wt).view(), s, p, MatmulPrecision::Full);
        let sum_abs = conv::conv2d_forward(&abs(&x), abs(&wt).view(), s, p, MatmulPrecision::Full);
        let kk = ci * k * k;
        worst = worst.max(bf16_within_bound(
            &format!("{tag} fwd"),
            &y,
            &exact,
            &sum_abs,
            kk,
        ));
        let dx = b
            .download(&b.conv2d_backward_input(&dyg, &wg, s, p, (h, w)).unwrap())
            .unwrap();
        let exact = conv::conv2d_backward_input(
            &wide(&dy),
            wide(&wt).view(),
            s,
            p,
            (h, w),
            MatmulPrecision::Full,
        );
        let sum_abs = conv::conv2d_backward_input(
            &abs(&dy),
            abs(&wt).view(),
            s,
            p,
            (h, w),
            MatmulPrecision::Full,
        );
        let kk = co * k * k;
        worst = worst.max(bf16_within_bound(
            &format!("{tag} bwd input"),
            &dx,
            &exact,
            &sum_abs,
            kk,
        ));
        let dw = b
            .download(&b.conv2d_backward_weight(&xg, &dyg, k, s, p).unwrap())
            .unwrap();
        let exact =
            conv::conv2d_backward_weight(&wide(&x), &wide(&dy), k, s, p, MatmulPrecision::Full);
        let sum_abs =
            conv::conv2d_backward_weight(&abs(&x), &abs(&dy), k, s, p, MatmulPrecision::Full);
        let kk = n * ho * wo;
        worst = worst.max(bf16_within_bound(
            &format!("{tag} bwd weight"),
            &dw,
            &exact,
            &sum_abs,
            kk,
        ));
    }
    println!("bf16 convolutions: worst relative norm error {worst:.2e} (bf16's u = {U_BF16:.2e})");
    // The f32 backend is untouched by the setting: the same conv is f32-exact there.
    let f = Cpu32::new();
    let mut r = Rng(2399);
    let (x, wt) = (r.a4((2, 80, 9, 7)), r.a4((80, 80, 3, 3)));
    let y = f
        .conv2d(&f.upload(&x).unwrap(), &f.upload(&wt).unwrap(), 1, 1)
        .unwrap();
    let exact = conv::conv2d_forward(&wide(&x), wide(&wt).view(), 1, 1, MatmulPrecision::Full);
    let rel = (&y.mapv(f64::from) - &exact).mapv(|v| v * v).sum().sqrt()
        / exact.mapv(|v| v * v).sum().sqrt();
    assert!(rel < 1e-5, "f32 backend: {rel:.2e}");
}

// ---- The same convolutions with bf16 operands on a backend under test (the CUDA tensor-core
// kernels; the CPU's bf16 mode as a check of the checks). ----

/// |computed − exact| for a sum of n terms in f32, as a multiple of S = Σ|terms|, when each
/// term is exact (a product of two bf16 values is exact in f32) and only the n additions round,
/// in any order: the smaller of the worst case γ_n = nu/(1 − nu) and the probabilistic bound
/// of Higham & Mary (2019), exp(λ√n·u + nu²/(1 − u)) − 1, which holds with probability at
/// least 1 − 2n·exp(−λ²(1 − u)²/2) when the rounding errors are independent and mean-zero;
/// λ = 9 makes that failure probability below 1e-13 per element at these n. Any two summation
/// orders (the GPU's tiles and mma chains, the CPU's blocked GEMM) both meet it, so they differ
/// by at most twice it.
fn sum_allowance(n: usize) -> f64 {
    let (n, u, lambda) = (n as f64, U_F32, 9.0);
    let worst = n * u / (1.0 - n * u);
    let probable = (lambda * n.sqrt() * u + n * u * u / (1.0 - u)).exp() - 1.0;
    worst.min(probable)
}

/// Element by element: |got − want| ≤ factor·sum_allowance(n)·S; prints the worst element.
fn within_sum_bound(
    what: &str,
    got: &Array4<f32>,
    want: &Array4<f64>,
    s: &Array4<f64>,
    n: usize,
    factor: f64,
) {
    assert_eq!(got.dim(), want.dim(), "{what}: shapes");
    let a = factor * sum_allowance(n);
    let mut worst = (0usize, 0.0f64, 0.0f64, 0.0f64);
    for (i, ((&g, &w), &sv)) in got.iter().zip(want).zip(s).enumerate() {
        let err = (f64::from(g) - w).abs();
        let ratio = if err.is_nan() {
            f64::INFINITY
        } else if err == 0.0 {
            0.0
        } else {
            err / (a * sv)
        };
        if ratio >= worst.1 {
            worst = (i, ratio, f64::from(g), w);
        }
    }
    println!(
        "{what}: worst element {}: {} vs {} ({:.3} of {factor}·allowance(n = {n}) = {:.2e}·Σ|terms|)",
        worst.0, worst.2, worst.3, worst.1, a
    );
    assert!(
        worst.1 <= 1.0,
        "{what}: element {}: {} vs {} exceeds the f32 summation bound",
        worst.0,
        worst.2,
        worst.3
    );
}

/// One bf16 conv output checked three ways: against f64 on the bf16-rounded operands (within
/// the summation allowance of its K terms, plus one for the rounding of split sums), against
/// the CPU's bf16 mode (twice that: both meet it), and measurably away from the f64 product of
/// the unrounded operands (the operands were rounded: bf16's u = 2^-8 puts the result near
/// 1e-3 of its norm, f32 near 1e-7).
struct Bf16Outputs {
    got: Array4<f32>,
    cpu: Array4<f32>,
    exact_rounded: Array4<f64>,
    sum_abs_rounded: Array4<f64>,
    exact: Array4<f64>,
}

fn check_bf16(what: &str, o: &Bf16Outputs, k: usize) {
    within_sum_bound(
        &format!("{what} vs f64 of bf16 operands"),
        &o.got,
        &o.exact_rounded,
        &o.sum_abs_rounded,
        k + 1,
        1.0,
    );
    within_sum_bound(
        &format!("{what} vs cpu bf16"),
        &o.got,
        &o.cpu.mapv(f64::from),
        &o.sum_abs_rounded,
        k + 1,
        2.0,
    );
    let diff = (&o.got.mapv(f64::from) - &o.exact)
        .mapv(|v| v * v)
        .sum()
        .sqrt();
    let rel = diff / o.exact.mapv(|v| v * v).sum().sqrt();
    println!("{what}: ‖got − f64 of unrounded operands‖/‖·‖ = {rel:.2e}");
    assert!(
        rel > 1e-4,
        "{what}: {rel:.2e} is f32-level: the operands were not rounded"
    );
}

/// Runs `$body` on the backend under test, on CPU f32 in bf16 mode, on CPU f64 in bf16 mode
/// (operands rounded to bf16, products and sums in f64), on CPU f64 with the absolute values
/// of the operands in bf16 mode (Σ|terms|, the scale of the summation error) and on plain CPU
/// f64 (unrounded operands). `$body` returns one output tensor.
macro_rules! bf16_runs {
    ($b:expr, [$($x:ident),*], |$e:ident| $body:expr) => {{
        use sincut::backend::cpu::MatmulPrecision::Bf16;
        let got = { let $e = $b; $(let $x = &$x;)* $body };
        let cpu = { let $e = &Cpu32::with_matmul(Bf16); $(let $x = &$x;)* $body };
        let exact_rounded = {
            let $e = &Cpu64::with_matmul(Bf16);
            $(let $x = &$x.mapv(f64::from);)*
            $body
        };
        let sum_abs_rounded = {
            let $e = &Cpu64::with_matmul(Bf16);
            $(let $x = &$x.mapv(|v| f64::from(v).abs());)*
            $body
        };
        let exact = { let $e = &Cpu64::new(); $(let $x = &$x.mapv(f64::from);)* $body };
        Bf16Outputs { got, cpu, exact_rounded, sum_abs_rounded, exact }
    }};
}

fn bf16_conv2d<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(n, ci, co, h, w, k, s, p)) in CONVS.iter().enumerate() {
        let mut r = Rng(2500 + i as u64);
        let (x, wt) = (r.a4((n, ci, h, w)), r.a4((co, ci, k, k)));
        let ho = (h + 2 * p - k) / s + 1;
        let wo = (w + 2 * p - k) / s + 1;
        let dy = r.a4((n, co, ho, wo));
        let tag = format!("bf16 conv2d N{n} {ci}→{co} {h}×{w} k{k} s{s} p{p}");
        let o = bf16_runs!(b, [x, wt], |e| {
            let y = e
                .conv2d(&e.upload(x).unwrap(), &e.upload(wt).unwrap(), s, p)
                .unwrap();
            e.download(&y).unwrap()
        });
        check_bf16(&format!("{tag} fwd"), &o, ci * k * k);
        let o = bf16_runs!(b, [dy, wt], |e| {
            let dx = e
                .conv2d_backward_input(&e.upload(dy).unwrap(), &e.upload(wt).unwrap(), s, p, (h, w))
                .unwrap();
            e.download(&dx).unwrap()
        });
        check_bf16(&format!("{tag} bwd input"), &o, co * k * k);
        let o = bf16_runs!(b, [x, dy], |e| {
            let dw = e
                .conv2d_backward_weight(&e.upload(x).unwrap(), &e.upload(dy).unwrap(), k, s, p)
                .unwrap();
            e.download(&dw).unwrap()
        });
        check_bf16(&format!("{tag} bwd weight"), &o, n * ho * wo);
    }
}

fn bf16_conv_transpose2d<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(n, ci, co, h, w)) in [(2, 160, 80, 8, 8), (2, 160, 80, 7, 9), (1, 3, 384, 5, 3)]
        .iter()
        .enumerate()
    {
        let mut r = Rng(2600 + i as u64);
        let (x, wt) = (r.a4((n, ci, h, w)), r.a4((ci, co, 3, 3)));
        let dy = r.a4((n, co, 2 * h + 1, 2 * w + 1));
        let tag = format!("bf16 conv_transpose2d N{n} {ci}→{co} {h}×{w}");
        let o = bf16_runs!(b, [x, wt], |e| {
            let y = e
                .conv_transpose2d(&e.upload(x).unwrap(), &e.upload(wt).unwrap(), 2)
                .unwrap();
            e.download(&y).unwrap()
        });
        // Each output sums over Cin and the taps that reach it: at most Cin·9 terms.
        check_bf16(&format!("{tag} fwd"), &o, ci * 9);
        let o = bf16_runs!(b, [dy, wt], |e| {
            let dx = e
                .conv_transpose2d_backward_input(&e.upload(dy).unwrap(), &e.upload(wt).unwrap(), 2)
                .unwrap();
            e.download(&dx).unwrap()
        });
        check_bf16(&format!("{tag} bwd input"), &o, co * 9);
        let o = bf16_runs!(b, [x, dy], |e| {
            let dw = e
                .conv_transpose2d_backward_weight(
                    &e.upload(x).unwrap(),
                    &e.upload(dy).unwrap(),
                    3,
                    2,
                )
                .unwrap();
            e.download(&dw).unwrap()
        });
        check_bf16(&format!("{tag} bwd weight"), &o, n * h * w);
    }
}

/// A conv with its bias and leaky ReLU in one op (the bf16 NHWC kernels apply them as they
/// store, unless K is split) gives bit for bit the conv followed by `fused_lrelu`.
fn bf16_conv2d_bias_lrelu<B: Backend<Elem = f32>>(b: &B) {
    for (i, &(n, ci, co, h, w, k, s, p)) in CONVS.iter().enumerate() {
        let mut r = Rng(2800 + i as u64);
        let (x, wt, bias) = (r.a4((n, ci, h, w)), r.a4((co, ci, k, k)), vec4(&mut r, co));
        let (xg, wg, bg) = (
            b.upload(&x).unwrap(),
            b.upload(&wt).unwrap(),
            b.upload(&bias).unwrap(),
        );
        let fused = b.conv2d_bias_lrelu(&xg, &wg, s, p, &bg).unwrap();
        let mut apart = b.conv2d(&xg, &wg, s, p).unwrap();
        b.fused_lrelu(&mut apart, &bg).unwrap();
        assert_eq!(
            b.download(&fused).unwrap(),
            b.download(&apart).unwrap(),
            "bf16 conv2d + bias + leaky ReLU N{n} {ci}→{co} {h}×{w} k{k} s{s} p{p}: fused ≠ apart"
        );
    }
}

/// A backend may keep a converted copy of a conv operand between passes (the CUDA engine keeps
/// each tensor's NHWC bf16 copy): a pass after the tensor was written or reshaped must see the
/// new contents, bit for bit what a fresh upload of them gives.
fn bf16_conv_operands_follow_writes<B: Backend<Elem = f32>>(b: &B) {
    let (n, ci, co, h, w) = (2, 16, 24, 7, 9);
    let mut r = Rng(2700);
    let (x, wt, dy) = (
        r.a4((n, ci, h, w)),
        r.a4((co, ci, 3, 3)),
        r.a4((n, co, h, w)),
    );
    let (dx_add, ddy_add) = (r.a4((n, ci, h, w)), r.a4((n, co, h, w)));
    let fresh = |a: &Array4<f32>| b.upload(a).unwrap();
    let wt_d = fresh(&wt);
    let same = |what: &str, got: &B::Tensor, want: &B::Tensor| {
        assert_eq!(
            b.download(got).unwrap(),
            b.download(want).unwrap(),
            "{what}: differs from the same pass on a fresh upload"
        );
    };

    // Forward, then the input written in place: the next forward sees the write.
    let mut x_d = fresh(&x);
    let y_before = b.download(&b.conv2d(&x_d, &wt_d, 1, 1).unwrap()).unwrap();
    b.add_into(&mut x_d, 0, &fresh(&dx_add)).unwrap();
    let x_new = &x + &dx_add;
    let y_after = b.conv2d(&x_d, &wt_d, 1, 1).unwrap();
    same(
        "forward after add_into",
        &y_after,
        &b.conv2d(&fresh(&x_new), &wt_d, 1, 1).unwrap(),
    );
    assert_ne!(
        b.download(&y_after).unwrap(),
        y_before,
        "the write changed nothing"
    );

    // A gradient read by the weight gradient, written, then read by the input gradient.
    let mut dy_d = fresh(&dy);
    b.conv2d_backward_weight(&x_d, &dy_d, 3, 1, 1).unwrap();
    b.add_into(&mut dy_d, 0, &fresh(&ddy_add)).unwrap();
    let dy_new = &dy + &ddy_add;
    same(
        "input gradient after add_into",
        &b.conv2d_backward_input(&dy_d, &wt_d, 1, 1, (h, w)).unwrap(),
        &b.conv2d_backward_input(&fresh(&dy_new), &wt_d, 1, 1, (h, w))
            .unwrap(),
    );
    same(
        "weight gradient after add_into",
        &b.conv2d_backward_weight(&x_d, &dy_d, 3, 1, 1).unwrap(),
        &b.conv2d_backward_weight(&fresh(&x_new), &fresh(&dy_new), 3, 1, 1)
            .unwrap(),
    );

    // A gradient from the leaky ReLU's backward (on CUDA in bf16 it comes with its NHWC copy,
    // written by the same kernel): the conv passes read what a fresh upload of it gives.
    let (ya, da) = (r.a4((n, co, h, w)), r.a4((n, co, h, w)));
    let (d_act, _) = b.fused_lrelu_backward(&fresh(&ya), &fresh(&da)).unwrap();
    let d_again = fresh(&b.download(&d_act).unwrap());
    same(
        "weight gradient of the leaky ReLU's dx",
        &b.conv2d_backward_weight(&x_d, &d_act, 3, 1, 1).unwrap(),
        &b.conv2d_backward_weight(&x_d, &d_again, 3, 1, 1).unwrap(),
    );
    same(
        "input gradient of the leaky ReLU's dx",
        &b.conv2d_backward_input(&d_act, &wt_d, 1, 1, (h, w))
            .unwrap(),
        &b.conv2d_backward_input(&d_again, &wt_d, 1, 1, (h, w))
            .unwrap(),
    );

    // A weight keeps its forward rows too: a write to it reaches the next forward.
    let dw_add = r.a4((co, ci, 3, 3));
    let mut w_d = fresh(&wt);
    let y_before = b.download(&b.conv2d(&x_d, &w_d, 1, 1).unwrap()).unwrap();
    b.add_into(&mut w_d, 0, &fresh(&dw_add)).unwrap();
    let y_after = b.conv2d(&x_d, &w_d, 1, 1).unwrap();
    same(
        "forward after a weight write",
        &y_after,
        &b.conv2d(&x_d, &fresh(&(&wt + &dw_add)), 1, 1).unwrap(),
    );
    assert_ne!(
        b.download(&y_after).unwrap(),
        y_before,
        "the weight write changed nothing"
    );

    // The same memory as another shape: (2, 16, ..) read as (1, 32, ..).
    let x_as_one = b.reshape(x_d, [1, 2 * ci, h, w]).unwrap();
    let wt2 = r.a4((co, 2 * ci, 3, 3));
    let wt2_d = fresh(&wt2);
    let one = x_new.into_shape_with_order((1, 2 * ci, h, w)).unwrap();
    same(
        "forward after reshape",
        &b.conv2d(&x_as_one, &wt2_d, 1, 1).unwrap(),
        &b.conv2d(&fresh(&one), &wt2_d, 1, 1).unwrap(),
    );
}

/// The CUDA backend in bf16 with poisoned outputs, or None (after printing the skip line).
fn cuda_bf16() -> Option<sincut::backend::cuda::CudaBackend> {
    use sincut::backend::cpu::MatmulPrecision::Bf16;
    match sincut::backend::cuda::CudaBackend::open_with(0, Bf16) {
        Ok(mut b) => {
            b.gpu.set_poison(true);
            Some(b)
        }
        Err(e) => {
            eprintln!("skipped: no CUDA device for bf16 ({e})");
            println!("skipped: no CUDA device for bf16 ({e})");
            None
        }
    }
}

/// `cpu_bf16::*` on `CpuBackend<f32>` in bf16 mode (its own GEMM must meet the same bounds),
/// `cuda_bf16::*` on the CUDA backend's tensor-core kernels.
macro_rules! parity_bf16 {
    ($($op:ident),* $(,)?) => {
        mod cpu_bf16 {
            $(#[test]
            fn $op() {
                super::$op(&super::Cpu32::with_matmul(sincut::backend::cpu::MatmulPrecision::Bf16));
            })*
        }
        mod cuda_bf16 {
            $(#[test]
            fn $op() {
                if let Some(b) = super::cuda_bf16() {
                    super::$op(&b);
                }
            })*
        }
    };
}

parity_bf16!(
    fused_lrelu,
    bf16_conv2d,
    bf16_conv_transpose2d,
    bf16_conv2d_bias_lrelu,
    bf16_conv_operands_follow_writes
);
