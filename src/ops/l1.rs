//! Identity loss: mean |a − b| (PyTorch l1_loss; its gradient is sign(a − b)/n, 0 where equal).

use crate::tensor::Real;
use ndarray::Array4;

pub fn l1_mean_forward<T: Real>(a: &Array4<T>, b: &Array4<T>) -> T {
    let _ = (a, b);
    todo!()
}

/// d/da of the mean.
pub fn l1_mean_backward<T: Real>(a: &Array4<T>, b: &Array4<T>) -> Array4<T> {
    let _ = (a, b);
    todo!()
}
