//! PatchNCE with the batch's other patches as negatives (num_patches = 1, as SinCUT):
//! for queries q and keys k (B, D), row b's logits are [q_b·k_b, q_b·k_j for j = 0..B with the
//! j = b entry replaced by −10] / τ, and its loss the cross-entropy towards column 0.

use crate::tensor::{Real, c};
use ndarray::Array2;

/// Logits of row b (length B + 1), already divided by τ, from the similarity row s_b = q_b·k_j.
fn fill_row<T: Real>(s: &[T], b: usize, tau: T, out: &mut [T]) {
    // masked_fill(−10) happens before the division by τ, as in CUT's PatchNCELoss.
    out[0] = s[b] / tau;
    for (j, &v) in s.iter().enumerate() {
        out[1 + j] = if j == b { c::<T>(-10.0) } else { v } / tau;
    }
}

/// log_softmax pieces as PyTorch computes them: max m and ln Σ exp(r − m).
fn max_and_log_sum<T: Real>(r: &[T]) -> (T, T) {
    let m = r.iter().copied().fold(T::neg_infinity(), T::max);
    let sum: f64 = r.iter().map(|&v| (v - m).exp().to_f64().unwrap()).sum();
    (m, T::from_f64(sum).unwrap().ln())
}

fn check_shapes<T: Real>(q: &Array2<T>, k: &Array2<T>) {
    assert_eq!(q.dim(), k.dim(), "patchnce: q and k shapes");
}

/// Per-row cross-entropy (length B).
pub fn patchnce_forward<T: Real>(q: &Array2<T>, k: &Array2<T>, tau: f64) -> Vec<T> {
    check_shapes(q, k);
    let bsz = q.nrows();
    let tau_t: T = c(tau);
    let s = q.dot(&k.t()).as_standard_layout().into_owned();
    let mut row = vec![T::zero(); bsz + 1];
    (0..bsz)
        .map(|b| {
            fill_row(s.row(b).as_slice().unwrap(), b, tau_t, &mut row);
            let (m, lse) = max_and_log_sum(&row);
            // nll of log_softmax at column 0: −((r₀ − m) − ln Σ).
            -((row[0] - m) - lse)
        })
        .collect()
}

/// d(Σ_b dloss_b·CE_b)/dq; keys are detached (no gradient).
pub fn patchnce_backward<T: Real>(
    q: &Array2<T>,
    k: &Array2<T>,
    tau: f64,
    dloss: &[T],
) -> Array2<T> {
    check_shapes(q, k);
    let bsz = q.nrows();
    assert_eq!(dloss.len(), bsz, "patchnce_backward: dloss length");
    let tau_t: T = c(tau);
    let s = q.dot(&k.t()).as_standard_layout().into_owned();
    // G[b, j] = dL/d(q_b·k_j): the positive logit lands on the diagonal; the masked negative
    // (also q_b·k_b before masking) is a constant and contributes nothing.
    let mut g = Array2::<T>::zeros((bsz, bsz));
    let mut row = vec![T::zero(); bsz + 1];
    for b in 0..bsz {
        fill_row(s.row(b).as_slice().unwrap(), b, tau_t, &mut row);
        let (m, lse) = max_and_log_sum(&row);
        let dl = dloss[b];
        // log_softmax backward: dr_j = go_j − exp(logp_j)·Σ go, with go = −dl at column 0 only.
        let dr = |j: usize| {
            let p = ((row[j] - m) - lse).exp();
            let go = if j == 0 { -dl } else { T::zero() };
            go + p * dl
        };
        for j in 0..bsz {
            if j != b {
                g[[b, j]] = dr(1 + j) / tau_t;
            }
        }
        g[[b, b]] = dr(0) / tau_t;
    }
    g.dot(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, rand_array};
    use ndarray::{ArrayD, Ix1, Ix2};

    const TAU: f64 = 0.07;

    fn normalised(b: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut x = rand_array(Ix2(b, d), seed);
        for mut r in x.rows_mut() {
            let n = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.mapv_inplace(|v| v / n);
        }
        x
    }

    #[test]
    fn b2_matches_direct_formula() {
        let q = normalised(2, 7, 61);
        let k = normalised(2, 7, 62);
        let l = patchnce_forward(&q, &k, TAU);
        let d = |a: usize, b: usize| q.row(a).dot(&k.row(b));
        assert_eq!(l.len(), 2);
        for (b, &lb) in l.iter().enumerate() {
            let o = 1 - b;
            // Row b: [q_b·k_b, (−10 at j = b), q_b·k_o] / τ, cross-entropy towards column 0.
            let pos = (d(b, b) / TAU).exp();
            let e = -(pos / (pos + (-10.0 / TAU).exp() + (d(b, o) / TAU).exp())).ln();
            assert!(
                (lb - e).abs() < 1e-12 * e.abs().max(1.0),
                "row {b}: {lb} vs {e}"
            );
        }
    }

    fn fd_case(bsz: usize, seed: u64) {
        let q = normalised(bsz, 7, seed);
        let k = normalised(bsz, 7, seed + 1);
        let w = rand_array(Ix1(bsz), seed + 2).to_vec();
        let dq = patchnce_backward(&q, &k, TAU, &w);
        let loss = |q: &ArrayD<f64>| {
            let q = q.clone().into_dimensionality::<Ix2>().unwrap();
            patchnce_forward(&q, &k, TAU)
                .iter()
                .zip(&w)
                .map(|(a, b)| a * b)
                .sum()
        };
        check_gradient(
            &format!("patchnce dq B={bsz}"),
            &q.into_dyn(),
            &dq.into_dyn(),
            loss,
            1e-7,
            1e-6,
        );
    }

    #[test]
    fn backward_fd_b3() {
        fd_case(3, 63);
    }

    #[test]
    fn backward_fd_b5() {
        fd_case(5, 67);
    }

    #[test]
    fn positive_key_dominates_gives_small_loss() {
        // k = q: the positive (1/τ ≈ 14.3) dominates random negatives; loss ≪ ln(B + 1).
        let q = normalised(5, 7, 71);
        let l = patchnce_forward(&q, &q, TAU);
        assert!(l.iter().all(|&v| v >= 0.0 && v < 6f64.ln()));
    }
}
