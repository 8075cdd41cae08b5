//! The engine on a GPU: each trait op is the launcher of the same name in `crate::cuda::launch`
//! (checked against the CPU op by tests/parity.rs); layout-only ops (copies, batch
//! slices, reshapes) are device-to-device copies or shape changes.

use super::Backend;
use crate::backend::cpu::MatmulPrecision;
use crate::cuda::launch as gops;
use crate::cuda::{CudaError, Gpu, GpuTensor};
use crate::error::Result;
use crate::ops::adam::AdamConfig;
use crate::ops::blur::Blur;
use cudarc::driver::CudaSlice;
use ndarray::Array4;

/// The CUDA engine: one GPU, all work on its one stream.
pub struct CudaBackend {
    pub gpu: Gpu,
    /// The convolutions' operands: f32 (kernels/conv2d.cu) or bf16 on tensor cores
    /// (kernels/conv2d_bf16.cu), as `CpuBackend::with_matmul`.
    matmul: MatmulPrecision,
}

impl CudaBackend {
    /// Opens GPU `ordinal` for training / rendering in f32 (errors in one line, never panics).
    pub fn open(ordinal: usize) -> std::result::Result<CudaBackend, CudaError> {
        Self::open_with(ordinal, MatmulPrecision::Full)
    }

    /// Opens GPU `ordinal` with convolution operands at `matmul` (bf16 needs sm_80 or newer).
    pub fn open_with(
        ordinal: usize,
        matmul: MatmulPrecision,
    ) -> std::result::Result<CudaBackend, CudaError> {
        let gpu = Gpu::open(ordinal)?;
        if matmul == MatmulPrecision::Bf16 {
            gops::conv2d::check_bf16(&gpu)?;
        }
        // All of the engine's work, allocations, frees and copies go through the one stream
        // of `gpu`, in order: cudarc's per-buffer event tracking (for work spread over several
        // streams) would add event records to every launch and buys nothing here.
        // SAFETY: no buffer of this context exists yet, and none is used on another stream.
        unsafe { gpu.context().disable_event_tracking() };
        // Only a speed setting: a driver without memory-pool attributes runs the same, slower.
        let _ = gpu.keep_pool_memory();
        Ok(CudaBackend { gpu, matmul })
    }

    pub fn matmul(&self) -> MatmulPrecision {
        self.matmul
    }

    /// Makes a tensor of a launcher's vector result (a bias gradient, a loss row, a scalar).
    fn vector(buf: CudaSlice<f32>, n: usize) -> GpuTensor {
        GpuTensor::new(buf, [n, 1, 1, 1])
    }
}

fn shape_error(msg: String) -> crate::error::Error {
    CudaError::Shape(msg).into()
}

impl Backend for CudaBackend {
    type Elem = f32;
    type Tensor = GpuTensor;

    fn shape(&self, t: &GpuTensor) -> [usize; 4] {
        t.shape
    }
    fn upload(&self, a: &Array4<f32>) -> Result<GpuTensor> {
        Ok(GpuTensor::upload(&self.gpu, a)?)
    }
    fn download(&self, t: &GpuTensor) -> Result<Array4<f32>> {
        Ok(t.download(&self.gpu)?)
    }
    fn zeros(&self, shape: [usize; 4]) -> Result<GpuTensor> {
        Ok(GpuTensor::zeros(&self.gpu, shape)?)
    }
    fn copy(&self, t: &GpuTensor) -> Result<GpuTensor> {
        let buf = self
            .gpu
            .stream()
            .clone_dtod(t.buf())
            .map_err(|e| CudaError::driver("copy", e))?;
        Ok(GpuTensor::new(buf, t.shape))
    }
    fn reshape(&self, mut t: GpuTensor, shape: [usize; 4]) -> Result<GpuTensor> {
        if shape.iter().product::<usize>() != t.len() {
            return Err(shape_error(format!("reshape {:?} → {shape:?}", t.shape)));
        }
        t.shape = shape;
        Ok(t)
    }
    fn batch_slice(&self, x: &GpuTensor, r0: usize, n: usize) -> Result<GpuTensor> {
        let [b, c, h, w] = x.shape;
        if n == 0 || r0 + n > b {
            return Err(shape_error(format!(
                "batch rows {r0}..{} of {:?}",
                r0 + n,
                x.shape
            )));
        }
        let per = c * h * w;
        let view = x.buf().slice(r0 * per..(r0 + n) * per);
        let buf = self
            .gpu
            .stream()
            .clone_dtod(&view)
            .map_err(|e| CudaError::driver("batch slice", e))?;
        Ok(GpuTensor::new(buf, [n, c, h, w]))
    }
    fn sync(&self) -> Result<()> {
        Ok(self.gpu.sync()?)
    }

    fn scale(&self, x: &GpuTensor, s: f64) -> Result<GpuTensor> {
        Ok(gops::scale::scale(&self.gpu, x, s as f32)?)
    }
    fn add_into(&self, dst: &mut GpuTensor, offset: usize, src: &GpuTensor) -> Result<()> {
        Ok(gops::add::add_into(&self.gpu, dst, offset, src)?)
    }
    fn swap01(&self, x: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::permute::swap01(&self.gpu, x)?)
    }
    fn to_windows(&self, x: &GpuTensor, s: usize) -> Result<GpuTensor> {
        Ok(gops::windows::to_windows(&self.gpu, x, s)?)
    }
    fn from_windows(&self, win: &GpuTensor, n: usize, h: usize, w: usize) -> Result<GpuTensor> {
        Ok(gops::windows::from_windows(&self.gpu, win, n, h, w)?)
    }
    fn gather_positions(
        &self,
        f: &GpuTensor,
        r0: usize,
        b: usize,
        ids: &[usize],
    ) -> Result<GpuTensor> {
        Ok(gops::gather::gather_positions(&self.gpu, f, r0, b, ids)?)
    }
    fn scatter_add_positions(
        &self,
        d: &mut GpuTensor,
        r0: usize,
        ids: &[usize],
        rows: &GpuTensor,
    ) -> Result<()> {
        Ok(gops::gather::scatter_add_positions(
            &self.gpu, d, r0, ids, rows,
        )?)
    }
    fn sum_squares(&self, x: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::sumsq::sum_squares(&self.gpu, x)?)
    }

    fn conv2d(&self, x: &GpuTensor, w: &GpuTensor, stride: usize, pad: usize) -> Result<GpuTensor> {
        Ok(gops::conv2d::forward(
            &self.gpu,
            self.matmul,
            x,
            w,
            stride,
            pad,
            None,
        )?)
    }
    fn conv2d_bias_lrelu(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        stride: usize,
        pad: usize,
        bias: &GpuTensor,
    ) -> Result<GpuTensor> {
        Ok(gops::conv2d::forward(
            &self.gpu,
            self.matmul,
            x,
            w,
            stride,
            pad,
            Some(bias.buf()),
        )?)
    }
    fn conv2d_backward_input(
        &self,
        dy: &GpuTensor,
        w: &GpuTensor,
        stride: usize,
        pad: usize,
        in_hw: (usize, usize),
    ) -> Result<GpuTensor> {
        Ok(gops::conv2d::backward_input(
            &self.gpu,
            self.matmul,
            dy,
            w,
            stride,
            pad,
            in_hw,
        )?)
    }
    fn conv2d_backward_weight(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<GpuTensor> {
        Ok(gops::conv2d::backward_weight(
            &self.gpu,
            self.matmul,
            x,
            dy,
            k,
            stride,
            pad,
        )?)
    }
    fn conv_transpose2d(&self, x: &GpuTensor, w: &GpuTensor, stride: usize) -> Result<GpuTensor> {
        Ok(gops::conv2d::conv_transpose2d_forward(
            &self.gpu,
            self.matmul,
            x,
            w,
            stride,
        )?)
    }
    fn conv_transpose2d_backward_input(
        &self,
        dy: &GpuTensor,
        w: &GpuTensor,
        stride: usize,
    ) -> Result<GpuTensor> {
        Ok(gops::conv2d::conv_transpose2d_backward_input(
            &self.gpu,
            self.matmul,
            dy,
            w,
            stride,
        )?)
    }
    fn conv_transpose2d_backward_weight(
        &self,
        x: &GpuTensor,
        dy: &GpuTensor,
        k: usize,
        stride: usize,
    ) -> Result<GpuTensor> {
        Ok(gops::conv2d::conv_transpose2d_backward_weight(
            &self.gpu,
            self.matmul,
            x,
            dy,
            k,
            stride,
        )?)
    }

    fn blur(&self, b: &Blur, x: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::blur::forward(&self.gpu, b, x)?)
    }
    fn blur_backward(&self, b: &Blur, dy: &GpuTensor, in_hw: (usize, usize)) -> Result<GpuTensor> {
        Ok(gops::blur::backward(&self.gpu, b, dy, in_hw)?)
    }
    fn fused_lrelu(&self, x: &mut GpuTensor, bias: &GpuTensor) -> Result<()> {
        Ok(gops::fused_lrelu::forward(&self.gpu, x, bias.buf())?)
    }
    fn fused_lrelu_backward(
        &self,
        y: &GpuTensor,
        dy: &GpuTensor,
    ) -> Result<(GpuTensor, GpuTensor)> {
        let ch = dy.shape[1];
        let (dx, db) = gops::fused_lrelu::backward(&self.gpu, y, dy, self.matmul)?;
        Ok((dx, Self::vector(db, ch)))
    }
    fn fused_lrelu_tangent(&self, y: &GpuTensor, t: &mut GpuTensor) -> Result<()> {
        Ok(gops::fused_lrelu::tangent(&self.gpu, y, t)?)
    }
    fn add_bias(&self, x: &mut GpuTensor, bias: &GpuTensor) -> Result<()> {
        Ok(gops::bias::add(&self.gpu, x, bias.buf())?)
    }
    fn bias_grad(&self, dy: &GpuTensor) -> Result<GpuTensor> {
        let ch = dy.shape[1];
        Ok(Self::vector(gops::bias::grad(&self.gpu, dy)?, ch))
    }
    fn demod(&self, w: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::demod::forward(&self.gpu, w)?)
    }
    fn demod_backward(&self, w: &GpuTensor, dw_eff: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::demod::backward(&self.gpu, w, dw_eff)?)
    }
    fn noise(&self, x: &mut GpuTensor, w: &GpuTensor, n: &GpuTensor) -> Result<()> {
        Ok(gops::noise::forward(&self.gpu, x, w.buf(), n)?)
    }
    fn noise_backward_weight(&self, dy: &GpuTensor, n: &GpuTensor) -> Result<GpuTensor> {
        Ok(Self::vector(
            gops::noise::backward_weight(&self.gpu, dy, n)?,
            1,
        ))
    }
    fn residual(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::residual::forward(&self.gpu, a, b)?)
    }
    fn residual_backward(&self, dy: &mut GpuTensor) -> Result<()> {
        Ok(gops::residual::backward(&self.gpu, dy)?)
    }
    fn relu(&self, x: &mut GpuTensor) -> Result<()> {
        Ok(gops::relu::forward(&self.gpu, x)?)
    }
    fn relu_backward(&self, y: &GpuTensor, dy: &mut GpuTensor) -> Result<()> {
        Ok(gops::relu::backward(&self.gpu, y, dy)?)
    }
    fn l2norm(&self, x: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::l2norm::forward(&self.gpu, x)?)
    }
    fn l2norm_backward(&self, x: &GpuTensor, dy: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::l2norm::backward(&self.gpu, x, dy)?)
    }

    fn patchnce(&self, q: &GpuTensor, k: &GpuTensor, tau: f64) -> Result<GpuTensor> {
        let b = q.shape[0];
        Ok(Self::vector(
            gops::patchnce::forward(&self.gpu, q, k, tau)?,
            b,
        ))
    }
    fn patchnce_backward(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        tau: f64,
        dloss: &GpuTensor,
    ) -> Result<GpuTensor> {
        Ok(gops::patchnce::backward(&self.gpu, q, k, tau, dloss.buf())?)
    }
    fn softplus_mean(&self, logits: &GpuTensor, negate: bool) -> Result<GpuTensor> {
        let out =
            gops::gan_loss::softplus_mean_forward(&self.gpu, logits.buf(), logits.len(), negate)?;
        Ok(Self::vector(out, 1))
    }
    fn softplus_mean_backward(&self, logits: &GpuTensor, negate: bool) -> Result<GpuTensor> {
        let n = logits.len();
        let out = gops::gan_loss::softplus_mean_backward(&self.gpu, logits.buf(), n, negate)?;
        Ok(Self::vector(out, n))
    }
    fn l1_mean(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        Ok(Self::vector(gops::l1::forward(&self.gpu, a, b)?, 1))
    }
    fn l1_mean_backward(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        Ok(gops::l1::backward(&self.gpu, a, b)?)
    }
    fn adam(
        &self,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        exp_avg: &mut GpuTensor,
        exp_avg_sq: &mut GpuTensor,
        step: u64,
        lr: f64,
        cfg: &AdamConfig,
    ) -> Result<()> {
        // The launcher compares buffer lengths; the shapes must agree in size as well.
        if grad.len() != param.len() || exp_avg.len() != param.len() {
            return Err(shape_error(format!(
                "adam: gradient {:?} vs parameter {:?}",
                grad.shape, param.shape
            )));
        }
        Ok(gops::adam::update(
            &self.gpu,
            param.buf_mut(),
            grad.buf(),
            exp_avg.buf_mut(),
            exp_avg_sq.buf_mut(),
            step,
            lr,
            cfg,
        )?)
    }
}
