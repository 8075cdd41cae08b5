//! CPU operations, one unit each: forward, backward (and the tangent pass where R1 needs it),
//! with finite-difference tests beside the code. Activations are NCHW `Array4`; linear layers
//! are 1×1 convolutions on (N, C, 1, 1).

pub mod adam;
pub mod add;
pub mod bias;
pub mod blur;
pub mod conv2d;
pub mod demod;
pub mod flops;
pub mod fused_lrelu;
pub mod gan_loss;
pub mod gather;
pub mod gemm;
pub mod l1;
pub mod l2norm;
pub mod noise;
pub mod patchnce;
pub mod permute;
pub mod relu;
pub mod residual;
pub mod scale;
#[cfg(target_arch = "x86_64")]
pub mod sgemm_avx512;
pub mod sumsq;
pub mod windows;

#[cfg(test)]
pub mod gradcheck;
