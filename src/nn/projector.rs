//! F: per NCE layer an MLP Linear(c→nc), ReLU, Linear(nc→nc) (ordinary PyTorch Linear layers),
//! outputs L2-normalised; its passes over [`Backend`].

use super::layers::{accumulate, param};
use crate::backend::{Backend, Params};
use crate::error::Result;

#[derive(Clone, Debug)]
pub struct Projector {
    /// Input width of each NCE layer's MLP.
    pub in_channels: Vec<usize>,
    pub nc: usize,
}

impl Projector {
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for (l, &c) in self.in_channels.iter().enumerate() {
            v.push((format!("F.mlp_{l}.0.weight"), vec![self.nc, c]));
            v.push((format!("F.mlp_{l}.0.bias"), vec![self.nc]));
            v.push((format!("F.mlp_{l}.2.weight"), vec![self.nc, self.nc]));
            v.push((format!("F.mlp_{l}.2.bias"), vec![self.nc]));
        }
        v
    }
}

pub struct ProjCache<B: Backend> {
    x: B::Tensor,
    hidden: B::Tensor,
    pre: B::Tensor,
}

fn f_name(l: usize, part: &str) -> String {
    format!("F.mlp_{l}.{part}")
}

/// Rows (B, C, 1, 1) of NCE layer `l` → normalised projections (B, nc, 1, 1).
pub fn f_forward<B: Backend>(
    e: &B,
    _f: &Projector,
    p: &Params<B>,
    l: usize,
    rows: B::Tensor,
) -> Result<(B::Tensor, ProjCache<B>)> {
    let mut hidden = e.conv2d(&rows, param(p, &f_name(l, "0.weight"))?, 1, 0)?;
    e.add_bias(&mut hidden, param(p, &f_name(l, "0.bias"))?)?;
    e.relu(&mut hidden)?;
    let mut pre = e.conv2d(&hidden, param(p, &f_name(l, "2.weight"))?, 1, 0)?;
    e.add_bias(&mut pre, param(p, &f_name(l, "2.bias"))?)?;
    let y = e.l2norm(&pre)?;
    Ok((
        y,
        ProjCache {
            x: rows,
            hidden,
            pre,
        },
    ))
}

/// Backward from the normalised output's gradient; accumulates F's gradients (when given) and
/// returns the gradient w.r.t. the rows.
pub fn f_backward<B: Backend>(
    e: &B,
    p: &Params<B>,
    l: usize,
    cache: &ProjCache<B>,
    dy: &B::Tensor,
    grads: Option<&mut Params<B>>,
) -> Result<B::Tensor> {
    let dpre = e.l2norm_backward(&cache.pre, dy)?;
    let w2 = param(p, &f_name(l, "2.weight"))?;
    let w0 = param(p, &f_name(l, "0.weight"))?;
    let mut dh = e.conv2d_backward_input(&dpre, w2, 1, 0, (1, 1))?;
    e.relu_backward(&cache.hidden, &mut dh)?;
    let dx = e.conv2d_backward_input(&dh, w0, 1, 0, (1, 1))?;
    if let Some(g) = grads {
        accumulate(e, p, g, &f_name(l, "2.bias"), e.bias_grad(&dpre)?)?;
        let dw2 = e.conv2d_backward_weight(&cache.hidden, &dpre, 1, 1, 0)?;
        accumulate(e, p, g, &f_name(l, "2.weight"), dw2)?;
        accumulate(e, p, g, &f_name(l, "0.bias"), e.bias_grad(&dh)?)?;
        let dw0 = e.conv2d_backward_weight(&cache.x, &dh, 1, 1, 0)?;
        accumulate(e, p, g, &f_name(l, "0.weight"), dw0)?;
    }
    Ok(dx)
}
