//! The engine on the CPU: each trait op is the `crate::ops` function of the same name on
//! `Array4<T>`, so the engine's network and step code runs (and is tested) without a GPU.

use super::Backend;
use crate::error::{Error, Result};
use crate::ops;
use crate::ops::adam::AdamConfig;
use crate::ops::blur::Blur;
use crate::tensor::{Real, c};
use ndarray::{Array2, Array4, s};
use std::marker::PhantomData;

/// The CPU engine in the float type `T`: f32 for runs, f64 for the finite-difference checks
/// of whole networks (stateless: the ops use `crate::parallel`'s worker threads).
pub struct CpuBackend<T = f32> {
    matmul: MatmulPrecision,
    elem: PhantomData<T>,
}

pub use crate::ops::gemm::{MatmulPrecision, round_bf16};

impl<T> CpuBackend<T> {
    pub const fn new() -> Self {
        Self::with_matmul(MatmulPrecision::Full)
    }

    pub const fn with_matmul(matmul: MatmulPrecision) -> Self {
        CpuBackend {
            matmul,
            elem: PhantomData,
        }
    }

    pub fn matmul(&self) -> MatmulPrecision {
        self.matmul
    }
}

impl<T> Default for CpuBackend<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for CpuBackend<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for CpuBackend<T> {}

impl<T> std::fmt::Debug for CpuBackend<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CpuBackend<{}, {:?}>",
            std::any::type_name::<T>(),
            self.matmul
        )
    }
}

fn slice<T: Real>(t: &Array4<T>) -> &[T] {
    t.as_slice().expect("engine tensors are standard layout")
}

fn vec4<T: Real>(v: Vec<T>) -> Array4<T> {
    let n = v.len();
    Array4::from_shape_vec((n, 1, 1, 1), v).expect("vector shape")
}

fn scalar<T: Real>(v: T) -> Array4<T> {
    vec4(vec![v])
}

/// (B, D, 1, 1) → (B, D) for the row ops.
fn rows<T: Real>(t: &Array4<T>) -> Array2<T> {
    let [b, c, h, w] = dims(t);
    t.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, c * h * w))
        .expect("row shape")
}

fn unrows<T: Real>(a: Array2<T>) -> Array4<T> {
    let (b, d) = a.dim();
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, d, 1, 1))
        .expect("row shape")
}

fn dims<T: Real>(t: &Array4<T>) -> [usize; 4] {
    let d = t.dim();
    [d.0, d.1, d.2, d.3]
}

fn standard<T: Real>(a: Array4<T>) -> Array4<T> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

impl<T: Real> Backend for CpuBackend<T> {
    type Elem = T;
    type Tensor = Array4<T>;

    fn shape(&self, t: &Array4<T>) -> [usize; 4] {
        dims(t)
    }
    fn upload(&self, a: &Array4<T>) -> Result<Array4<T>> {
        Ok(a.as_standard_layout().into_owned())
    }
    fn download(&self, t: &Array4<T>) -> Result<Array4<T>> {
        Ok(t.clone())
    }
    fn zeros(&self, s: [usize; 4]) -> Result<Array4<T>> {
        Ok(Array4::zeros((s[0], s[1], s[2], s[3])))
    }
    fn copy(&self, t: &Array4<T>) -> Result<Array4<T>> {
        Ok(t.clone())
    }
    fn reshape(&self, t: Array4<T>, s: [usize; 4]) -> Result<Array4<T>> {
        let from = dims(&t);
        t.into_shape_with_order((s[0], s[1], s[2], s[3]))
            .map_err(|e| Error::new(format!("reshape {from:?} → {s:?}: {e}")))
    }
    fn batch_slice(&self, x: &Array4<T>, r0: usize, n: usize) -> Result<Array4<T>> {
        if r0 + n > x.dim().0 {
            return Err(Error::new(format!(
                "batch rows {r0}..{} of {:?}",
                r0 + n,
                dims(x)
            )));
        }
        Ok(x.slice(s![r0..r0 + n, .., .., ..]).to_owned())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn scale(&self, x: &Array4<T>, s: f64) -> Result<Array4<T>> {
        Ok(ops::scale::scale(x, c(s)))
    }
    fn add_into(&self, dst: &mut Array4<T>, offset: usize, src: &Array4<T>) -> Result<()> {
        if offset + src.len() > dst.len() {
            return Err(Error::new(format!(
                "add_into: {:?} at {offset} does not fit {:?}",
                dims(src),
                dims(dst)
            )));
        }
        ops::add::add_into(dst, offset, src);
        Ok(())
    }
    fn swap01(&self, x: &Array4<T>) -> Result<Array4<T>> {
        Ok(ops::permute::swap01(x))
    }
    fn to_windows(&self, x: &Array4<T>, s: usize) -> Result<Array4<T>> {
        ops::windows::check_to_windows(dims(x), s).map_err(Error::new)?;
        Ok(standard(ops::windows::to_windows(x, s)))
    }
    fn from_windows(&self, win: &Array4<T>, n: usize, h: usize, w: usize) -> Result<Array4<T>> {
        ops::windows::check_from_windows(dims(win), n, h, w).map_err(Error::new)?;
        Ok(standard(ops::windows::from_windows(win, n, h, w)))
    }
    fn gather_positions(
        &self,
        f: &Array4<T>,
        r0: usize,
        b: usize,
        ids: &[usize],
    ) -> Result<Array4<T>> {
        ops::gather::check_positions(dims(f), r0, b, ids).map_err(Error::new)?;
        Ok(unrows(ops::gather::gather_positions(f, r0, b, ids)))
    }
    fn scatter_add_positions(
        &self,
        d: &mut Array4<T>,
        r0: usize,
        ids: &[usize],
        r: &Array4<T>,
    ) -> Result<()> {
        ops::gather::check_scatter(dims(d), dims(r), r0, ids).map_err(Error::new)?;
        ops::gather::scatter_add_positions(d, r0, ids, &rows(r));
        Ok(())
    }
    fn sum_squares(&self, x: &Array4<T>) -> Result<Array4<T>> {
        Ok(scalar(c(ops::sumsq::sum_squares(slice(x)))))
    }

    fn conv2d(&self, x: &Array4<T>, w: &Array4<T>, st: usize, pad: usize) -> Result<Array4<T>> {
        Ok(ops::conv2d::conv2d_forward(
            x,
            w.view(),
            st,
            pad,
            self.matmul,
        ))
    }
    fn conv2d_backward_input(
        &self,
        dy: &Array4<T>,
        w: &Array4<T>,
        st: usize,
        pad: usize,
        in_hw: (usize, usize),
    ) -> Result<Array4<T>> {
        Ok(ops::conv2d::conv2d_backward_input(
            dy,
            w.view(),
            st,
            pad,
            in_hw,
            self.matmul,
        ))
    }
    fn conv2d_backward_weight(
        &self,
        x: &Array4<T>,
        dy: &Array4<T>,
        k: usize,
        st: usize,
        pad: usize,
    ) -> Result<Array4<T>> {
        Ok(ops::conv2d::conv2d_backward_weight(
            x,
            dy,
            k,
            st,
            pad,
            self.matmul,
        ))
    }
    fn conv_transpose2d(&self, x: &Array4<T>, w: &Array4<T>, st: usize) -> Result<Array4<T>> {
        Ok(ops::conv2d::conv_transpose2d_forward(
            x,
            w.view(),
            st,
            self.matmul,
        ))
    }
    fn conv_transpose2d_backward_input(
        &self,
        dy: &Array4<T>,
        w: &Array4<T>,
        st: usize,
    ) -> Result<Array4<T>> {
        Ok(ops::conv2d::conv_transpose2d_backward_input(
            dy,
            w.view(),
            st,
            self.matmul,
        ))
    }
    fn conv_transpose2d_backward_weight(
        &self,
        x: &Array4<T>,
        dy: &Array4<T>,
        k: usize,
        st: usize,
    ) -> Result<Array4<T>> {
        Ok(ops::conv2d::conv_transpose2d_backward_weight(
            x,
            dy,
            k,
            st,
            self.matmul,
        ))
    }

    fn blur(&self, b: &Blur, x: &Array4<T>) -> Result<Array4<T>> {
        Ok(b.forward(x))
    }
    fn blur_backward(&self, b: &Blur, dy: &Array4<T>, in_hw: (usize, usize)) -> Result<Array4<T>> {
        Ok(b.backward(dy, in_hw))
    }
    fn fused_lrelu(&self, x: &mut Array4<T>, bias: &Array4<T>) -> Result<()> {
        ops::fused_lrelu::fused_lrelu_forward(x, slice(bias));
        Ok(())
    }
    fn fused_lrelu_backward(
        &self,
        y: &Array4<T>,
        dy: &Array4<T>,
    ) -> Result<(Array4<T>, Array4<T>)> {
        let (dx, db) = ops::fused_lrelu::fused_lrelu_backward(y, dy);
        Ok((dx, vec4(db)))
    }
    fn fused_lrelu_tangent(&self, y: &Array4<T>, t: &mut Array4<T>) -> Result<()> {
        ops::fused_lrelu::fused_lrelu_tangent(y, t);
        Ok(())
    }
    fn add_bias(&self, x: &mut Array4<T>, bias: &Array4<T>) -> Result<()> {
        ops::bias::add_bias(x, slice(bias));
        Ok(())
    }
    fn bias_grad(&self, dy: &Array4<T>) -> Result<Array4<T>> {
        Ok(vec4(ops::bias::bias_grad(dy)))
    }
    fn demod(&self, w: &Array4<T>) -> Result<Array4<T>> {
        Ok(ops::demod::demod_forward(w.view()))
    }
    fn demod_backward(&self, w: &Array4<T>, dw_eff: &Array4<T>) -> Result<Array4<T>> {
        Ok(ops::demod::demod_backward(w.view(), dw_eff.view()))
    }
    fn noise(&self, x: &mut Array4<T>, w: &Array4<T>, n: &Array4<T>) -> Result<()> {
        ops::noise::noise_forward(x, slice(w)[0], n);
        Ok(())
    }
    fn noise_backward_weight(&self, dy: &Array4<T>, n: &Array4<T>) -> Result<Array4<T>> {
        Ok(scalar(ops::noise::noise_backward_weight(dy, n)))
    }
    fn residual(&self, a: &Array4<T>, b: &Array4<T>) -> Result<Array4<T>> {
        Ok(ops::residual::residual_forward(a, b))
    }
    fn residual_backward(&self, dy: &mut Array4<T>) -> Result<()> {
        ops::residual::residual_backward(dy);
        Ok(())
    }
    fn relu(&self, x: &mut Array4<T>) -> Result<()> {
        ops::relu::relu_forward(x);
        Ok(())
    }
    fn relu_backward(&self, y: &Array4<T>, dy: &mut Array4<T>) -> Result<()> {
        ops::relu::relu_backward(y, dy);
        Ok(())
    }
    fn l2norm(&self, x: &Array4<T>) -> Result<Array4<T>> {
        Ok(unrows(ops::l2norm::l2norm_forward(&rows(x))))
    }
    fn l2norm_backward(&self, x: &Array4<T>, dy: &Array4<T>) -> Result<Array4<T>> {
        Ok(unrows(ops::l2norm::l2norm_backward(&rows(x), &rows(dy))))
    }

    fn patchnce(&self, q: &Array4<T>, k: &Array4<T>, tau: f64) -> Result<Array4<T>> {
        Ok(vec4(ops::patchnce::patchnce_forward(
            &rows(q),
            &rows(k),
            tau,
        )))
    }
    fn patchnce_backward(
        &self,
        q: &Array4<T>,
        k: &Array4<T>,
        tau: f64,
        dloss: &Array4<T>,
    ) -> Result<Array4<T>> {
        Ok(unrows(ops::patchnce::patchnce_backward(
            &rows(q),
            &rows(k),
            tau,
            slice(dloss),
        )))
    }
    fn softplus_mean(&self, logits: &Array4<T>, negate: bool) -> Result<Array4<T>> {
        Ok(scalar(ops::gan_loss::softplus_mean_forward(
            slice(logits),
            negate,
        )))
    }
    fn softplus_mean_backward(&self, logits: &Array4<T>, negate: bool) -> Result<Array4<T>> {
        Ok(vec4(ops::gan_loss::softplus_mean_backward(
            slice(logits),
            negate,
        )))
    }
    fn l1_mean(&self, a: &Array4<T>, b: &Array4<T>) -> Result<Array4<T>> {
        Ok(scalar(ops::l1::l1_mean_forward(a, b)))
    }
    fn l1_mean_backward(&self, a: &Array4<T>, b: &Array4<T>) -> Result<Array4<T>> {
        Ok(ops::l1::l1_mean_backward(a, b))
    }
    fn adam(
        &self,
        param: &mut Array4<T>,
        grad: &Array4<T>,
        exp_avg: &mut Array4<T>,
        exp_avg_sq: &mut Array4<T>,
        step: u64,
        lr: f64,
        cfg: &AdamConfig,
    ) -> Result<()> {
        if grad.len() != param.len() {
            return Err(Error::new(format!(
                "adam: gradient {:?} vs parameter {:?}",
                dims(grad),
                dims(param)
            )));
        }
        ops::adam::adam_update(
            param.as_slice_mut().expect("standard layout"),
            slice(grad),
            exp_avg.as_slice_mut().expect("standard layout"),
            exp_avg_sq.as_slice_mut().expect("standard layout"),
            step,
            lr,
            cfg,
        );
        Ok(())
    }
}
