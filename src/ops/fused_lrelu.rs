//! Fused bias + leaky ReLU: y = leaky_relu(x + b, 0.2)·√2, b per channel (axis 1).

use crate::tensor::Real;
use ndarray::Array4;

/// In place on x.
pub fn fused_lrelu_forward<T: Real>(x: &mut Array4<T>, bias: &[T]) {
    let _ = (x, bias);
    todo!()
}

/// Turns dy into dx in place and returns db (Σ over N, H, W). The slope comes from the forward
/// output y: √2 where y > 0, 0.2·√2 elsewhere (as PyTorch's leaky_relu backward at x + b = 0).
pub fn fused_lrelu_backward<T: Real>(y: &Array4<T>, dy: &mut Array4<T>) -> Vec<T> {
    let _ = (y, dy);
    todo!()
}

/// Tangent (JVP) through the activation with the primal slopes, no bias: t ← t·slope(y), in place.
pub fn fused_lrelu_tangent<T: Real>(y: &Array4<T>, t: &mut Array4<T>) {
    let _ = (y, t);
    todo!()
}
