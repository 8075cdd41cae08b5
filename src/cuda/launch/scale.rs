use super::launch;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d};
use cudarc::driver::PushKernelArg;

/// y = x·s, as `ops::scale::scale`.
pub fn scale(gpu: &Gpu, x: &GpuTensor, s: f32) -> Result<GpuTensor, CudaError> {
    let mut y = GpuTensor::output(gpu, x.shape)?;
    let f = gpu.function("scale.cu", "scale_copy")?;
    let n = x.len() as i64;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(x.buf()).arg(y.buf_mut()).arg(&n).arg(&s);
    launch!(l, grid_1d(x.len()), "scale_copy")?;
    Ok(y)
}
