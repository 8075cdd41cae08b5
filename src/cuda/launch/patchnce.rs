use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_blocks, i32_arg};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// The kernels keep a row of B + 1 logits in shared memory (PNCE_MAX_B in patchnce.cu).
pub const MAX_B: usize = 1024;

fn dims(q: &GpuTensor, k: &GpuTensor) -> Result<(usize, i32, i32), CudaError> {
    check(q.shape == k.shape, || "patchnce: q and k shapes".into())?;
    let [b, c, h, w] = q.shape;
    check((1..=MAX_B).contains(&b), || {
        format!("patchnce: batch {b} not in 1..={MAX_B}")
    })?;
    Ok((
        b,
        i32_arg("batch", b)?,
        i32_arg("feature length", c * h * w)?,
    ))
}

/// Per-row cross-entropy (length B) for q, k (B, D) stored as (B, D, 1, 1), as
/// `ops::patchnce::patchnce_forward`.
pub fn forward(
    gpu: &Gpu,
    q: &GpuTensor,
    k: &GpuTensor,
    tau: f64,
) -> Result<CudaSlice<f32>, CudaError> {
    let (b, bi, d) = dims(q, k)?;
    let mut loss = gpu.alloc_out(b)?;
    let f = gpu.function("patchnce.cu", "patchnce_fwd")?;
    let t = tau as f32;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(q.buf())
        .arg(k.buf())
        .arg(&mut loss)
        .arg(&bi)
        .arg(&d)
        .arg(&t);
    launch!(l, grid_blocks(b), "patchnce_fwd")?;
    Ok(loss)
}

/// d(Σ_b dloss_b·CE_b)/dq (keys detached), as `ops::patchnce::patchnce_backward`.
pub fn backward(
    gpu: &Gpu,
    q: &GpuTensor,
    k: &GpuTensor,
    tau: f64,
    dloss: &CudaSlice<f32>,
) -> Result<GpuTensor, CudaError> {
    let (b, bi, d) = dims(q, k)?;
    check(dloss.len() >= b, || "patchnce: dloss length".into())?;
    let mut dq = GpuTensor::output(gpu, q.shape)?;
    let f = gpu.function("patchnce.cu", "patchnce_bwd")?;
    let t = tau as f32;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(q.buf())
        .arg(k.buf())
        .arg(dloss)
        .arg(dq.buf_mut())
        .arg(&bi)
        .arg(&d)
        .arg(&t);
    launch!(l, grid_blocks(b), "patchnce_bwd")?;
    Ok(dq)
}
