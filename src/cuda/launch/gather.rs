use super::launch;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use crate::ops::gather;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// The positions as a device buffer of i32 (each below H·W, checked by the caller).
fn upload_ids(gpu: &Gpu, ids: &[usize]) -> Result<CudaSlice<i32>, CudaError> {
    let v = ids
        .iter()
        .map(|&p| i32_arg("position", p))
        .collect::<Result<Vec<i32>, _>>()?;
    gpu.stream()
        .clone_htod(&v)
        .map_err(|e| CudaError::driver("upload", e))
}

/// (len(ids)·b, C, 1, 1): rows r0..r0+b of `f` at each position of `ids`, position-major, as
/// `ops::gather::gather_positions`; one launch for all positions.
pub fn gather_positions(
    gpu: &Gpu,
    f: &GpuTensor,
    r0: usize,
    b: usize,
    ids: &[usize],
) -> Result<GpuTensor, CudaError> {
    gather::check_positions(f.shape, r0, b, ids).map_err(CudaError::Shape)?;
    let [_, ch, h, w] = f.shape;
    let plane = h * w;
    let mut rows = GpuTensor::output(gpu, [ids.len() * b, ch, 1, 1])?;
    let dev_ids = upload_ids(gpu, ids)?;
    let func = gpu.function("gather.cu", "gather_positions")?;
    let view = f.buf().slice(r0 * ch * plane..(r0 + b) * ch * plane);
    let (np, bi, chi, pl) = (
        i32_arg("positions", ids.len())?,
        i32_arg("rows", b)?,
        i32_arg("channels", ch)?,
        plane as i64,
    );
    let mut l = gpu.stream().launch_builder(&func);
    l.arg(&view).arg(&dev_ids).arg(rows.buf_mut());
    l.arg(&np).arg(&bi).arg(&chi).arg(&pl);
    launch!(l, grid_1d(ids.len() * b * ch), "gather_positions")?;
    Ok(rows)
}

/// d[r0 + j, :, ids[i]] += rows[i·b + j], as `ops::gather::scatter_add_positions`; one launch.
pub fn scatter_add_positions(
    gpu: &Gpu,
    d: &mut GpuTensor,
    r0: usize,
    ids: &[usize],
    rows: &GpuTensor,
) -> Result<(), CudaError> {
    gather::check_scatter(d.shape, rows.shape, r0, ids).map_err(CudaError::Shape)?;
    let b = rows.shape[0] / ids.len();
    let [_, ch, h, w] = d.shape;
    let plane = h * w;
    let dev_ids = upload_ids(gpu, ids)?;
    let func = gpu.function("gather.cu", "scatter_add_positions")?;
    let mut view = d
        .buf_mut()
        .slice_mut(r0 * ch * plane..(r0 + b) * ch * plane);
    let (np, bi, chi, pl) = (
        i32_arg("positions", ids.len())?,
        i32_arg("rows", b)?,
        i32_arg("channels", ch)?,
        plane as i64,
    );
    let mut l = gpu.stream().launch_builder(&func);
    l.arg(&mut view).arg(&dev_ids).arg(rows.buf());
    l.arg(&np).arg(&bi).arg(&chi).arg(&pl);
    launch!(l, grid_1d(b * ch), "scatter_add_positions")
}
