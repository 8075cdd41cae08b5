use super::{channel_sums, check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// x[:, c] += b[c] in place, as `ops::bias::add_bias`.
pub fn add(gpu: &Gpu, x: &mut GpuTensor, bias: &CudaSlice<f32>) -> Result<(), CudaError> {
    let [_, ch, h, w] = x.shape;
    check(bias.len() >= ch, || "add_bias: bias length".into())?;
    let f = gpu.function("bias.cu", "bias_add")?;
    let (n, ch, plane) = (x.len() as i64, i32_arg("channels", ch)?, (h * w) as i64);
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(x.buf_mut()).arg(bias).arg(&n).arg(&ch).arg(&plane);
    launch!(b, grid_1d(n as usize), "bias_add")
}

/// Per-channel sums of dy (length C), as `ops::bias::bias_grad`.
pub fn grad(gpu: &Gpu, dy: &GpuTensor) -> Result<CudaSlice<f32>, CudaError> {
    let f = gpu.function("bias.cu", "bias_grad_partial")?;
    let [n, ch, h, w] = dy.shape;
    let (chi, plane, total) = (i32_arg("channels", ch)?, (h * w) as i64, (n * h * w) as i64);
    channel_sums(gpu, dy.shape, |part, grid, span| {
        let mut b = gpu.stream().launch_builder(&f);
        b.arg(dy.buf())
            .arg(part)
            .arg(&chi)
            .arg(&plane)
            .arg(&total)
            .arg(&span);
        launch!(b, grid, "bias_grad_partial")
    })
}
