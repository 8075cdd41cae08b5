use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d};
use cudarc::driver::PushKernelArg;

/// (a + b)/√2 into a new tensor, as `ops::residual::residual_forward`.
pub fn forward(gpu: &Gpu, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, CudaError> {
    check(a.shape == b.shape, || "residual: shapes".into())?;
    let mut out = GpuTensor::output(gpu, a.shape)?;
    let f = gpu.function("residual.cu", "residual_fwd")?;
    let n = a.len() as i64;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(out.buf_mut()).arg(a.buf()).arg(b.buf()).arg(&n);
    launch!(l, grid_1d(n as usize), "residual_fwd")?;
    Ok(out)
}

/// dy ← dy/√2 in place (both branches receive it), as `ops::residual::residual_backward`.
pub fn backward(gpu: &Gpu, dy: &mut GpuTensor) -> Result<(), CudaError> {
    let f = gpu.function("residual.cu", "residual_bwd")?;
    let n = dy.len() as i64;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(dy.buf_mut()).arg(&n);
    launch!(l, grid_1d(n as usize), "residual_bwd")
}
