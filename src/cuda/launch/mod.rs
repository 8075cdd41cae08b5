//! Launchers, one per kernel file: device buffers and shapes in, the same semantics as the CPU
//! op of the same name in `crate::ops` (checked by tests/parity.rs).

pub mod adam;
pub mod add;
pub mod bias;
pub mod blur;
pub mod conv2d;
pub mod demod;
pub mod fused_lrelu;
pub mod gan_loss;
pub mod gather;
pub mod l1;
pub mod l2norm;
pub mod noise;
pub mod patchnce;
pub mod permute;
pub mod poison;
pub mod relu;
pub mod residual;
pub mod scale;
pub mod sumsq;
pub mod windows;

use super::CudaError;

/// Launches a prepared builder, mapping the error.
macro_rules! launch {
    ($b:expr, $cfg:expr, $what:expr) => {
        // SAFETY: argument lists match the kernel signatures in kernels/*.cu, and every
        // buffer is at least as long as the shapes passed alongside it (checked by callers).
        unsafe { $b.launch($cfg) }
            .map(|_| ())
            .map_err(|e| $crate::cuda::CudaError::driver($what, e))
    };
}
pub(crate) use launch;

pub(crate) fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), CudaError> {
    if cond {
        Ok(())
    } else {
        Err(CudaError::Shape(msg()))
    }
}

/// Elements of one channel (over images and pixels) that one block of a per-channel sum's
/// first pass adds (8 per thread).
const CHANNEL_SPAN: usize = 2048;

/// Per-channel sums (length C) of an NCHW tensor of `shape`, in two passes. `first` launches
/// the first pass (a kernel that calls `sincut_channel_partials`, kernels/common.cuh) with the
/// partials buffer, the grid, and the span it takes; `channel_sums_finish` (bias.cu) adds each
/// channel's partials in order.
pub(crate) fn channel_sums(
    gpu: &super::Gpu,
    shape: [usize; 4],
    first: impl FnOnce(
        &mut cudarc::driver::CudaSlice<f64>,
        cudarc::driver::LaunchConfig,
        i32,
    ) -> Result<(), CudaError>,
) -> Result<cudarc::driver::CudaSlice<f32>, CudaError> {
    let [n, ch, h, w] = shape;
    let plane = h * w;
    check(n > 0 && ch > 0 && plane > 0, || {
        format!("channel sums: empty tensor {shape:?}")
    })?;
    check(ch <= 65535, || {
        format!("channel sums: {ch} channels exceed the grid's y limit")
    })?;
    let np = (n * plane).div_ceil(CHANNEL_SPAN);
    let npi = super::i32_arg("channel-sum partials", np)?;
    let grid = cudarc::driver::LaunchConfig {
        grid_dim: (npi as u32, ch as u32, 1),
        block_dim: (super::BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    channel_sums_of_partials(gpu, ch, np, |part| first(part, grid, CHANNEL_SPAN as i32))
}

/// Per-channel sums (length C) from `np` partials per channel: `first` writes every one of
/// them, channel c's at part[c·np..(c + 1)·np]; `channel_sums_finish` (bias.cu) adds each
/// channel's in order.
pub(crate) fn channel_sums_of_partials(
    gpu: &super::Gpu,
    ch: usize,
    np: usize,
    first: impl FnOnce(&mut cudarc::driver::CudaSlice<f64>) -> Result<(), CudaError>,
) -> Result<cudarc::driver::CudaSlice<f32>, CudaError> {
    use cudarc::driver::PushKernelArg;
    let npi = super::i32_arg("channel-sum partials", np)?;
    // Not zero-filled: the first pass writes every partial.
    // SAFETY: read only by channel_sums_finish, after the first pass has written all of it.
    let mut part = unsafe { gpu.stream().alloc::<f64>(np * ch) }
        .map_err(|e| CudaError::driver("allocating", e))?;
    first(&mut part)?;
    let mut out = gpu.alloc_out(ch)?;
    let f = gpu.function("bias.cu", "channel_sums_finish")?;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(&part).arg(&npi).arg(&mut out);
    launch!(l, super::grid_blocks(ch), "channel_sums_finish")?;
    Ok(out)
}

/// Number of partial sums of a two-pass scalar reduction over `n` elements.
pub(crate) fn partials(n: usize) -> usize {
    n.div_ceil(super::BLOCK as usize).clamp(1, 1024)
}
