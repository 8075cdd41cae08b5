//! Non-saturating GAN terms: mean softplus(x) (fake, for D) or mean softplus(−x) (real for D,
//! fake for G). PyTorch's softplus returns x itself above 20.

use crate::tensor::{Real, c};

/// PyTorch's softplus threshold (beta = 1).
const THRESHOLD: f64 = 20.0;

#[inline]
fn signed<T: Real>(x: T, negate: bool) -> T {
    if negate { -x } else { x }
}

/// mean over all logits of softplus(±x); `negate` selects softplus(−x).
pub fn softplus_mean_forward<T: Real>(logits: &[T], negate: bool) -> T {
    assert!(!logits.is_empty(), "softplus_mean_forward: no logits");
    let th: T = c(THRESHOLD);
    // log1p(exp(x)) is stable here: x ≤ 20 cannot overflow, and for very negative x it is ≈ eˣ.
    let sum: f64 = logits
        .iter()
        .map(|&x| {
            let u = signed(x, negate);
            let sp = if u > th { u } else { u.exp().ln_1p() };
            sp.to_f64().unwrap()
        })
        .sum();
    T::from_f64(sum / logits.len() as f64).unwrap()
}

/// d(mean softplus(±x))/dx.
pub fn softplus_mean_backward<T: Real>(logits: &[T], negate: bool) -> Vec<T> {
    let th: T = c(THRESHOLD);
    // Mean backward: 1/n in T; softplus_backward: g·z/(z + 1), z = eᵘ (g itself above 20);
    // the negation's backward flips the sign.
    let g = T::one() / T::from_usize(logits.len()).unwrap();
    logits
        .iter()
        .map(|&x| {
            let u = signed(x, negate);
            let d = if u > th {
                g
            } else {
                let z = u.exp();
                g * z / (z + T::one())
            };
            signed(d, negate)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, rand_array};
    use ndarray::{Array1, ArrayD, Ix1};

    /// Random logits in [−4, 4) plus some beyond ±20 (all far from the ±20 kink, so the FD is
    /// taken on one side of it only).
    fn logits() -> Vec<f64> {
        let mut v: Vec<f64> = rand_array(Ix1(13), 81).iter().map(|x| 4.0 * x).collect();
        v.extend([25.0, -23.5, 31.0, -40.0, 19.5, -19.0]);
        v
    }

    #[test]
    fn forward_values() {
        let v = logits();
        for negate in [false, true] {
            let m = softplus_mean_forward(&v, negate);
            let e: f64 = v
                .iter()
                .map(|&x| {
                    let u = if negate { -x } else { x };
                    if u > 20.0 { u } else { (1.0 + u.exp()).ln() }
                })
                .sum::<f64>()
                / v.len() as f64;
            assert!((m - e).abs() < 1e-14, "negate={negate}: {m} vs {e}");
        }
        // Above the threshold softplus is x itself; far below it is eˣ (no underflow to NaN).
        assert_eq!(softplus_mean_forward(&[30.0f32], false), 30.0);
        let tiny = softplus_mean_forward(&[-80.0f64], false);
        assert!((tiny - (-80.0f64).exp()).abs() < 1e-40);
    }

    #[test]
    fn backward_fd() {
        let v = Array1::from(logits()).into_dyn();
        for negate in [false, true] {
            let d = Array1::from(softplus_mean_backward(v.as_slice().unwrap(), negate)).into_dyn();
            let loss = |x: &ArrayD<f64>| softplus_mean_forward(x.as_slice().unwrap(), negate);
            check_gradient(
                &format!("softplus negate={negate}"),
                &v,
                &d,
                loss,
                1e-9,
                1e-6,
            );
        }
    }

    #[test]
    fn backward_above_threshold_is_exact() {
        let d = softplus_mean_backward(&[25.0f32, -25.0], false);
        assert_eq!(
            d,
            vec![0.5, 0.5 * (-25.0f32).exp() / ((-25.0f32).exp() + 1.0)]
        );
        let d = softplus_mean_backward(&[-25.0f32], true);
        assert_eq!(d, vec![-1.0]);
    }
}
