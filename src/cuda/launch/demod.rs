use super::{check, launch};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_blocks, i32_arg};
use cudarc::driver::PushKernelArg;

/// s = 1/√(Cin·k²) in f32, as the CPU computes it.
fn scale(w: &GpuTensor) -> f32 {
    let [_, cin, k, k2] = w.shape;
    1.0f32 / ((cin * k * k2) as f32).sqrt()
}

/// w' = demodulated w (Cout, Cin, k, k), as `ops::demod::demod_forward`.
pub fn forward(gpu: &Gpu, w: &GpuTensor) -> Result<GpuTensor, CudaError> {
    let mut out = GpuTensor::output(gpu, w.shape)?;
    let f = gpu.function("demod.cu", "demod_fwd")?;
    let len = i32_arg("Cin*k*k", w.shape[1] * w.shape[2] * w.shape[3])?;
    let s = scale(w);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(w.buf()).arg(out.buf_mut()).arg(&len).arg(&s);
    launch!(l, grid_blocks(w.shape[0]), "demod_fwd")?;
    Ok(out)
}

/// dL/dw from dL/dw', as `ops::demod::demod_backward`.
pub fn backward(gpu: &Gpu, w: &GpuTensor, dw_eff: &GpuTensor) -> Result<GpuTensor, CudaError> {
    check(w.shape == dw_eff.shape, || "demod backward: shapes".into())?;
    let mut out = GpuTensor::output(gpu, w.shape)?;
    let f = gpu.function("demod.cu", "demod_bwd")?;
    let len = i32_arg("Cin*k*k", w.shape[1] * w.shape[2] * w.shape[3])?;
    let s = scale(w);
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(w.buf())
        .arg(dw_eff.buf())
        .arg(out.buf_mut())
        .arg(&len)
        .arg(&s);
    launch!(l, grid_blocks(w.shape[0]), "demod_bwd")?;
    Ok(out)
}
