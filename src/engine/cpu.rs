//! The engine on the CPU: each trait op is the `crate::ops` function of the same name on
//! `Array4<f32>`, so the engine's network and step code runs (and is tested) without a GPU.

use super::Engine;
use crate::error::{Error, Result};
use crate::ops;
use crate::ops::adam::AdamConfig;
use crate::ops::blur::Blur;
use ndarray::{Array2, Array4, s};

/// The CPU engine (stateless: the ops use `crate::tensor`'s worker threads).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

fn slice(t: &Array4<f32>) -> &[f32] {
    t.as_slice().expect("engine tensors are standard layout")
}

fn vec4(v: Vec<f32>) -> Array4<f32> {
    let n = v.len();
    Array4::from_shape_vec((n, 1, 1, 1), v).expect("vector shape")
}

fn scalar(v: f32) -> Array4<f32> {
    vec4(vec![v])
}

/// (B, D, 1, 1) → (B, D) for the row ops.
fn rows(t: &Array4<f32>) -> Array2<f32> {
    let [b, c, h, w] = dims(t);
    t.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, c * h * w))
        .expect("row shape")
}

fn unrows(a: Array2<f32>) -> Array4<f32> {
    let (b, d) = a.dim();
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order((b, d, 1, 1))
        .expect("row shape")
}

fn dims(t: &Array4<f32>) -> [usize; 4] {
    let d = t.dim();
    [d.0, d.1, d.2, d.3]
}

fn standard(a: Array4<f32>) -> Array4<f32> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

impl Engine for CpuEngine {
    type Tensor = Array4<f32>;

    fn shape(&self, t: &Array4<f32>) -> [usize; 4] {
        dims(t)
    }
    fn upload(&self, a: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(a.as_standard_layout().into_owned())
    }
    fn download(&self, t: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(t.clone())
    }
    fn zeros(&self, s: [usize; 4]) -> Result<Array4<f32>> {
        Ok(Array4::zeros((s[0], s[1], s[2], s[3])))
    }
    fn copy(&self, t: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(t.clone())
    }
    fn reshape(&self, t: Array4<f32>, s: [usize; 4]) -> Result<Array4<f32>> {
        let from = dims(&t);
        t.into_shape_with_order((s[0], s[1], s[2], s[3]))
            .map_err(|e| Error::new(format!("reshape {from:?} → {s:?}: {e}")))
    }
    fn batch_slice(&self, x: &Array4<f32>, r0: usize, n: usize) -> Result<Array4<f32>> {
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

    fn scale(&self, x: &Array4<f32>, s: f32) -> Result<Array4<f32>> {
        Ok(ops::scale::scale(x, s))
    }
    fn add_into(&self, dst: &mut Array4<f32>, offset: usize, src: &Array4<f32>) -> Result<()> {
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
    fn swap01(&self, x: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(ops::permute::swap01(x))
    }
    fn to_windows(&self, x: &Array4<f32>, s: usize) -> Result<Array4<f32>> {
        Ok(standard(ops::windows::to_windows(x, s)))
    }
    fn from_windows(&self, win: &Array4<f32>, n: usize, h: usize, w: usize) -> Result<Array4<f32>> {
        Ok(standard(ops::windows::from_windows(win, n, h, w)))
    }
    fn gather_position(
        &self,
        f: &Array4<f32>,
        r0: usize,
        b: usize,
        pos: usize,
    ) -> Result<Array4<f32>> {
        Ok(unrows(ops::gather::gather_position(f, r0, b, pos)))
    }
    fn scatter_add_position(
        &self,
        d: &mut Array4<f32>,
        r0: usize,
        pos: usize,
        r: &Array4<f32>,
    ) -> Result<()> {
        ops::gather::scatter_add_position(d, r0, pos, &rows(r));
        Ok(())
    }
    fn sum_squares(&self, x: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(scalar(ops::sumsq::sum_squares(slice(x)) as f32))
    }

    fn conv2d(
        &self,
        x: &Array4<f32>,
        w: &Array4<f32>,
        st: usize,
        pad: usize,
    ) -> Result<Array4<f32>> {
        Ok(ops::conv2d::conv2d_forward(x, w.view(), st, pad))
    }
    fn conv2d_backward_input(
        &self,
        dy: &Array4<f32>,
        w: &Array4<f32>,
        st: usize,
        pad: usize,
        in_hw: (usize, usize),
    ) -> Result<Array4<f32>> {
        Ok(ops::conv2d::conv2d_backward_input(
            dy,
            w.view(),
            st,
            pad,
            in_hw,
        ))
    }
    fn conv2d_backward_weight(
        &self,
        x: &Array4<f32>,
        dy: &Array4<f32>,
        k: usize,
        st: usize,
        pad: usize,
    ) -> Result<Array4<f32>> {
        Ok(ops::conv2d::conv2d_backward_weight(x, dy, k, st, pad))
    }
    fn conv_transpose2d(&self, x: &Array4<f32>, w: &Array4<f32>, st: usize) -> Result<Array4<f32>> {
        Ok(ops::conv2d::conv_transpose2d_forward(x, w.view(), st))
    }
    fn conv_transpose2d_backward_input(
        &self,
        dy: &Array4<f32>,
        w: &Array4<f32>,
        st: usize,
    ) -> Result<Array4<f32>> {
        Ok(ops::conv2d::conv_transpose2d_backward_input(
            dy,
            w.view(),
            st,
        ))
    }
    fn conv_transpose2d_backward_weight(
        &self,
        x: &Array4<f32>,
        dy: &Array4<f32>,
        k: usize,
        st: usize,
    ) -> Result<Array4<f32>> {
        Ok(ops::conv2d::conv_transpose2d_backward_weight(x, dy, k, st))
    }

    fn blur(&self, b: &Blur, x: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(b.forward(x))
    }
    fn blur_backward(
        &self,
        b: &Blur,
        dy: &Array4<f32>,
        in_hw: (usize, usize),
    ) -> Result<Array4<f32>> {
        Ok(b.backward(dy, in_hw))
    }
    fn fused_lrelu(&self, x: &mut Array4<f32>, bias: &Array4<f32>) -> Result<()> {
        ops::fused_lrelu::fused_lrelu_forward(x, slice(bias));
        Ok(())
    }
    fn fused_lrelu_backward(&self, y: &Array4<f32>, dy: &mut Array4<f32>) -> Result<Array4<f32>> {
        Ok(vec4(ops::fused_lrelu::fused_lrelu_backward(y, dy)))
    }
    fn fused_lrelu_tangent(&self, y: &Array4<f32>, t: &mut Array4<f32>) -> Result<()> {
        ops::fused_lrelu::fused_lrelu_tangent(y, t);
        Ok(())
    }
    fn add_bias(&self, x: &mut Array4<f32>, bias: &Array4<f32>) -> Result<()> {
        ops::bias::add_bias(x, slice(bias));
        Ok(())
    }
    fn bias_grad(&self, dy: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(vec4(ops::bias::bias_grad(dy)))
    }
    fn demod(&self, w: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(ops::demod::demod_forward(w.view()))
    }
    fn demod_backward(&self, w: &Array4<f32>, dw_eff: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(ops::demod::demod_backward(w.view(), dw_eff.view()))
    }
    fn noise(&self, x: &mut Array4<f32>, w: &Array4<f32>, n: &Array4<f32>) -> Result<()> {
        ops::noise::noise_forward(x, slice(w)[0], n);
        Ok(())
    }
    fn noise_backward_weight(&self, dy: &Array4<f32>, n: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(scalar(ops::noise::noise_backward_weight(dy, n)))
    }
    fn residual(&self, a: &mut Array4<f32>, b: &Array4<f32>) -> Result<()> {
        ops::residual::residual_forward(a, b);
        Ok(())
    }
    fn residual_backward(&self, dy: &mut Array4<f32>) -> Result<()> {
        ops::residual::residual_backward(dy);
        Ok(())
    }
    fn relu(&self, x: &mut Array4<f32>) -> Result<()> {
        ops::relu::relu_forward(x);
        Ok(())
    }
    fn relu_backward(&self, y: &Array4<f32>, dy: &mut Array4<f32>) -> Result<()> {
        ops::relu::relu_backward(y, dy);
        Ok(())
    }
    fn l2norm(&self, x: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(unrows(ops::l2norm::l2norm_forward(&rows(x))))
    }
    fn l2norm_backward(&self, x: &Array4<f32>, dy: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(unrows(ops::l2norm::l2norm_backward(&rows(x), &rows(dy))))
    }

    fn patchnce(&self, q: &Array4<f32>, k: &Array4<f32>, tau: f64) -> Result<Array4<f32>> {
        Ok(vec4(ops::patchnce::patchnce_forward(
            &rows(q),
            &rows(k),
            tau,
        )))
    }
    fn patchnce_backward(
        &self,
        q: &Array4<f32>,
        k: &Array4<f32>,
        tau: f64,
        dloss: &Array4<f32>,
    ) -> Result<Array4<f32>> {
        Ok(unrows(ops::patchnce::patchnce_backward(
            &rows(q),
            &rows(k),
            tau,
            slice(dloss),
        )))
    }
    fn softplus_mean(&self, logits: &Array4<f32>, negate: bool) -> Result<Array4<f32>> {
        Ok(scalar(ops::gan_loss::softplus_mean_forward(
            slice(logits),
            negate,
        )))
    }
    fn softplus_mean_backward(&self, logits: &Array4<f32>, negate: bool) -> Result<Array4<f32>> {
        Ok(vec4(ops::gan_loss::softplus_mean_backward(
            slice(logits),
            negate,
        )))
    }
    fn l1_mean(&self, a: &Array4<f32>, b: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(scalar(ops::l1::l1_mean_forward(a, b)))
    }
    fn l1_mean_backward(&self, a: &Array4<f32>, b: &Array4<f32>) -> Result<Array4<f32>> {
        Ok(ops::l1::l1_mean_backward(a, b))
    }
    fn adam(
        &self,
        param: &mut Array4<f32>,
        grad: &Array4<f32>,
        exp_avg: &mut Array4<f32>,
        exp_avg_sq: &mut Array4<f32>,
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
