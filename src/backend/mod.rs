//! Where compute runs: [`Backend`], a trait of tensor ops at the granularity of the CUDA
//! kernels, with an element type. The networks (`crate::nn`), the training step
//! (`crate::train`) and the render (`crate::render`) are written once over it; parameters,
//! gradients, Adam moments and activations stay on the backend's side, and the host uploads
//! each iteration's crops and noise and reads back only the losses.
//!
//! Implementations:
//! - [`cpu::CpuBackend`]`<f32>`: the ops of `crate::ops` on `Array4<f32>`, what CPU runs use;
//! - [`cpu::CpuBackend`]`<f64>`: the same ops in f64, for finite-difference checks of whole
//!   networks and for replays that show how far f32 rounding moves a result;
//! - [`cuda::CudaBackend`] (f32): the launchers of `crate::cuda::launch` on `GpuTensor`,
//!   each kernel checked against the CPU op by the parity suite (tests/parity.rs).
//!
//! [`device`] opens the one a command asks for (`--device auto|cpu|cuda`).

pub mod cpu;
pub mod cuda;
pub mod device;
pub mod profile;

use crate::error::{Error, Result};
use crate::nn::{Networks, ParamMap};
use crate::ops::adam::AdamConfig;
use crate::ops::blur::Blur;
use crate::tensor::Real;
use ndarray::{Array4, ArrayD, IxDyn};
use num_traits::ToPrimitive;
use std::collections::BTreeMap;

/// Tensor ops on one device, f32, NCHW. Vectors are (len, 1, 1, 1), a (B, D) matrix is
/// (B, D, 1, 1) and a scalar (1, 1, 1, 1). Each op has the semantics of the CPU op of the same
/// name in `crate::ops`; in-place ops take `&mut`.
pub trait Backend {
    /// The float type of the host arrays the engine exchanges (f32; f64 on the CPU for
    /// finite-difference checks).
    type Elem: Real;
    type Tensor;

    fn shape(&self, t: &Self::Tensor) -> [usize; 4];
    fn upload(&self, a: &Array4<Self::Elem>) -> Result<Self::Tensor>;
    fn download(&self, t: &Self::Tensor) -> Result<Array4<Self::Elem>>;
    fn zeros(&self, shape: [usize; 4]) -> Result<Self::Tensor>;
    fn copy(&self, t: &Self::Tensor) -> Result<Self::Tensor>;
    /// The same elements under another shape of the same size (no copy where avoidable).
    fn reshape(&self, t: Self::Tensor, shape: [usize; 4]) -> Result<Self::Tensor>;
    /// Batch rows `r0..r0+n` as a new tensor.
    fn batch_slice(&self, x: &Self::Tensor, r0: usize, n: usize) -> Result<Self::Tensor>;
    /// Waits for queued work (timing; a no-op on the CPU).
    fn sync(&self) -> Result<()>;

    // Elementwise and layout (ops::scale, ops::add, ops::permute, ops::windows, ops::gather).
    /// x·s, with s rounded once to the element type.
    fn scale(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// dst's flat elements from `offset` += src.
    fn add_into(&self, dst: &mut Self::Tensor, offset: usize, src: &Self::Tensor) -> Result<()>;
    fn swap01(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn to_windows(&self, x: &Self::Tensor, s: usize) -> Result<Self::Tensor>;
    /// The inverse of `to_windows` (named as the CPU op `ops::windows::from_windows`).
    #[allow(clippy::wrong_self_convention)]
    fn from_windows(
        &self,
        win: &Self::Tensor,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Self::Tensor>;
    /// (len(ids)·b, C, 1, 1): rows r0..r0+b of `f` at each flat position of `ids`,
    /// position-major (ops::gather).
    fn gather_positions(
        &self,
        f: &Self::Tensor,
        r0: usize,
        b: usize,
        ids: &[usize],
    ) -> Result<Self::Tensor>;
    /// The adjoint: d[r0 + j, :, ids[i]] += rows[i·b + j].
    fn scatter_add_positions(
        &self,
        d: &mut Self::Tensor,
        r0: usize,
        ids: &[usize],
        rows: &Self::Tensor,
    ) -> Result<()>;
    /// Σx² as a scalar (accumulated in f64, rounded once).
    fn sum_squares(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    // Convolutions (ops::conv2d).
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<Self::Tensor>;
    /// `conv2d`, then `fused_lrelu` with `bias`: a conv layer with its activation, which a
    /// backend may compute in one pass (the CUDA engine's bf16 convs do, in their store).
    fn conv2d_bias_lrelu(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        stride: usize,
        pad: usize,
        bias: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        let mut y = self.conv2d(x, w, stride, pad)?;
        self.fused_lrelu(&mut y, bias)?;
        Ok(y)
    }
    fn conv2d_backward_input(
        &self,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        stride: usize,
        pad: usize,
        in_hw: (usize, usize),
    ) -> Result<Self::Tensor>;
    fn conv2d_backward_weight(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self::Tensor>;
    fn conv_transpose2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        stride: usize,
    ) -> Result<Self::Tensor>;
    fn conv_transpose2d_backward_input(
        &self,
        dy: &Self::Tensor,
        w: &Self::Tensor,
        stride: usize,
    ) -> Result<Self::Tensor>;
    fn conv_transpose2d_backward_weight(
        &self,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        k: usize,
        stride: usize,
    ) -> Result<Self::Tensor>;

    // Layers' pieces (ops::blur, fused_lrelu, bias, demod, noise, residual, relu, l2norm).
    fn blur(&self, b: &Blur, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn blur_backward(
        &self,
        b: &Blur,
        dy: &Self::Tensor,
        in_hw: (usize, usize),
    ) -> Result<Self::Tensor>;
    fn fused_lrelu(&self, x: &mut Self::Tensor, bias: &Self::Tensor) -> Result<()>;
    /// dx and the bias gradient (C, 1, 1, 1); dy is left as it is (a ResBlock's output gradient
    /// also goes to its skip, which then needs no copy).
    fn fused_lrelu_backward(
        &self,
        y: &Self::Tensor,
        dy: &Self::Tensor,
    ) -> Result<(Self::Tensor, Self::Tensor)>;
    fn fused_lrelu_tangent(&self, y: &Self::Tensor, t: &mut Self::Tensor) -> Result<()>;
    fn add_bias(&self, x: &mut Self::Tensor, bias: &Self::Tensor) -> Result<()>;
    /// (C, 1, 1, 1).
    fn bias_grad(&self, dy: &Self::Tensor) -> Result<Self::Tensor>;
    fn demod(&self, w: &Self::Tensor) -> Result<Self::Tensor>;
    fn demod_backward(&self, w: &Self::Tensor, dw_eff: &Self::Tensor) -> Result<Self::Tensor>;
    /// x += w·n, `w` a scalar tensor.
    fn noise(&self, x: &mut Self::Tensor, w: &Self::Tensor, n: &Self::Tensor) -> Result<()>;
    /// Σ dy·n as a scalar.
    fn noise_backward_weight(&self, dy: &Self::Tensor, n: &Self::Tensor) -> Result<Self::Tensor>;
    /// (a + b)/√2 into a new tensor (both inputs are usually kept by caches: no copy first).
    fn residual(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn residual_backward(&self, dy: &mut Self::Tensor) -> Result<()>;
    fn relu(&self, x: &mut Self::Tensor) -> Result<()>;
    fn relu_backward(&self, y: &Self::Tensor, dy: &mut Self::Tensor) -> Result<()>;
    fn l2norm(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn l2norm_backward(&self, x: &Self::Tensor, dy: &Self::Tensor) -> Result<Self::Tensor>;

    // Losses (ops::patchnce, gan_loss, l1) and the optimizer (ops::adam).
    /// Per-row cross-entropy (B, 1, 1, 1).
    fn patchnce(&self, q: &Self::Tensor, k: &Self::Tensor, tau: f64) -> Result<Self::Tensor>;
    fn patchnce_backward(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        tau: f64,
        dloss: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// mean softplus(±logits) as a scalar.
    fn softplus_mean(&self, logits: &Self::Tensor, negate: bool) -> Result<Self::Tensor>;
    fn softplus_mean_backward(&self, logits: &Self::Tensor, negate: bool) -> Result<Self::Tensor>;
    fn l1_mean(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn l1_mean_backward(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    #[allow(clippy::too_many_arguments)]
    fn adam(
        &self,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        exp_avg: &mut Self::Tensor,
        exp_avg_sq: &mut Self::Tensor,
        step: u64,
        lr: f64,
        cfg: &AdamConfig,
    ) -> Result<()>;

    /// The values of a small tensor (losses) on the host.
    fn read(&self, t: &Self::Tensor) -> Result<Vec<f64>> {
        Ok(self
            .download(t)?
            .iter()
            .map(|v| v.to_f64().unwrap_or(f64::NAN))
            .collect())
    }
}

/// Parameters (or gradients, or Adam moments) on an engine, by official name, each in its
/// engine shape ([`backend_shape`]).
pub type Params<B> = BTreeMap<String, <B as Backend>::Tensor>;

/// The 4-D shape a parameter of official shape `official` has on an engine: leading 1s dropped
/// beyond 4 axes (the styled conv's (1, Cout, Cin, 3, 3)), trailing 1s added below 4 (linear
/// (out, in) → (out, in, 1, 1), a bias (C) → (C, 1, 1, 1)).
pub fn backend_shape(official: &[usize]) -> Result<[usize; 4]> {
    let mut s = official;
    while s.len() > 4 && s[0] == 1 {
        s = &s[1..];
    }
    if s.len() > 4 {
        return Err(Error::new(format!(
            "a parameter of shape {official:?} has no 4-D engine shape"
        )));
    }
    let mut out = [1usize; 4];
    out[..s.len()].copy_from_slice(s);
    Ok(out)
}

/// Uploads parameters (official shapes) to the engine.
pub fn upload_params<B: Backend>(e: &B, p: &ParamMap<B::Elem>) -> Result<Params<B>> {
    p.iter()
        .map(|(name, a)| {
            let s = backend_shape(a.shape())?;
            let a4 = a
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order((s[0], s[1], s[2], s[3]))
                .map_err(|e| Error::new(format!("{name}: {e}")))?;
            Ok((name.clone(), e.upload(&a4)?))
        })
        .collect()
}

/// Downloads engine tensors into official shapes (those of `nets` for the names it has; any
/// other name keeps its engine shape).
pub fn download_params<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
) -> Result<ParamMap<B::Elem>> {
    let shapes: BTreeMap<String, Vec<usize>> = nets.param_shapes().into_iter().collect();
    p.iter()
        .map(|(name, t)| {
            let a = e.download(t)?;
            let shape = shapes
                .get(name)
                .cloned()
                .unwrap_or_else(|| a.shape().to_vec());
            let a = ArrayD::from_shape_vec(IxDyn(&shape), a.into_raw_vec_and_offset().0)
                .map_err(|err| Error::new(format!("{name}: {err}")))?;
            Ok((name.clone(), a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::cpu::CpuBackend;
    use super::*;
    use crate::config::ModelConfig;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn backend_shapes() {
        assert_eq!(backend_shape(&[1, 80, 160, 3, 3]).unwrap(), [80, 160, 3, 3]);
        assert_eq!(backend_shape(&[384, 6144]).unwrap(), [384, 6144, 1, 1]);
        assert_eq!(backend_shape(&[7]).unwrap(), [7, 1, 1, 1]);
        assert_eq!(backend_shape(&[1, 80, 1, 1]).unwrap(), [1, 80, 1, 1]);
        assert!(backend_shape(&[2, 1, 1, 1, 1]).is_err());
    }

    /// Official shapes come back from the backend (5-D styled weight, (out, in) linears, (C)
    /// biases), with every value.
    #[test]
    fn parameters_round_trip_in_official_shapes() {
        let nets = Networks::new(&ModelConfig {
            ngf: 3,
            ndf: 3,
            ..Default::default()
        });
        let p: ParamMap<f32> = nets.init(&mut StdRng::seed_from_u64(1));
        let e = CpuBackend::<f32>::new();
        let back = download_params(&e, &nets, &upload_params(&e, &p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
