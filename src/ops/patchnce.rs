//! PatchNCE with the batch's other patches as negatives (num_patches = 1, as SinCUT):
//! for queries q and keys k (B, D), row b's logits are [q_b·k_b, q_b·k_j for j = 0..B with the
//! j = b entry replaced by −10] / τ, and its loss the cross-entropy towards column 0.

use crate::tensor::Real;
use ndarray::Array2;

/// Per-row cross-entropy (length B).
pub fn patchnce_forward<T: Real>(q: &Array2<T>, k: &Array2<T>, tau: f64) -> Vec<T> {
    let _ = (q, k, tau);
    todo!()
}

/// d(Σ_b dloss_b·CE_b)/dq; keys are detached (no gradient).
pub fn patchnce_backward<T: Real>(q: &Array2<T>, k: &Array2<T>, tau: f64, dloss: &[T]) -> Array2<T> {
    let _ = (q, k, tau, dloss);
    todo!()
}
