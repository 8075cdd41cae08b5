use super::{channel_sums, check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// x ← leaky_relu(x + b, 0.2)·√2 in place, as `ops::fused_lrelu::fused_lrelu_forward`.
pub fn forward(gpu: &Gpu, x: &mut GpuTensor, bias: &CudaSlice<f32>) -> Result<(), CudaError> {
    let [_, ch, h, w] = x.shape;
    check(bias.len() >= ch, || "fused_lrelu: bias length".into())?;
    let f = gpu.function("fused_lrelu.cu", "flrelu_fwd")?;
    let (n, ch, plane) = (x.len() as i64, i32_arg("channels", ch)?, (h * w) as i64);
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(x.buf_mut()).arg(bias).arg(&n).arg(&ch).arg(&plane);
    launch!(b, grid_1d(n as usize), "flrelu_fwd")
}

fn slope(gpu: &Gpu, y: &GpuTensor, g: &mut GpuTensor) -> Result<(), CudaError> {
    check(y.shape == g.shape, || "fused_lrelu: shapes".into())?;
    let f = gpu.function("fused_lrelu.cu", "flrelu_slope")?;
    let n = y.len() as i64;
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(y.buf()).arg(g.buf_mut()).arg(&n);
    launch!(b, grid_1d(n as usize), "flrelu_slope")
}

/// dx and db (per-channel sums of dx) from y and dy, as `ops::fused_lrelu::fused_lrelu_backward`.
/// One pass over y and dy (the slope and the sums' first pass together).
pub fn backward(
    gpu: &Gpu,
    y: &GpuTensor,
    dy: &GpuTensor,
) -> Result<(GpuTensor, CudaSlice<f32>), CudaError> {
    check(y.shape == dy.shape, || "fused_lrelu: shapes".into())?;
    let f = gpu.function("fused_lrelu.cu", "flrelu_backward_partial")?;
    let [n, ch, h, w] = dy.shape;
    let (chi, plane, total) = (i32_arg("channels", ch)?, (h * w) as i64, (n * h * w) as i64);
    let mut dx = GpuTensor::output(gpu, dy.shape)?;
    let db = channel_sums(gpu, dy.shape, |part, grid, span| {
        let mut b = gpu.stream().launch_builder(&f);
        b.arg(y.buf())
            .arg(dy.buf())
            .arg(dx.buf_mut())
            .arg(part)
            .arg(&chi)
            .arg(&plane)
            .arg(&total)
            .arg(&span);
        launch!(b, grid, "flrelu_backward_partial")
    })?;
    Ok((dx, db))
}

/// t ← t·slope(y) in place (R1's tangent), as `ops::fused_lrelu::fused_lrelu_tangent`.
pub fn tangent(gpu: &Gpu, y: &GpuTensor, t: &mut GpuTensor) -> Result<(), CudaError> {
    slope(gpu, y, t)
}
