use super::launch;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use cudarc::driver::PushKernelArg;

/// (A, B, H, W) → (B, A, H, W), as `ops::permute::swap01`.
pub fn swap01(gpu: &Gpu, x: &GpuTensor) -> Result<GpuTensor, CudaError> {
    let [a, b, h, w] = x.shape;
    let mut y = GpuTensor::output(gpu, [b, a, h, w])?;
    let f = gpu.function("permute.cu", "swap01")?;
    let (ai, bi, plane) = (i32_arg("A", a)?, i32_arg("B", b)?, (h * w) as i64);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(x.buf())
        .arg(y.buf_mut())
        .arg(&ai)
        .arg(&bi)
        .arg(&plane);
    launch!(l, grid_1d(x.len()), "swap01")?;
    Ok(y)
}
