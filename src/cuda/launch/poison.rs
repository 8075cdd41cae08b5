use super::launch;
use crate::cuda::{CudaError, Gpu, grid_1d};
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Fills `buf` with quiet NaN (tests: unwritten outputs show up).
pub fn fill(gpu: &Gpu, buf: &mut CudaSlice<f32>) -> Result<(), CudaError> {
    let f = gpu.function("poison.cu", "poison_fill")?;
    let n = buf.len() as i64;
    let mut b = gpu.stream().launch_builder(&f);
    b.arg(buf).arg(&n);
    launch!(b, grid_1d(n as usize), "poison_fill")
}
