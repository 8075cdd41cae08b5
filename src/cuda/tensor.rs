//! Device tensors: an f32 buffer with an NCHW shape (vectors and scalars are plain buffers;
//! (B, D) matrices are (B, D, 1, 1) as the CPU engine's linear layers).

use super::{CudaError, Gpu};
use cudarc::driver::CudaSlice;
use ndarray::Array4;

pub struct GpuTensor {
    pub buf: CudaSlice<f32>,
    pub shape: [usize; 4],
}

impl GpuTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (H, W).
    pub fn hw(&self) -> (usize, usize) {
        (self.shape[2], self.shape[3])
    }

    pub fn upload(gpu: &Gpu, a: &Array4<f32>) -> Result<GpuTensor, CudaError> {
        let a = a.as_standard_layout();
        let d = a.dim();
        Ok(GpuTensor {
            buf: gpu.upload(a.as_slice().expect("standard layout"))?,
            shape: [d.0, d.1, d.2, d.3],
        })
    }

    pub fn download(&self, gpu: &Gpu) -> Result<Array4<f32>, CudaError> {
        let mut v = gpu.download(&self.buf)?;
        v.truncate(self.len());
        let [n, c, h, w] = self.shape;
        Ok(Array4::from_shape_vec((n, c, h, w), v).expect("buffer matches shape"))
    }

    /// An output tensor for a kernel to fill (poisoned when the Gpu poisons).
    pub fn output(gpu: &Gpu, shape: [usize; 4]) -> Result<GpuTensor, CudaError> {
        Ok(GpuTensor {
            buf: gpu.alloc_out(shape.iter().product())?,
            shape,
        })
    }

    pub fn zeros(gpu: &Gpu, shape: [usize; 4]) -> Result<GpuTensor, CudaError> {
        Ok(GpuTensor {
            buf: gpu.zeros(shape.iter().product())?,
            shape,
        })
    }
}
