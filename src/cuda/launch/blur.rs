use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use crate::ops::blur::Blur;
use cudarc::driver::PushKernelArg;

/// Outputs of a row per thread: BLUR_RUN in kernels/blur.cu.
const BLUR_RUN: usize = 4;

/// The per-axis taps [1,3,3,1]/8·√gain rounded to f32 as the CPU does.
fn taps(b: &Blur) -> [f32; 4] {
    let g = b.gain.sqrt() / 8.0;
    [g as f32, (3.0 * g) as f32, (3.0 * g) as f32, g as f32]
}

fn apply(
    gpu: &Gpu,
    b: &Blur,
    src: &GpuTensor,
    (ho, wo): (usize, usize),
    off: isize,
) -> Result<GpuTensor, CudaError> {
    let [n, c, h, w] = src.shape;
    let mut out = GpuTensor::output(gpu, [n, c, ho, wo])?;
    let f = gpu.function("blur.cu", "blur_apply")?;
    let planes = i32_arg("planes", n * c)?;
    let (hi, wi, hoi, woi) = (
        i32_arg("H", h)?,
        i32_arg("W", w)?,
        i32_arg("Ho", ho)?,
        i32_arg("Wo", wo)?,
    );
    let off = off as i32;
    let k = taps(b);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(src.buf())
        .arg(out.buf_mut())
        .arg(&planes)
        .arg(&hi)
        .arg(&wi)
        .arg(&hoi)
        .arg(&woi)
        .arg(&off)
        .arg(&k[0])
        .arg(&k[1])
        .arg(&k[2])
        .arg(&k[3]);
    launch!(l, grid_1d(n * c * ho * wo.div_ceil(BLUR_RUN)), "blur_apply")?;
    Ok(out)
}

/// The blur of `ops::blur::Blur::forward`.
pub fn forward(gpu: &Gpu, b: &Blur, x: &GpuTensor) -> Result<GpuTensor, CudaError> {
    let (h, w) = x.hw();
    check(h + b.pad0 + b.pad1 >= 3 && w + b.pad0 + b.pad1 >= 3, || {
        "blur: input too small".into()
    })?;
    apply(gpu, b, x, (b.out_len(h), b.out_len(w)), -(b.pad0 as isize))
}

/// The adjoint, as `ops::blur::Blur::backward`; `in_hw` is x's (H, W).
pub fn backward(
    gpu: &Gpu,
    b: &Blur,
    dy: &GpuTensor,
    in_hw: (usize, usize),
) -> Result<GpuTensor, CudaError> {
    check((b.out_len(in_hw.0), b.out_len(in_hw.1)) == dy.hw(), || {
        format!(
            "blur backward: dy {:?} does not fit input {in_hw:?}",
            dy.shape
        )
    })?;
    apply(gpu, b, dy, in_hw, b.pad0 as isize - 3)
}
