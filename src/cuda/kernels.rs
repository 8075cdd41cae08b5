//! The kernel sources, embedded at build time. Each file is compiled as one NVRTC program with
//! `common.cuh` prepended (shared reductions and constants) and the headers it names with
//! `#include "…"` inlined, so no project include path is needed.

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
    (
        "conv2d_nhwc_bf16.cu",
        include_str!("../../kernels/conv2d_nhwc_bf16.cu"),
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

/// Headers a kernel file may `#include "name"` (inlined by `program`).
pub const HEADERS: &[(&str, &str)] = &[(
    "conv_gather.cuh",
    include_str!("../../kernels/conv_gather.cuh"),
)];

/// The full program text NVRTC compiles for `file`: the common header, then the file with each
/// `#include "header"` of `HEADERS` replaced by the header's text (`#line` keeps compiler
/// messages pointing at the right file and line). An include of anything else is left as it is.
pub fn program(file: &str) -> Option<String> {
    let (name, src) = FILES.iter().find(|(f, _)| *f == file)?;
    let mut text = format!("{COMMON}\n#line 1 \"{name}\"\n");
    for (i, line) in src.lines().enumerate() {
        let header = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|h| HEADERS.iter().find(|(n, _)| *n == h));
        match header {
            Some((h, body)) => {
                text.push_str(&format!(
                    "#line 1 \"{h}\"\n{body}\n#line {} \"{name}\"\n",
                    i + 2
                ));
            }
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_inlined_once_where_included() {
        let text = program("conv2d.cu").unwrap();
        assert_eq!(text.matches("struct ConvFwdPlan {").count(), 1);
        assert!(!text.contains("#include \"conv_gather.cuh\""));
        // Every header is used by some file, and no file includes a header that is not listed.
        for (h, _) in HEADERS {
            let line = format!("#include \"{h}\"");
            assert!(
                FILES.iter().any(|(_, src)| src.contains(&line)),
                "{h} unused"
            );
        }
        for (f, src) in FILES {
            for line in src
                .lines()
                .filter(|l| l.trim_start().starts_with("#include"))
            {
                assert!(
                    HEADERS.iter().any(|(h, _)| line.contains(h)),
                    "{f}: {line} names no embedded header"
                );
            }
        }
        assert!(program("no-such.cu").is_none());
    }
}
