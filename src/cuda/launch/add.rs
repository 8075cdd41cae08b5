use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d};
use cudarc::driver::PushKernelArg;

/// dst's flat elements from `offset` += src, as `ops::add::add_into`.
pub fn add_into(
    gpu: &Gpu,
    dst: &mut GpuTensor,
    offset: usize,
    src: &GpuTensor,
) -> Result<(), CudaError> {
    let n = src.len();
    check(offset + n <= dst.len(), || {
        format!(
            "add_into: {:?} at {offset} does not fit {:?}",
            src.shape, dst.shape
        )
    })?;
    if n == 0 {
        return Ok(());
    }
    let f = gpu.function("add.cu", "add_into")?;
    let ni = n as i64;
    let mut view = dst.buf_mut().slice_mut(offset..offset + n);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(&mut view).arg(src.buf()).arg(&ni);
    launch!(l, grid_1d(n), "add_into")
}
