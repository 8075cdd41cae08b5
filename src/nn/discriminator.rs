//! D: the official StyleGAN2 discriminator built for one window size (no minibatch stddev).

use super::ParamMap;
use super::layers::{Act, Backprop, ConvCache, ConvLayer, R1Pairing, ResBlock, ResCache};
use crate::config::ModelConfig;
use crate::tensor::Real;
use ndarray::Array4;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Discriminator {
    pub stem: ConvLayer,
    pub blocks: Vec<ResBlock>,
    pub final_conv: ConvLayer,
    pub linear1: ConvLayer,
    pub linear2: ConvLayer,
    /// Channels of the last 4×4 feature map.
    c4: usize,
}

pub struct DiscCache<T> {
    stem: ConvCache<T>,
    blocks: Vec<ResCache<T>>,
    final_conv: ConvCache<T>,
    l1: ConvCache<T>,
    l2: ConvCache<T>,
    n: usize,
}

impl Discriminator {
    pub fn new(cfg: &ModelConfig) -> Self {
        let s = cfg.d_window;
        let mut blocks = Vec::new();
        let mut cin = cfg.d_channels(s);
        let mut idx = 1;
        let mut r = s;
        while r > 4 {
            let cout = cfg.d_channels(r / 2);
            blocks.push(ResBlock::new(&format!("D.convs.{idx}"), cin, cout, true));
            cin = cout;
            idx += 1;
            r /= 2;
        }
        let c4 = cfg.d_channels(4);
        Discriminator {
            stem: ConvLayer::new("D.convs.0", 3, cfg.d_channels(s), 1, false, true, true),
            blocks,
            final_conv: ConvLayer::new("D.final_conv", cin, c4, 3, false, true, true),
            linear1: ConvLayer::linear("D.final_linear.0", c4 * 16, c4, true),
            linear2: ConvLayer::linear("D.final_linear.1", c4, 1, false),
            c4,
        }
    }

    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = self.stem.param_shapes(false);
        for b in &self.blocks {
            v.extend(b.param_shapes());
        }
        v.extend(self.final_conv.param_shapes(false));
        v.extend(self.linear1.param_shapes(true));
        v.extend(self.linear2.param_shapes(true));
        v
    }

    fn flatten<T: Real>(&self, x: &Array4<T>) -> Array4<T> {
        let n = x.shape()[0];
        x.as_standard_layout()
            .to_owned()
            .into_shape_with_order((n, self.c4 * 16, 1, 1))
            .unwrap()
    }

    /// Windows (N,3,S,S) → one logit each (N).
    pub fn forward<T: Real>(&self, p: &ParamMap<T>, x: &Act<T>) -> (Vec<T>, DiscCache<T>) {
        let n = x.shape()[0];
        let (mut h, stem) = self.stem.forward(p, x);
        let mut blocks = Vec::new();
        for b in &self.blocks {
            let (o, c) = b.forward(p, &h);
            h = o;
            blocks.push(c);
        }
        let (h, final_conv) = self.final_conv.forward(p, &h);
        let flat = Arc::new(self.flatten(&h));
        drop(h);
        let (h, l1) = self.linear1.forward(p, &flat);
        let (y, l2) = self.linear2.forward(p, &h);
        let logits = y.iter().copied().collect();
        (
            logits,
            DiscCache {
                stem,
                blocks,
                final_conv,
                l1,
                l2,
                n,
            },
        )
    }

    /// Backward from d(loss)/d(logit) per window; returns the gradient w.r.t. the windows.
    pub fn backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &DiscCache<T>,
        dlogits: &[T],
        bp: &mut Backprop<T>,
        need_dx: bool,
    ) -> Option<Array4<T>> {
        let dy = Array4::from_shape_vec((cache.n, 1, 1, 1), dlogits.to_vec()).unwrap();
        let d = self.linear2.backward(p, &cache.l2, dy, bp, true).unwrap();
        let d = self.linear1.backward(p, &cache.l1, d, bp, true).unwrap();
        let d = d.into_shape_with_order((cache.n, self.c4, 4, 4)).unwrap();
        let mut d = self
            .final_conv
            .backward(p, &cache.final_conv, d, bp, true)
            .unwrap();
        for (b, c) in self.blocks.iter().zip(&cache.blocks).rev() {
            d = b.backward(p, c, d, bp, true).unwrap();
        }
        self.stem.backward(p, &cache.stem, d, bp, need_dx)
    }

    /// Tangent pass of the input direction `t` through the primal's slopes, pairing each conv's
    /// tangent input with its recorded backward signal (R1's weight gradients).
    pub fn tangent<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &DiscCache<T>,
        t: &Array4<T>,
        r1: &mut R1Pairing<T>,
    ) {
        let mut h = self.stem.tangent(p, &cache.stem, t, r1);
        for (b, c) in self.blocks.iter().zip(&cache.blocks) {
            h = b.tangent(p, c, &h, r1);
        }
        let h = self.final_conv.tangent(p, &cache.final_conv, &h, r1);
        let flat = self.flatten(&h);
        let h = self.linear1.tangent(p, &cache.l1, &flat, r1);
        self.linear2.tangent(p, &cache.l2, &h, r1);
    }
}
