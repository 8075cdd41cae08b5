//! Adam exactly as PyTorch's (no weight decay, no amsgrad), official SinCUT β = (0, 0.99).

use crate::tensor::Real;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// One update of `param` in place. `step` is the 1-based step count of this update.
pub fn adam_update<T: Real>(
    param: &mut [T],
    grad: &[T],
    exp_avg: &mut [T],
    exp_avg_sq: &mut [T],
    step: u64,
    lr: f64,
    cfg: &AdamConfig,
) {
    let _ = (param, grad, exp_avg, exp_avg_sq, step, lr, cfg);
    todo!()
}
