//! G: the official StyleGAN2-style encoder/decoder (one downsampling, 3 + 3 ResBlocks), and
//! its passes over [`Backend`].

use super::layers::{
    Act, Backprop, ConvCache, ConvLayer, ResBlock, ResCache, StyledCache, StyledConvUp,
    conv_backward, conv_forward, need, res_backward, res_forward, styled_backward, styled_forward,
};
use crate::backend::{Backend, Params};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use std::rc::Rc;

/// The generator's layers. Encoder index i is official `encoder.convs.i` (0 is the identity).
#[derive(Clone, Debug)]
pub struct Generator {
    pub stem: ConvLayer,
    pub enc_blocks: Vec<ResBlock>,
    pub dec_blocks: Vec<ResBlock>,
    pub up: StyledConvUp,
    pub to_rgb: ConvLayer,
}

impl Generator {
    pub fn new(cfg: &ModelConfig) -> Self {
        let r = cfg.model_resolution;
        let (c_hi, c_lo) = (cfg.g_channels(r), cfg.g_channels(r / 2));
        let mut enc_blocks = vec![ResBlock::new("G.encoder.convs.2", c_hi, c_lo, true)];
        for i in 3..6 {
            enc_blocks.push(ResBlock::new(
                &format!("G.encoder.convs.{i}"),
                c_lo,
                c_lo,
                false,
            ));
        }
        let dec_blocks = (0..3)
            .map(|i| ResBlock::new(&format!("G.decoder.convs.{i}"), c_lo, c_lo, false))
            .collect();
        Generator {
            stem: ConvLayer::new("G.encoder.convs.1", 3, c_hi, 1, false, true, true),
            enc_blocks,
            dec_blocks,
            up: StyledConvUp {
                prefix: "G.decoder.convs.3".into(),
                cin: c_lo,
                cout: c_hi,
            },
            to_rgb: ConvLayer::new("G.decoder.convs.4", c_hi, 3, 1, false, true, true),
        }
    }

    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = self.stem.param_shapes(false);
        for b in self.enc_blocks.iter().chain(&self.dec_blocks) {
            v.extend(b.param_shapes());
        }
        v.extend(self.up.param_shapes());
        v.extend(self.to_rgb.param_shapes(false));
        v
    }
}

/// What a full forward of G keeps for its backward.
pub struct GenCache<B: Backend> {
    stem: ConvCache<B>,
    enc: Vec<ResCache<B>>,
    dec: Vec<ResCache<B>>,
    up: StyledCache<B>,
    rgb: ConvCache<B>,
}

/// What an encoder-only forward (up to the deepest NCE layer) keeps.
pub struct EncCache<B: Backend> {
    stem: ConvCache<B>,
    enc: Vec<ResCache<B>>,
}

/// G's full forward: output, the NCE features of layers 0, 2, 4, and the cache.
#[allow(clippy::type_complexity)]
pub fn g_forward<B: Backend>(
    e: &B,
    g: &Generator,
    p: &Params<B>,
    x: &Act<B>,
    noise: Option<&Act<B>>,
) -> Result<(Act<B>, [Act<B>; 3], GenCache<B>)> {
    let (mut h, stem) = conv_forward(e, &g.stem, p, x)?;
    let mut feats = vec![x.clone()];
    let mut enc = Vec::new();
    for (i, b) in g.enc_blocks.iter().enumerate() {
        let (o, c) = res_forward(e, b, p, &h)?;
        h = o;
        enc.push(c);
        // Encoder block i is official layer i + 2; NCE takes layers 2 and 4.
        if i + 2 == 2 || i + 2 == 4 {
            feats.push(h.clone());
        }
    }
    let mut dec = Vec::new();
    for b in &g.dec_blocks {
        let (o, c) = res_forward(e, b, p, &h)?;
        h = o;
        dec.push(c);
    }
    let (h, up) = styled_forward(e, &g.up, p, &h, noise)?;
    let (y, rgb) = conv_forward(e, &g.to_rgb, p, &h)?;
    let feats: [Act<B>; 3] = feats
        .try_into()
        .map_err(|_| Error::new("G: expected three NCE features"))?;
    Ok((
        y,
        feats,
        GenCache {
            stem,
            enc,
            dec,
            up,
            rgb,
        },
    ))
}

/// G's forward without keeping anything (render).
pub fn g_infer<B: Backend>(
    e: &B,
    g: &Generator,
    p: &Params<B>,
    x: &Act<B>,
    noise: Option<&Act<B>>,
) -> Result<B::Tensor> {
    let mut h = conv_forward(e, &g.stem, p, x)?.0;
    for b in g.enc_blocks.iter().chain(&g.dec_blocks) {
        h = res_forward(e, b, p, &h)?.0;
    }
    let h = styled_forward(e, &g.up, p, &h, noise)?.0;
    let y = conv_forward(e, &g.to_rgb, p, &h)?.0;
    drop(h);
    Rc::try_unwrap(y).or_else(|y| e.copy(&y))
}

/// The encoder up to layer 4: the features of layers 0, 2, 4 and the cache.
pub fn g_encode<B: Backend>(
    e: &B,
    g: &Generator,
    p: &Params<B>,
    x: &Act<B>,
) -> Result<([Act<B>; 3], EncCache<B>)> {
    let (h1, stem) = conv_forward(e, &g.stem, p, x)?;
    let (h2, c2) = res_forward(e, &g.enc_blocks[0], p, &h1)?;
    let (h3, c3) = res_forward(e, &g.enc_blocks[1], p, &h2)?;
    let (h4, c4) = res_forward(e, &g.enc_blocks[2], p, &h3)?;
    Ok((
        [x.clone(), h2, h4],
        EncCache {
            stem,
            enc: vec![c2, c3, c4],
        },
    ))
}

/// Backward of `g_encode` from the gradients at the features of layers 2 and 4; returns the
/// gradient w.r.t. the image (the layer-0 feature's gradient is the caller's).
pub fn g_encoder_backward<B: Backend>(
    e: &B,
    g: &Generator,
    p: &Params<B>,
    cache: &EncCache<B>,
    d2: &B::Tensor,
    d4: B::Tensor,
    bp: &mut Backprop<B>,
) -> Result<B::Tensor> {
    let d = need(res_backward(
        e,
        &g.enc_blocks[2],
        p,
        &cache.enc[2],
        d4,
        bp,
        true,
    )?)?;
    let mut d = need(res_backward(
        e,
        &g.enc_blocks[1],
        p,
        &cache.enc[1],
        d,
        bp,
        true,
    )?)?;
    e.add_into(&mut d, 0, d2)?;
    let d = need(res_backward(
        e,
        &g.enc_blocks[0],
        p,
        &cache.enc[0],
        d,
        bp,
        true,
    )?)?;
    need(conv_backward(e, &g.stem, p, &cache.stem, &d, bp, true)?)
}

/// Backward of `g_forward` from the output gradient.
pub fn g_backward<B: Backend>(
    e: &B,
    g: &Generator,
    p: &Params<B>,
    cache: &GenCache<B>,
    dy: B::Tensor,
    bp: &mut Backprop<B>,
    need_dx: bool,
) -> Result<Option<B::Tensor>> {
    let d = need(conv_backward(e, &g.to_rgb, p, &cache.rgb, &dy, bp, true)?)?;
    let mut d = need(styled_backward(e, &g.up, p, &cache.up, d, bp, true)?)?;
    for (b, c) in g.dec_blocks.iter().zip(&cache.dec).rev() {
        d = need(res_backward(e, b, p, c, d, bp, true)?)?;
    }
    for (b, c) in g.enc_blocks.iter().zip(&cache.enc).rev() {
        d = need(res_backward(e, b, p, c, d, bp, true)?)?;
    }
    conv_backward(e, &g.stem, p, &cache.stem, &d, bp, need_dx)
}
