//! Noise injection: y = x + w·n, one noise channel n (N,1,H,W) broadcast over channels, w scalar.

use crate::tensor::Real;
use ndarray::Array4;

/// In place on x.
pub fn noise_forward<T: Real>(x: &mut Array4<T>, w: T, n: &Array4<T>) {
    let _ = (x, w, n);
    todo!()
}

/// dL/dw = Σ dy·n (dL/dx = dy).
pub fn noise_backward_weight<T: Real>(dy: &Array4<T>, n: &Array4<T>) -> T {
    let _ = (dy, n);
    todo!()
}
