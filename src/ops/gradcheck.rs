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
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let n = x.len();
    let stride = n.div_ceil(max_checks).max(1);
    let h = 1e-6;
    let mut worst = (0.0f64, 0usize, 0.0f64, 0.0f64);
    let mut xp = x.clone();
    let flat_a = analytic.as_slice().expect("standard layout");
    for i in (0..n).step_by(stride) {
        let orig = xp.as_slice().unwrap()[i];
        xp.as_slice_mut().unwrap()[i] = orig + h;
        let lp = loss(&xp);
        xp.as_slice_mut().unwrap()[i] = orig - h;
        let lm = loss(&xp);
        xp.as_slice_mut().unwrap()[i] = orig;
        let fd = (lp - lm) / (2.0 * h);
        let err = (fd - flat_a[i]).abs();
        let excess = err / (atol + rtol * fd.abs());
        if excess > worst.0 {
            worst = (excess, i, fd, flat_a[i]);
        }
    }
    let (excess, i, fd, an) = worst;
    assert!(
        excess <= 1.0,
        "{what}: worst element {i} (of {n}) finite difference {fd:.9e} vs analytic {an:.9e} (|err| = {:.3e}, allowed {:.3e})",
        (fd - an).abs(),
        atol + rtol * fd.abs()
    );
    eprintln!(
        "{what}: worst |err|/allowed = {excess:.3e} over {} checked elements",
        n.div_ceil(stride)
    );
    excess
}

/// Compares ⟨analytic, v⟩ with the central difference of `loss` along `directions` random unit
/// vectors v (seeded by `seed`): every element of the gradient takes part, at two loss
/// evaluations per direction instead of two per element. A wrong element shifts ⟨g, v⟩ by its
/// error times a component of order 1/√n, far above `rtol` for the tensors checked here.
/// Panics with the worst direction; returns the worst |err|/allowed.
#[allow(clippy::too_many_arguments)]
pub fn check_gradient_directional(
    what: &str,
    x: &ArrayD<f64>,
    analytic: &ArrayD<f64>,
    loss: impl Fn(&ArrayD<f64>) -> f64,
    atol: f64,
    rtol: f64,
    directions: usize,
    seed: u64,
) -> f64 {
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let h = 1e-6;
    let mut worst = (0.0f64, 0usize, 0.0f64, 0.0f64);
    for k in 0..directions {
        let mut v = rand_array(x.raw_dim(), seed.wrapping_add(k as u64));
        let norm = v.iter().map(|e| e * e).sum::<f64>().sqrt();
        v.mapv_inplace(|e| e / norm);
        let lp = loss(&(x + &(&v * h)));
        let lm = loss(&(x - &(&v * h)));
        let fd = (lp - lm) / (2.0 * h);
        let an = dot(analytic, &v);
        let excess = (fd - an).abs() / (atol + rtol * fd.abs());
        if excess > worst.0 {
            worst = (excess, k, fd, an);
        }
    }
    let (excess, k, fd, an) = worst;
    assert!(
        excess <= 1.0,
        "{what}: direction {k} (of {directions}, {} elements) finite difference {fd:.9e} vs analytic {an:.9e} (|err| = {:.3e}, allowed {:.3e})",
        x.len(),
        (fd - an).abs(),
        atol + rtol * fd.abs()
    );
    eprintln!("{what}: worst |err|/allowed = {excess:.3e} over {directions} directions");
    excess
}

/// ⟨a, b⟩ for same-shaped arrays (the scalar loss of a random projection of an op's output).
pub fn dot<D: Dimension>(a: &Array<f64, D>, b: &Array<f64, D>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}

pub fn dyn_shape(shape: &[usize]) -> IxDyn {
    IxDyn(shape)
}
