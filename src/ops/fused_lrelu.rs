//! Fused bias + leaky ReLU: y = leaky_relu(x + b, 0.2)·√2, b per channel (axis 1).

use crate::tensor::{Real, c};
use ndarray::Array4;

const SLOPE: f64 = 0.2;

/// Test builds only: a per-thread tape of the side of the kink every activation (this leaky
/// ReLU and F's ReLU) takes. An f32 step recorded and an f64 step replaying the record take the
/// same slopes, so their gradients differ by rounding alone: a pre-activation within f32
/// rounding of 0 otherwise takes the other slope in one of them, which moves a gradient that
/// flows through few elements (PatchNCE's) by up to ~1e-3 at random.
#[cfg(test)]
pub(crate) mod kinks {
    use crate::tensor::{Real, c};
    use std::cell::RefCell;

    enum Tape {
        Record(Vec<bool>),
        /// The record, the next index, the number of sides forced.
        Replay(Vec<bool>, usize, usize),
    }

    thread_local! {
        static TAPE: RefCell<Option<Tape>> = const { RefCell::new(None) };
    }

    /// Runs `f` recording every activation's side (u > 0) on this thread.
    pub(crate) fn record<R>(f: impl FnOnce() -> R) -> (R, Vec<bool>) {
        TAPE.with(|t| *t.borrow_mut() = Some(Tape::Record(Vec::new())));
        let r = f();
        match TAPE.with(|t| t.borrow_mut().take()) {
            Some(Tape::Record(v)) => (r, v),
            _ => unreachable!("kink tape lost"),
        }
    }

    /// Runs `f` taking the recorded sides in order; returns how many differed from its own.
    /// Panics unless `f` passes exactly the recorded activations.
    pub(crate) fn replay<R>(tape: Vec<bool>, f: impl FnOnce() -> R) -> (R, usize) {
        let len = tape.len();
        TAPE.with(|t| *t.borrow_mut() = Some(Tape::Replay(tape, 0, 0)));
        let r = f();
        match TAPE.with(|t| t.borrow_mut().take()) {
            Some(Tape::Replay(_, i, forced)) => {
                assert_eq!(
                    i, len,
                    "kink tape: replay passed {i} activations, record {len}"
                );
                (r, forced)
            }
            _ => unreachable!("kink tape lost"),
        }
    }

    /// The side pre-activation `u` takes: its own, or the recorded one when replaying (then
    /// `u` is moved to a negligible value on that side). `zero_when_off` gives 0 rather than
    /// −1e-30 for the off side (ReLU).
    pub(crate) fn side<T: Real>(u: T, zero_when_off: bool) -> T {
        TAPE.with(|t| match &mut *t.borrow_mut() {
            None => u,
            Some(Tape::Record(v)) => {
                v.push(u > T::zero());
                u
            }
            Some(Tape::Replay(v, i, forced)) => {
                let on = *v
                    .get(*i)
                    .expect("kink tape: replay passed more activations");
                *i += 1;
                if on == (u > T::zero()) {
                    u
                } else {
                    *forced += 1;
                    match (on, zero_when_off) {
                        (true, _) => c(1e-30),
                        (false, true) => T::zero(),
                        (false, false) => c(-1e-30),
                    }
                }
            }
        })
    }
}

/// In place on x.
pub fn fused_lrelu_forward<T: Real>(x: &mut Array4<T>, bias: &[T]) {
    let (_, ch, h, w) = x.dim();
    assert_eq!(
        bias.len(),
        ch,
        "fused_lrelu_forward: bias length vs channels"
    );
    let plane = h * w;
    if plane == 0 {
        return;
    }
    let scale: T = c(std::f64::consts::SQRT_2);
    let neg: T = c(SLOPE);
    let z = T::zero();
    let xs = x
        .as_slice_mut()
        .expect("fused_lrelu_forward: standard layout");
    // Same rounding steps as `F.leaky_relu(x + b, 0.2) * sqrt(2)`: add, (scale by 0.2), scale by √2.
    for (i, p) in xs.chunks_exact_mut(plane).enumerate() {
        let b = bias[i % ch];
        for v in p.iter_mut() {
            let u = *v + b;
            #[cfg(test)]
            let u = kinks::side(u, false);
            let a = if u > z { u } else { u * neg };
            *v = a * scale;
        }
    }
}

/// Returns dx and db (Σ of dx over N, H, W), leaving dy as it is (a ResBlock's output gradient
/// also goes to its skip). The slope comes from the forward output y: √2 where y > 0, 0.2·√2
/// elsewhere (as PyTorch's leaky_relu backward at x + b = 0).
pub fn fused_lrelu_backward<T: Real>(y: &Array4<T>, dy: &Array4<T>) -> (Array4<T>, Vec<T>) {
    assert_eq!(y.dim(), dy.dim(), "fused_lrelu_backward: shapes");
    let ys = y.as_slice().expect("fused_lrelu: standard layout");
    let gs = dy.as_slice().expect("fused_lrelu: standard layout");
    let dx = gs.iter().zip(ys).map(|(&g, &yv)| slope(yv, g)).collect();
    let dx = Array4::from_shape_vec(dy.dim(), dx).expect("fused_lrelu_backward: shape");
    let db = super::bias::channel_sums(&dx);
    (dx, db)
}

/// Tangent (JVP) through the activation with the primal slopes, no bias: t ← t·slope(y), in place.
pub fn fused_lrelu_tangent<T: Real>(y: &Array4<T>, t: &mut Array4<T>) {
    assert_eq!(y.dim(), t.dim(), "fused_lrelu_tangent: shapes");
    apply_slope(y, t);
}

/// g ← slope(y)·g in place.
fn apply_slope<T: Real>(y: &Array4<T>, g: &mut Array4<T>) {
    let ys = y.as_slice().expect("fused_lrelu: standard layout");
    let gs = g.as_slice_mut().expect("fused_lrelu: standard layout");
    for (d, &yv) in gs.iter_mut().zip(ys) {
        *d = slope(yv, *d);
    }
}

/// slope(y)·g, rounded as autograd does for `leaky_relu(u)·√2`: first the Mul's backward (g·√2),
/// then leaky_relu_backward (·0.2 where u ≤ 0). R1's double backward differentiates that same
/// graph linearly in g, so the tangent uses the same steps. y > 0 ⇔ x + b > 0 (√2 and 0.2·√2 are
/// positive; y keeps u's sign).
#[inline]
fn slope<T: Real>(y: T, g: T) -> T {
    let s = g * c::<T>(std::f64::consts::SQRT_2);
    if y > T::zero() { s } else { s * c::<T>(SLOPE) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::{Array1, ArrayD, Ix1, Ix4};

    const SHAPE: (usize, usize, usize, usize) = (3, 5, 7, 6);

    fn fwd(x: &Array4<f64>, b: &[f64]) -> Array4<f64> {
        let mut y = x.clone();
        fused_lrelu_forward(&mut y, b);
        y
    }

    #[test]
    fn forward_matches_formula() {
        let x = rand_array(Ix4(SHAPE.0, SHAPE.1, SHAPE.2, SHAPE.3), 41);
        let b = rand_array(Ix1(SHAPE.1), 42).to_vec();
        let y = fwd(&x, &b);
        for ((n, ch, i, j), v) in y.indexed_iter() {
            let u = x[[n, ch, i, j]] + b[ch];
            let e = if u > 0.0 { u } else { 0.2 * u } * 2f64.sqrt();
            assert!((v - e).abs() <= 1e-15, "{v} vs {e}");
        }
    }

    #[test]
    fn backward_fd_x_and_bias() {
        let x = rand_array(Ix4(SHAPE.0, SHAPE.1, SHAPE.2, SHAPE.3), 43);
        let b = rand_array(Ix1(SHAPE.1), 44).to_vec();
        let proj = rand_array(Ix4(SHAPE.0, SHAPE.1, SHAPE.2, SHAPE.3), 45);
        let y = fwd(&x, &b);
        let (dx, db) = fused_lrelu_backward(&y, &proj);
        // Random x + b are at distance ≫ 1e-6 from the kink with overwhelming probability.
        let lx = |x: &ArrayD<f64>| dot(&fwd(&x.clone().into_dimensionality().unwrap(), &b), &proj);
        check_gradient(
            "fused_lrelu dx",
            &x.clone().into_dyn(),
            &dx.into_dyn(),
            lx,
            1e-8,
            1e-7,
        );
        let lb = |bb: &ArrayD<f64>| dot(&fwd(&x, bb.as_slice().unwrap()), &proj);
        check_gradient(
            "fused_lrelu db",
            &Array1::from(b.clone()).into_dyn(),
            &Array1::from(db).into_dyn(),
            lb,
            1e-8,
            1e-7,
        );
    }

    #[test]
    fn slope_at_zero_is_negative_branch() {
        let mut y = Array4::<f64>::zeros((1, 1, 1, 1));
        fused_lrelu_forward(&mut y, &[0.0]);
        let (g, db) = fused_lrelu_backward(&y, &Array4::<f64>::ones((1, 1, 1, 1)));
        let e = 2f64.sqrt() * 0.2;
        assert_eq!(g[[0, 0, 0, 0]], e);
        assert_eq!(db, vec![e]);
    }

    #[test]
    fn tangent_is_directional_derivative() {
        let x = rand_array(Ix4(SHAPE.0, SHAPE.1, SHAPE.2, SHAPE.3), 46);
        let b = rand_array(Ix1(SHAPE.1), 47).to_vec();
        let t = rand_array(Ix4(SHAPE.0, SHAPE.1, SHAPE.2, SHAPE.3), 48);
        let y = fwd(&x, &b);
        let mut jt = t.clone();
        fused_lrelu_tangent(&y, &mut jt);
        let h = 1e-6;
        let yp = fwd(&(&x + &(&t * h)), &b);
        let ym = fwd(&(&x - &(&t * h)), &b);
        let fd = (&yp - &ym) / (2.0 * h);
        let worst = fd
            .iter()
            .zip(jt.iter())
            .map(|(a, b)| (a - b).abs() / (1e-8 + 1e-7 * a.abs()))
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "tangent vs FD: worst excess {worst}");
    }
}
