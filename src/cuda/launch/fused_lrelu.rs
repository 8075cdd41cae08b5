use super::conv2d::nhwc_applies;
use super::{channel_sums, channel_sums_of_partials, check, launch};
use crate::backend::cpu::MatmulPrecision;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

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
/// One pass over y and dy (the slope and the sums' first pass together). Where bf16 NHWC convs
/// will read dx (`prec` bf16, channels a multiple of 8), the same pass also writes dx's NHWC
/// bf16 copy, which dx keeps, so that no conversion reads dx again.
pub fn backward(
    gpu: &Gpu,
    y: &GpuTensor,
    dy: &GpuTensor,
    prec: MatmulPrecision,
) -> Result<(GpuTensor, CudaSlice<f32>), CudaError> {
    check(y.shape == dy.shape, || "fused_lrelu: shapes".into())?;
    let [n, ch, h, w] = dy.shape;
    let mut dx = GpuTensor::output(gpu, dy.shape)?;
    if nhwc_applies(prec, &[ch]) && dx.len() > 0 {
        let db = backward_with_nhwc(gpu, y, dy, &mut dx)?;
        return Ok((dx, db));
    }
    let f = gpu.function("fused_lrelu.cu", "flrelu_backward_partial")?;
    let (chi, plane, total) = (i32_arg("channels", ch)?, (h * w) as i64, (n * h * w) as i64);
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

/// Pixels of one image that a block of `flrelu_backward_nhwc_partial` takes.
const NHWC_PIXELS_PER_BLOCK: usize = 256;

/// `backward`'s pass that also writes dx's NHWC bf16 copy (kept by dx); returns db.
fn backward_with_nhwc(
    gpu: &Gpu,
    y: &GpuTensor,
    dy: &GpuTensor,
    dx: &mut GpuTensor,
) -> Result<CudaSlice<f32>, CudaError> {
    let [n, ch, h, w] = dy.shape;
    let tiles = (h * w).div_ceil(NHWC_PIXELS_PER_BLOCK);
    let blocks = n * tiles;
    check(ch.div_ceil(32) <= 65535, || {
        format!("fused_lrelu: {ch} channels exceed the grid's y limit")
    })?;
    let (chi, hw, tiles_i) = (
        i32_arg("channels", ch)?,
        i32_arg("H*W", h * w)?,
        i32_arg("pixel tiles", tiles)?,
    );
    let grid = LaunchConfig {
        grid_dim: (i32_arg("blocks", blocks)? as u32, ch.div_ceil(32) as u32, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the kernel writes every element of the copy before any pass reads it.
    let mut copy = unsafe { gpu.stream().alloc::<u16>(dx.len()) }
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function("fused_lrelu.cu", "flrelu_backward_nhwc_partial")?;
    let db = channel_sums_of_partials(gpu, ch, blocks, |part| {
        let mut b = gpu.stream().launch_builder(&f);
        b.arg(y.buf())
            .arg(dy.buf())
            .arg(dx.buf_mut())
            .arg(&mut copy)
            .arg(part)
            .arg(&chi)
            .arg(&hw)
            .arg(&tiles_i);
        launch!(b, grid, "flrelu_backward_nhwc_partial")
    })?;
    gpu.count_converted_in_passing(dx.len());
    dx.keep_nhwc_bf16(copy);
    Ok(db)
}

/// t ← t·slope(y) in place (R1's tangent), as `ops::fused_lrelu::fused_lrelu_tangent`.
pub fn tangent(gpu: &Gpu, y: &GpuTensor, t: &mut GpuTensor) -> Result<(), CudaError> {
    slope(gpu, y, t)
}
