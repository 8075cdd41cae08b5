use super::{check, launch, partials};
use crate::cuda::{CudaError, Gpu, grid_1d, grid_blocks};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// mean softplus(±x) over the first `n` logits, as a one-element buffer
/// (`ops::gan_loss::softplus_mean_forward`).
pub fn softplus_mean_forward(
    gpu: &Gpu,
    logits: &CudaSlice<f32>,
    n: usize,
    negate: bool,
) -> Result<CudaSlice<f32>, CudaError> {
    check(n > 0 && logits.len() >= n, || {
        "softplus_mean: length".into()
    })?;
    let np = partials(n);
    let mut part = gpu
        .stream()
        .alloc_zeros::<f64>(np)
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function("gan_loss.cu", "softplus_partial")?;
    let (ni, neg) = (n as i64, negate as i32);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(logits).arg(&ni).arg(&neg).arg(&mut part);
    launch!(l, grid_blocks(np), "softplus_partial")?;
    let mut out = gpu.alloc_out(1)?;
    let f = gpu.function("gan_loss.cu", "softplus_finish")?;
    let (npi, count) = (np as i32, n as f64);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(&part).arg(&npi).arg(&mut out).arg(&count);
    launch!(l, grid_blocks(1), "softplus_finish")?;
    Ok(out)
}

/// d(mean softplus(±x))/dx (length n), as `ops::gan_loss::softplus_mean_backward`.
pub fn softplus_mean_backward(
    gpu: &Gpu,
    logits: &CudaSlice<f32>,
    n: usize,
    negate: bool,
) -> Result<CudaSlice<f32>, CudaError> {
    check(n > 0 && logits.len() >= n, || {
        "softplus_mean: length".into()
    })?;
    let mut dx = gpu.alloc_out(n)?;
    let f = gpu.function("gan_loss.cu", "softplus_bwd")?;
    let (ni, neg) = (n as i64, negate as i32);
    let g = 1.0f32 / (n as f32);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(logits).arg(&mut dx).arg(&ni).arg(&neg).arg(&g);
    launch!(l, grid_1d(n), "softplus_bwd")?;
    Ok(dx)
}
