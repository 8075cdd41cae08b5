//! Finite-difference checks shared by the op tests (f64, central differences).

use ndarray::{Array, ArrayD, Dimension, IxDyn};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// A random array with entries uniform in [-1, 1) (seeded: tests are reproducible).
pub fn rand_array<D: Dimension>(shape: D, seed: u64) -> Array<f64, D> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// Compares `analytic` = dL/dx with central differences of the scalar `loss` at `x`.
/// Checks every element when there are at most `max_checks`, else an even sample of them.
/// Panics with the worst element when |fd − analytic| > atol + rtol·|fd|; returns the worst error.
pub fn check_gradient(
    what: &str,
    x: &ArrayD<f64>,
    analytic: &ArrayD<f64>,
    loss: impl Fn(&ArrayD<f64>) -> f64,
    atol: f64,
    rtol: f64,
) -> f64 {
    check_gradient_sampled(what, x, analytic, loss, atol, rtol, 400)
}

/// `check_gradient` on at most `max_checks` evenly spread elements.
pub fn check_gradient_sampled(
    what: &str,
    x: &ArrayD<f64>,
    analytic: &ArrayD<f64>,
    loss: impl Fn(&ArrayD<f64>) -> f64,
    atol: f64,
    rtol: f64,
    max_checks: usize,
) -> f64 {
    let probe = Probe::Elements(max_checks);
    check_gradient_probed(what, x, analytic, loss, atol, rtol, probe)
}

/// How a finite-difference check probes a gradient.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// At most this many evenly spread elements, one at a time.
    Elements(usize),
    /// This many random unit directions (seeded): every element takes part, at two loss
    /// evaluations per direction. A wrong element shifts ⟨g, v⟩ by its error times a component
    /// of order 1/√n, far above `rtol` for the tensors checked here.
    Directions { count: usize, seed: u64 },
}

/// Compares `analytic` = dL/dx with central differences of `loss` at `x` along each probe
/// (an element, or a direction v against ⟨analytic, v⟩). Panics with the worst probe when
/// |fd − analytic| > atol + rtol·|fd|; returns the worst |err|/allowed.
pub fn check_gradient_probed(
    what: &str,
    x: &ArrayD<f64>,
    analytic: &ArrayD<f64>,
    loss: impl Fn(&ArrayD<f64>) -> f64,
    atol: f64,
    rtol: f64,
    probe: Probe,
) -> f64 {
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let n = x.len();
    let h = 1e-6;
    // (excess, probe index, finite difference, analytic)
    let mut worst = (0.0f64, 0usize, 0.0f64, 0.0f64);
    let mut record = |k: usize, lp: f64, lm: f64, an: f64| {
        let fd = (lp - lm) / (2.0 * h);
        let excess = (fd - an).abs() / (atol + rtol * fd.abs());
        if excess > worst.0 {
            worst = (excess, k, fd, an);
        }
    };
    let (probed, kind) = match probe {
        Probe::Elements(max_checks) => {
            let stride = n.div_ceil(max_checks).max(1);
            let mut xp = x.clone();
            let flat_a = analytic.as_slice().expect("standard layout");
            for i in (0..n).step_by(stride) {
                let orig = xp.as_slice().unwrap()[i];
                xp.as_slice_mut().unwrap()[i] = orig + h;
                let lp = loss(&xp);
                xp.as_slice_mut().unwrap()[i] = orig - h;
                let lm = loss(&xp);
                xp.as_slice_mut().unwrap()[i] = orig;
                record(i, lp, lm, flat_a[i]);
            }
            (n.div_ceil(stride), "element")
        }
        Probe::Directions { count, seed } => {
            for k in 0..count {
                let mut v = rand_array(x.raw_dim(), seed.wrapping_add(k as u64));
                let norm = v.iter().map(|e| e * e).sum::<f64>().sqrt();
                v.mapv_inplace(|e| e / norm);
                let lp = loss(&(x + &(&v * h)));
                let lm = loss(&(x - &(&v * h)));
                record(k, lp, lm, dot(analytic, &v));
            }
            (count, "direction")
        }
    };
    let (excess, k, fd, an) = worst;
    assert!(
        excess <= 1.0,
        "{what}: worst {kind} {k} (of {n} elements) finite difference {fd:.9e} vs analytic {an:.9e} (|err| = {:.3e}, allowed {:.3e})",
        (fd - an).abs(),
        atol + rtol * fd.abs()
    );
    eprintln!("{what}: worst |err|/allowed = {excess:.3e} over {probed} {kind}s");
    excess
}

/// ⟨a, b⟩ for same-shaped arrays (the scalar loss of a random projection of an op's output).
pub fn dot<D: Dimension>(a: &Array<f64, D>, b: &Array<f64, D>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

pub fn dyn_shape(shape: &[usize]) -> IxDyn {
    IxDyn(shape)
}
