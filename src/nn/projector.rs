//! F: per NCE layer an MLP Linear(c→nc), ReLU, Linear(nc→nc) (ordinary PyTorch Linear layers),
//! outputs L2-normalised.

use super::ParamMap;
use super::layers::{accumulate, param};
use crate::ops::bias::{add_bias, bias_grad};
use crate::ops::conv2d::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use crate::ops::l2norm::{l2norm_backward, l2norm_forward};
use crate::ops::relu::{relu_backward, relu_forward};
use crate::tensor::Real;
use ndarray::{Array2, Array4, ArrayView4};

#[derive(Clone, Debug)]
pub struct Projector {
    /// Input width of each NCE layer's MLP.
    pub in_channels: Vec<usize>,
    pub nc: usize,
}

pub struct ProjCache<T> {
    x: Array4<T>,
    hidden: Array4<T>,
    pre: Array2<T>,
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

    fn w<'p, T: Real>(
        &self,
        p: &'p ParamMap<T>,
        l: usize,
        i: usize,
        cin: usize,
    ) -> ArrayView4<'p, T> {
        ArrayView4::from_shape(
            (self.nc, cin, 1, 1),
            param(p, &format!("F.mlp_{l}.{i}.weight")),
        )
        .unwrap()
    }

    /// Rows (B, C) of layer `l`'s features → normalised projections (B, nc).
    pub fn forward<T: Real>(
        &self,
        p: &ParamMap<T>,
        l: usize,
        rows: &Array2<T>,
    ) -> (Array2<T>, ProjCache<T>) {
        let (b, c) = rows.dim();
        let x = rows.clone().into_shape_with_order((b, c, 1, 1)).unwrap();
        let mut hidden = conv2d_forward(&x, self.w(p, l, 0, c), 1, 0);
        add_bias(&mut hidden, param(p, &format!("F.mlp_{l}.0.bias")));
        relu_forward(&mut hidden);
        let mut out = conv2d_forward(&hidden, self.w(p, l, 2, self.nc), 1, 0);
        add_bias(&mut out, param(p, &format!("F.mlp_{l}.2.bias")));
        let pre = out.into_shape_with_order((b, self.nc)).unwrap();
        (l2norm_forward(&pre), ProjCache { x, hidden, pre })
    }

    /// Backward from the normalised output's gradient; accumulates F's gradients (when given)
    /// and returns the gradient w.r.t. the rows.
    pub fn backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        l: usize,
        cache: &ProjCache<T>,
        dy: &Array2<T>,
        grads: Option<&mut ParamMap<T>>,
    ) -> Array2<T> {
        let (b, c) = (cache.x.shape()[0], cache.x.shape()[1]);
        let dpre = l2norm_backward(&cache.pre, dy)
            .into_shape_with_order((b, self.nc, 1, 1))
            .unwrap();
        let mut dh = conv2d_backward_input(&dpre, self.w(p, l, 2, self.nc), 1, 0, (1, 1));
        relu_backward(&cache.hidden, &mut dh);
        let dx = conv2d_backward_input(&dh, self.w(p, l, 0, c), 1, 0, (1, 1));
        if let Some(g) = grads {
            accumulate(g, &format!("F.mlp_{l}.2.bias"), &bias_grad(&dpre));
            let dw2 = conv2d_backward_weight(&cache.hidden, &dpre, 1, 1, 0);
            accumulate(g, &format!("F.mlp_{l}.2.weight"), dw2.as_slice().unwrap());
            accumulate(g, &format!("F.mlp_{l}.0.bias"), &bias_grad(&dh));
            let dw0 = conv2d_backward_weight(&cache.x, &dh, 1, 1, 0);
            accumulate(g, &format!("F.mlp_{l}.0.weight"), dw0.as_slice().unwrap());
        }
        dx.into_shape_with_order((b, c)).unwrap()
    }
}
