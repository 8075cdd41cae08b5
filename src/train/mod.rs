//! One SinCUT training step and iteration as pure functions of their inputs.

use crate::config::ModelConfig;
use crate::nn::ParamMap;
use crate::tensor::Real;
use ndarray::{Array4, ArrayD};
use std::collections::BTreeMap;

/// All the randomness of one step, drawn outside it.
#[derive(Clone, Debug)]
pub struct StepInputs<T> {
    /// Source crops (N,3,crop,crop) in [-1, 1].
    pub real_a: Array4<T>,
    /// Target crops (N,3,crop,crop).
    pub real_b: Array4<T>,
    /// Decoder noise (2N,1,crop,crop): rows 0..N with G(real_a), N..2N with G(real_b).
    pub noise: Array4<T>,
    /// Flat index y·W+x of the sampled patch per NCE layer (0, 2, 4) for NCE(real_a → fake_b).
    pub nce_ids_x: [usize; 3],
    /// The same for NCE(real_b → idt_b).
    pub nce_ids_y: [usize; 3],
}

/// One step without a parameter update, every quantity under its golden-fixture name:
/// `fake`, `d_real`, `d_fake`, `r1.input_grad`, `loss.*` (shape (1,)), `grad.D.*`, `grad.G.*`,
/// `grad.F.*`, `grad_r1.D.*`, `grad_gan.G.*`, `grad_nce.G.*`, `grad_nce.F.*`, `grad_idt.G.*`.
pub fn replay_step<T: Real>(cfg: &ModelConfig, params: &ParamMap<T>, inputs: &StepInputs<T>) -> BTreeMap<String, ArrayD<T>> {
    let _ = (cfg, params, inputs);
    todo!()
}

/// K official iterations (D step + Adam, then G and F steps + Adam) from `params`:
/// `k<i>.loss.*` for each iteration and `final.<param name>` after the last.
pub fn replay_trajectory<T: Real>(cfg: &ModelConfig, params: &ParamMap<T>, iters: &[StepInputs<T>]) -> BTreeMap<String, ArrayD<T>> {
    let _ = (cfg, params, iters);
    todo!()
}
