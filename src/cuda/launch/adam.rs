use super::{check, launch};
use crate::cuda::{CudaError, Gpu, grid_1d};
use crate::ops::adam::AdamConfig;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// One Adam update in place, bit-identical to `ops::adam::adam_update` (same f64 host scalars
/// rounded to f32, same device operation order). `step` is 1-based.
#[allow(clippy::too_many_arguments)]
pub fn update(
    gpu: &Gpu,
    param: &mut CudaSlice<f32>,
    grad: &CudaSlice<f32>,
    exp_avg: &mut CudaSlice<f32>,
    exp_avg_sq: &mut CudaSlice<f32>,
    step: u64,
    lr: f64,
    cfg: &AdamConfig,
) -> Result<(), CudaError> {
    let n = param.len();
    check(
        grad.len() == n && exp_avg.len() == n && exp_avg_sq.len() == n,
        || "adam: lengths".into(),
    )?;
    check(step >= 1, || "adam: step is 1-based".into())?;
    let bias_correction1 = 1.0 - cfg.beta1.powf(step as f64);
    let bias_correction2 = 1.0 - cfg.beta2.powf(step as f64);
    let step_size = lr / bias_correction1;
    let bc2_sqrt = bias_correction2.sqrt() as f32;
    let weight = (1.0 - cfg.beta1) as f32;
    let lerp_low = (weight.abs() < 0.5) as i32;
    let beta2 = cfg.beta2 as f32;
    let one_m_beta2 = (1.0 - cfg.beta2) as f32;
    let eps = cfg.eps as f32;
    let neg_step = (-step_size) as f32;
    let f = gpu.function("adam.cu", "adam_step")?;
    let ni = n as i64;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(param)
        .arg(grad)
        .arg(exp_avg)
        .arg(exp_avg_sq)
        .arg(&ni)
        .arg(&weight)
        .arg(&lerp_low)
        .arg(&beta2)
        .arg(&one_m_beta2)
        .arg(&bc2_sqrt)
        .arg(&eps)
        .arg(&neg_step);
    launch!(l, grid_1d(n), "adam_step")
}
