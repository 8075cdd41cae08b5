//! ReLU (between F's two linear layers).

use crate::tensor::Real;
use ndarray::Array4;

pub fn relu_forward<T: Real>(x: &mut Array4<T>) {
    let _ = x;
    todo!()
}

/// dy → dx in place, using the forward output y (gradient 0 where y ≤ 0, as PyTorch).
pub fn relu_backward<T: Real>(y: &Array4<T>, dy: &mut Array4<T>) {
    let _ = (y, dy);
    todo!()
}
