use super::{check, launch, partials};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, grid_blocks, i32_arg};
use cudarc::driver::{CudaSlice, PushKernelArg};

fn check_noise(x: &GpuTensor, n: &GpuTensor) -> Result<(), CudaError> {
    let [b, _, h, w] = x.shape;
    check(n.shape == [b, 1, h, w], || {
        format!("noise: noise {:?} vs x {:?}", n.shape, x.shape)
    })
}

/// x ← x + w·n in place, n (N,1,H,W) broadcast over channels, `w` a one-element device buffer;
/// as `ops::noise::noise_forward`.
pub fn forward(
    gpu: &Gpu,
    x: &mut GpuTensor,
    w: &CudaSlice<f32>,
    n: &GpuTensor,
) -> Result<(), CudaError> {
    check_noise(x, n)?;
    let [_, ch, h, wd] = x.shape;
    let f = gpu.function("noise.cu", "noise_fwd")?;
    let (total, ch, plane) = (x.len() as i64, i32_arg("channels", ch)?, (h * wd) as i64);
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(x.buf_mut())
        .arg(w)
        .arg(n.buf())
        .arg(&total)
        .arg(&ch)
        .arg(&plane);
    launch!(b, grid_1d(total as usize), "noise_fwd")
}

/// dL/dw = Σ dy·n as a one-element buffer, as `ops::noise::noise_backward_weight`.
pub fn backward_weight(
    gpu: &Gpu,
    dy: &GpuTensor,
    n: &GpuTensor,
) -> Result<CudaSlice<f32>, CudaError> {
    check_noise(dy, n)?;
    let [_, ch, h, wd] = dy.shape;
    let total = dy.len();
    let np = partials(total);
    let mut part = gpu
        .stream()
        .alloc_zeros::<f64>(np)
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function("noise.cu", "noise_wgrad_partial")?;
    let (t, chi, plane) = (total as i64, i32_arg("channels", ch)?, (h * wd) as i64);
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(dy.buf())
        .arg(n.buf())
        .arg(&t)
        .arg(&chi)
        .arg(&plane)
        .arg(&mut part);
    launch!(b, grid_blocks(np), "noise_wgrad_partial")?;
    let mut out = gpu.alloc_out(1)?;
    let f = gpu.function("noise.cu", "noise_wgrad_finish")?;
    let npi = np as i32;
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(&part).arg(&npi).arg(&mut out);
    launch!(b, grid_blocks(1), "noise_wgrad_finish")?;
    Ok(out)
}
