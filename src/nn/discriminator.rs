//! D: the official StyleGAN2 discriminator built for one window size (no minibatch stddev),
//! and its passes over [`Backend`].

use super::layers::{
    Act, Backprop, ConvCache, ConvLayer, R1Pairing, ResBlock, ResCache, conv_backward,
    conv_forward, conv_tangent, need, res_backward, res_forward, res_tangent,
};
use crate::backend::{Backend, Params};
use crate::config::ModelConfig;
use crate::error::Result;
use std::rc::Rc;

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
}

pub struct DiscCache<B: Backend> {
    stem: ConvCache<B>,
    blocks: Vec<ResCache<B>>,
    final_conv: ConvCache<B>,
    l1: ConvCache<B>,
    l2: ConvCache<B>,
    n: usize,
}

/// Windows (N,3,S,S) → logits (N,1,1,1) and the cache.
pub fn d_forward<B: Backend>(
    e: &B,
    d: &Discriminator,
    p: &Params<B>,
    x: &Act<B>,
) -> Result<(B::Tensor, DiscCache<B>)> {
    let n = e.shape(x)[0];
    let (mut h, stem) = conv_forward(e, &d.stem, p, x)?;
    let mut blocks = Vec::new();
    for b in &d.blocks {
        let (o, c) = res_forward(e, b, p, &h)?;
        h = o;
        blocks.push(c);
    }
    let (h, final_conv) = conv_forward(e, &d.final_conv, p, &h)?;
    // The final conv's cache keeps its output for the slope: flatten a copy.
    let flat = Rc::new(e.reshape(e.copy(&h)?, [n, d.linear1.cin, 1, 1])?);
    drop(h);
    let (h, l1) = conv_forward(e, &d.linear1, p, &flat)?;
    let (y, l2) = conv_forward(e, &d.linear2, p, &h)?;
    drop(h);
    let logits = Rc::try_unwrap(y).or_else(|y| e.copy(&y))?;
    Ok((
        logits,
        DiscCache {
            stem,
            blocks,
            final_conv,
            l1,
            l2,
            n,
        },
    ))
}

/// Backward from d(loss)/d(logit) (N values); returns the gradient w.r.t. the windows.
pub fn d_backward<B: Backend>(
    e: &B,
    d: &Discriminator,
    p: &Params<B>,
    cache: &DiscCache<B>,
    dlogits: B::Tensor,
    bp: &mut Backprop<B>,
    need_dx: bool,
) -> Result<Option<B::Tensor>> {
    let dy = e.reshape(dlogits, [cache.n, 1, 1, 1])?;
    let g = need(conv_backward(e, &d.linear2, p, &cache.l2, &dy, bp, true)?)?;
    let g = need(conv_backward(e, &d.linear1, p, &cache.l1, &g, bp, true)?)?;
    let g = e.reshape(g, [cache.n, d.c4, 4, 4])?;
    let mut g = need(conv_backward(
        e,
        &d.final_conv,
        p,
        &cache.final_conv,
        &g,
        bp,
        true,
    )?)?;
    for (b, c) in d.blocks.iter().zip(&cache.blocks).rev() {
        g = need(res_backward(e, b, p, c, g, bp, true)?)?;
    }
    conv_backward(e, &d.stem, p, &cache.stem, &g, bp, need_dx)
}

/// Tangent pass of the input direction `t` through the primal's slopes (R1's weight gradients).
pub fn d_tangent<B: Backend>(
    e: &B,
    d: &Discriminator,
    p: &Params<B>,
    cache: &DiscCache<B>,
    t: &B::Tensor,
    r1: &mut R1Pairing<B>,
) -> Result<()> {
    let mut h = conv_tangent(e, &d.stem, p, &cache.stem, t, r1)?;
    for (b, c) in d.blocks.iter().zip(&cache.blocks) {
        h = res_tangent(e, b, p, c, &h, r1)?;
    }
    let h = conv_tangent(e, &d.final_conv, p, &cache.final_conv, &h, r1)?;
    let flat = e.reshape(h, [cache.n, d.linear1.cin, 1, 1])?;
    let h = conv_tangent(e, &d.linear1, p, &cache.l1, &flat, r1)?;
    conv_tangent(e, &d.linear2, p, &cache.l2, &h, r1)?;
    Ok(())
}
