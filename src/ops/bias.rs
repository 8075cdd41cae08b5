//! Plain per-channel bias (PyTorch Linear's bias in F).

use crate::tensor::Real;
use ndarray::Array4;

/// x[:, c, :, :] += b[c], in place.
pub fn add_bias<T: Real>(x: &mut Array4<T>, b: &[T]) {
    let _ = (x, b);
    todo!()
}

/// dL/db = Σ over N, H, W of dy.
pub fn bias_grad<T: Real>(dy: &Array4<T>) -> Vec<T> {
    let _ = dy;
    todo!()
}
