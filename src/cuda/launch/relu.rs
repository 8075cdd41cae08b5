use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d};
use cudarc::driver::PushKernelArg;

/// x ← max(x, 0) in place (NaN propagates), as `ops::relu::relu_forward`.
pub fn forward(gpu: &Gpu, x: &mut GpuTensor) -> Result<(), CudaError> {
    let f = gpu.function("relu.cu", "relu_fwd")?;
    let n = x.len() as i64;
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(x.buf_mut()).arg(&n);
    launch!(b, grid_1d(n as usize), "relu_fwd")
}

/// dy ← 0 where y ≤ 0, in place, as `ops::relu::relu_backward`.
pub fn backward(gpu: &Gpu, y: &GpuTensor, dy: &mut GpuTensor) -> Result<(), CudaError> {
    check(y.shape == dy.shape, || "relu backward: shapes".into())?;
    let f = gpu.function("relu.cu", "relu_bwd")?;
    let n = y.len() as i64;
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(y.buf()).arg(dy.buf_mut()).arg(&n);
    launch!(b, grid_1d(n as usize), "relu_bwd")
}
