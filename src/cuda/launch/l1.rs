use super::{check, launch, partials};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, grid_blocks};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// mean |a − b| as a one-element buffer, as `ops::l1::l1_mean_forward`.
pub fn forward(gpu: &Gpu, a: &GpuTensor, b: &GpuTensor) -> Result<CudaSlice<f32>, CudaError> {
    check(a.shape == b.shape && !a.is_empty(), || "l1: shapes".into())?;
    let n = a.len();
    let np = partials(n);
    let mut part = gpu
        .stream()
        .alloc_zeros::<f64>(np)
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function("l1.cu", "l1_partial")?;
    let ni = n as i64;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(a.buf()).arg(b.buf()).arg(&ni).arg(&mut part);
    launch!(l, grid_blocks(np), "l1_partial")?;
    let mut out = gpu.alloc_out(1)?;
    let f = gpu.function("l1.cu", "l1_finish")?;
    let (npi, count) = (np as i32, n as f64);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(&part).arg(&npi).arg(&mut out).arg(&count);
    launch!(l, grid_blocks(1), "l1_finish")?;
    Ok(out)
}

/// d mean|a − b| / da, as `ops::l1::l1_mean_backward`.
pub fn backward(gpu: &Gpu, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, CudaError> {
    check(a.shape == b.shape && !a.is_empty(), || "l1: shapes".into())?;
    let mut da = GpuTensor::output(gpu, a.shape)?;
    let f = gpu.function("l1.cu", "l1_bwd")?;
    let n = a.len() as i64;
    // 1/n rounded as the CPU: f32 one over f32(n).
    let g = 1.0f32 / (a.len() as f32);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(a.buf())
        .arg(b.buf())
        .arg(da.buf_mut())
        .arg(&n)
        .arg(&g);
    launch!(l, grid_1d(n as usize), "l1_bwd")?;
    Ok(da)
}
