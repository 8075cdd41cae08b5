use super::launch;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use crate::ops::gather;
use cudarc::driver::PushKernelArg;

/// Checks rows r0..r0+b and position `pos` lie in `f`; returns (C, H·W, first element).
fn place(
    f: &GpuTensor,
    r0: usize,
    b: usize,
    pos: usize,
) -> Result<(usize, usize, usize), CudaError> {
    let [_, ch, h, w] = f.shape;
    gather::check_position(f.shape, r0, b, pos).map_err(CudaError::Shape)?;
    Ok((ch, h * w, r0 * ch * h * w + pos))
}

/// (b, C, 1, 1): rows r0..r0+b of `f` at flat position `pos`, as
/// `ops::gather::gather_position`.
pub fn gather_position(
    gpu: &Gpu,
    f: &GpuTensor,
    r0: usize,
    b: usize,
    pos: usize,
) -> Result<GpuTensor, CudaError> {
    let (ch, plane, first) = place(f, r0, b, pos)?;
    let mut rows = GpuTensor::output(gpu, [b, ch, 1, 1])?;
    let func = gpu.function("gather.cu", "gather_position")?;
    // The last element read is first + (b·C − 1)·plane.
    let view = f.buf.slice(first..first + (b * ch - 1) * plane + 1);
    let (bi, chi, pl) = (i32_arg("rows", b)?, i32_arg("channels", ch)?, plane as i64);
    let mut l = gpu.stream().launch_builder(&func);
    l.arg(&view).arg(&mut rows.buf).arg(&bi).arg(&chi).arg(&pl);
    launch!(l, grid_1d(b * ch), "gather_position")?;
    Ok(rows)
}

/// d[r0.., :, pos] += rows, as `ops::gather::scatter_add_position`.
pub fn scatter_add_position(
    gpu: &Gpu,
    d: &mut GpuTensor,
    r0: usize,
    pos: usize,
    rows: &GpuTensor,
) -> Result<(), CudaError> {
    let b = rows.shape[0];
    let (ch, plane, first) = place(d, r0, b, pos)?;
    gather::check_scatter(d.shape, rows.shape, r0, pos).map_err(CudaError::Shape)?;
    let func = gpu.function("gather.cu", "scatter_add_position")?;
    let mut view = d.buf.slice_mut(first..first + (b * ch - 1) * plane + 1);
    let (bi, chi, pl) = (i32_arg("rows", b)?, i32_arg("channels", ch)?, plane as i64);
    let mut l = gpu.stream().launch_builder(&func);
    l.arg(&mut view).arg(&rows.buf).arg(&bi).arg(&chi).arg(&pl);
    launch!(l, grid_1d(b * ch), "scatter_add_position")
}
