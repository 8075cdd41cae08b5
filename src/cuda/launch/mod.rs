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

/// Number of partial sums of a two-pass scalar reduction over `n` elements.
pub(crate) fn partials(n: usize) -> usize {
    n.div_ceil(super::BLOCK as usize).clamp(1, 1024)
}
