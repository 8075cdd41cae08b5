use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_blocks, i32_arg};
use cudarc::driver::PushKernelArg;

/// Rows of x: (B, D) stored as (B, D, 1, 1) (or any (B, ...) with D = the rest).
fn rows_dim(x: &GpuTensor) -> Result<(usize, i32), CudaError> {
    let [b, c, h, w] = x.shape;
    Ok((b, i32_arg("row length", c * h * w)?))
}

/// y = x/(‖x‖ + 1e-7) per row, as `ops::l2norm::l2norm_forward`.
pub fn forward(gpu: &Gpu, x: &GpuTensor) -> Result<GpuTensor, CudaError> {
    let (rows, dim) = rows_dim(x)?;
    let mut y = GpuTensor::output(gpu, x.shape)?;
    let f = gpu.function("l2norm.cu", "l2norm_fwd")?;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(x.buf()).arg(y.buf_mut()).arg(&dim);
    launch!(l, grid_blocks(rows), "l2norm_fwd")?;
    Ok(y)
}

/// dL/dx from dL/dy, as `ops::l2norm::l2norm_backward`.
pub fn backward(gpu: &Gpu, x: &GpuTensor, dy: &GpuTensor) -> Result<GpuTensor, CudaError> {
    check(x.shape == dy.shape, || "l2norm backward: shapes".into())?;
    let (rows, dim) = rows_dim(x)?;
    let mut dx = GpuTensor::output(gpu, x.shape)?;
    let f = gpu.function("l2norm.cu", "l2norm_bwd")?;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(x.buf()).arg(dy.buf()).arg(dx.buf_mut()).arg(&dim);
    launch!(l, grid_blocks(rows), "l2norm_bwd")?;
    Ok(dx)
}
