use super::{check, launch, partials};
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_blocks};
use cudarc::driver::PushKernelArg;

/// Σx² as a one-element tensor (double accumulation, rounded once), as
/// `ops::sumsq::sum_squares` rounded to f32.
pub fn sum_squares(gpu: &Gpu, x: &GpuTensor) -> Result<GpuTensor, CudaError> {
    check(!x.is_empty(), || "sum_squares: empty tensor".into())?;
    let n = x.len();
    let np = partials(n);
    let mut part = gpu
        .stream()
        .alloc_zeros::<f64>(np)
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function("sumsq.cu", "sumsq_partial")?;
    let ni = n as i64;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(x.buf()).arg(&ni).arg(&mut part);
    launch!(l, grid_blocks(np), "sumsq_partial")?;
    let mut out = GpuTensor::output(gpu, [1, 1, 1, 1])?;
    let f = gpu.function("sumsq.cu", "sumsq_finish")?;
    let npi = np as i32;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(&part).arg(&npi).arg(out.buf_mut());
    launch!(l, grid_blocks(1), "sumsq_finish")?;
    Ok(out)
}
