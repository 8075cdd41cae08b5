//! Device tensors: an f32 buffer with an NCHW shape (vectors and scalars are plain buffers;
//! (B, D) matrices are (B, D, 1, 1) as the CPU engine's linear layers).

use super::{CudaError, Gpu};
use cudarc::driver::CudaSlice;
use ndarray::Array4;
use std::cell::RefCell;
use std::sync::Arc;

pub struct GpuTensor {
    buf: CudaSlice<f32>,
    pub shape: [usize; 4],
    /// The tensor as (N, H, W, C) bf16, made by the first bf16 tensor-core conv that reads it
    /// and kept for the next: a layer's input is read by its forward and its weight gradient,
    /// a gradient by the input and the weight gradient. Dropped by any mutable access to the
    /// buffer; the shape it was made for is kept with it, so a reshape does not reuse it.
    nhwc_bf16: RefCell<Option<([usize; 4], Arc<CudaSlice<u16>>)>>,
}

impl GpuTensor {
    pub fn new(buf: CudaSlice<f32>, shape: [usize; 4]) -> GpuTensor {
        GpuTensor {
            buf,
            shape,
            nhwc_bf16: RefCell::new(None),
        }
    }

    pub fn buf(&self) -> &CudaSlice<f32> {
        &self.buf
    }

    /// The buffer, to be written: any bf16 copy made from the old contents is dropped.
    pub fn buf_mut(&mut self) -> &mut CudaSlice<f32> {
        self.nhwc_bf16.get_mut().take();
        &mut self.buf
    }

    /// The tensor's (N, H, W, C) bf16 copy: the one kept from an earlier call while the buffer
    /// and shape are unchanged, else `make`'s, kept for the next call.
    pub fn nhwc_bf16(
        &self,
        make: impl FnOnce(&GpuTensor) -> Result<CudaSlice<u16>, CudaError>,
    ) -> Result<Arc<CudaSlice<u16>>, CudaError> {
        if let Some((shape, copy)) = self.nhwc_bf16.borrow().as_ref()
            && *shape == self.shape
        {
            return Ok(copy.clone());
        }
        let copy = Arc::new(make(self)?);
        *self.nhwc_bf16.borrow_mut() = Some((self.shape, copy.clone()));
        Ok(copy)
    }

    /// Keeps `copy` as the tensor's (N, H, W, C) bf16 copy: for a kernel that writes the tensor
    /// and its copy together.
    pub fn keep_nhwc_bf16(&mut self, copy: CudaSlice<u16>) {
        *self.nhwc_bf16.get_mut() = Some((self.shape, Arc::new(copy)));
    }

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
        Ok(GpuTensor::new(
            gpu.upload(a.as_slice().expect("standard layout"))?,
            [d.0, d.1, d.2, d.3],
        ))
    }

    pub fn download(&self, gpu: &Gpu) -> Result<Array4<f32>, CudaError> {
        let mut v = gpu.download(&self.buf)?;
        v.truncate(self.len());
        let [n, c, h, w] = self.shape;
        Ok(Array4::from_shape_vec((n, c, h, w), v).expect("buffer matches shape"))
    }

    /// An output tensor for a kernel to fill (poisoned when the Gpu poisons).
    pub fn output(gpu: &Gpu, shape: [usize; 4]) -> Result<GpuTensor, CudaError> {
        Ok(GpuTensor::new(
            gpu.alloc_out(shape.iter().product())?,
            shape,
        ))
    }

    pub fn zeros(gpu: &Gpu, shape: [usize; 4]) -> Result<GpuTensor, CudaError> {
        Ok(GpuTensor::new(gpu.zeros(shape.iter().product())?, shape))
    }
}
