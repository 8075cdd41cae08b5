//! The kernel sources, embedded at build time. Each file is compiled as one NVRTC program with
//! `common.cuh` prepended (shared reductions and constants), so no project include path is needed.

pub const COMMON: &str = include_str!("../../kernels/common.cuh");

/// (file name, source) of every kernel file.
pub const FILES: &[(&str, &str)] = &[
    ("adam.cu", include_str!("../../kernels/adam.cu")),
    ("add.cu", include_str!("../../kernels/add.cu")),
    ("bias.cu", include_str!("../../kernels/bias.cu")),
    ("blur.cu", include_str!("../../kernels/blur.cu")),
    ("conv2d.cu", include_str!("../../kernels/conv2d.cu")),
    (
        "conv2d_bf16.cu",
        include_str!("../../kernels/conv2d_bf16.cu"),
    ),
    ("demod.cu", include_str!("../../kernels/demod.cu")),
    (
        "fused_lrelu.cu",
        include_str!("../../kernels/fused_lrelu.cu"),
    ),
    ("gan_loss.cu", include_str!("../../kernels/gan_loss.cu")),
    ("gather.cu", include_str!("../../kernels/gather.cu")),
    ("l1.cu", include_str!("../../kernels/l1.cu")),
    ("l2norm.cu", include_str!("../../kernels/l2norm.cu")),
    ("noise.cu", include_str!("../../kernels/noise.cu")),
    ("patchnce.cu", include_str!("../../kernels/patchnce.cu")),
    ("permute.cu", include_str!("../../kernels/permute.cu")),
    ("poison.cu", include_str!("../../kernels/poison.cu")),
    ("relu.cu", include_str!("../../kernels/relu.cu")),
    ("residual.cu", include_str!("../../kernels/residual.cu")),
    ("scale.cu", include_str!("../../kernels/scale.cu")),
    ("sumsq.cu", include_str!("../../kernels/sumsq.cu")),
    ("windows.cu", include_str!("../../kernels/windows.cu")),
];

/// The full program text NVRTC compiles for `file` (common header + the file).
pub fn program(file: &str) -> Option<String> {
    FILES
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(f, src)| format!("{COMMON}\n#line 1 \"{f}\"\n{src}"))
}
