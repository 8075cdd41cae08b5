use super::launch;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use crate::ops::windows;
use cudarc::driver::PushKernelArg;

/// The launch shared by both directions: the windows tensor has `n` elements of `ch` channels
/// in s×s windows, ty×tx per crop.
fn run(
    gpu: &Gpu,
    func: &'static str,
    src: &GpuTensor,
    out_shape: [usize; 4],
    (ch, s, ty, tx): (usize, usize, usize, usize),
) -> Result<GpuTensor, CudaError> {
    let mut out = GpuTensor::output(gpu, out_shape)?;
    let f = gpu.function("windows.cu", func)?;
    let n = src.len() as i64;
    let (chi, si, tyi, txi) = (
        i32_arg("channels", ch)?,
        i32_arg("window", s)?,
        i32_arg("windows per column", ty)?,
        i32_arg("windows per row", tx)?,
    );
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(src.buf())
        .arg(out.buf_mut())
        .arg(&n)
        .arg(&chi)
        .arg(&si)
        .arg(&tyi)
        .arg(&txi);
    launch!(l, grid_1d(src.len()), func)?;
    Ok(out)
}

/// Crops (N,C,H,W) → windows (N·(H/S)·(W/S), C, S, S), as `ops::windows::to_windows`.
pub fn to_windows(gpu: &Gpu, x: &GpuTensor, s: usize) -> Result<GpuTensor, CudaError> {
    let [n, ch, h, w] = x.shape;
    windows::check_to_windows(x.shape, s).map_err(CudaError::Shape)?;
    let (ty, tx) = (h / s, w / s);
    // The windows tensor is the kernel's output here: index its elements.
    run(
        gpu,
        "crops_to_windows",
        x,
        [n * ty * tx, ch, s, s],
        (ch, s, ty, tx),
    )
}

/// The inverse, as `ops::windows::from_windows`.
pub fn from_windows(
    gpu: &Gpu,
    win: &GpuTensor,
    n: usize,
    h: usize,
    w: usize,
) -> Result<GpuTensor, CudaError> {
    windows::check_from_windows(win.shape, n, h, w).map_err(CudaError::Shape)?;
    let [_, ch, s, _] = win.shape;
    run(
        gpu,
        "windows_to_crops",
        win,
        [n, ch, h, w],
        (ch, s, h / s, w / s),
    )
}
