//! G: the official StyleGAN2-style encoder/decoder (one downsampling, 3 + 3 ResBlocks).

use super::ParamMap;
use super::layers::{
    Act, Backprop, ConvCache, ConvLayer, ResBlock, ResCache, StyledCache, StyledConvUp,
};
use crate::config::ModelConfig;
use crate::tensor::Real;
use ndarray::Array4;
use std::sync::Arc;

/// The generator's layers. Encoder index i is official `encoder.convs.i` (0 is the identity).
#[derive(Clone, Debug)]
pub struct Generator {
    pub stem: ConvLayer,
    pub enc_blocks: Vec<ResBlock>,
    pub dec_blocks: Vec<ResBlock>,
    pub up: StyledConvUp,
    pub to_rgb: ConvLayer,
}

/// What a full forward keeps for its backward.
pub struct GenCache<T> {
    stem: ConvCache<T>,
    enc: Vec<ResCache<T>>,
    dec: Vec<ResCache<T>>,
    up: StyledCache<T>,
    rgb: ConvCache<T>,
}

/// What an encoder-only forward (up to the deepest NCE layer) keeps.
pub struct EncCache<T> {
    stem: ConvCache<T>,
    enc: Vec<ResCache<T>>,
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

    /// Full forward: image (N,3,H,W) → output (N,3,H,W); also the encoder features of layers
    /// 0, 2, 4 (the NCE keys), and the cache for backward. `noise` (N,1,H,W).
    pub fn forward<T: Real>(
        &self,
        p: &ParamMap<T>,
        x: &Act<T>,
        noise: Option<&Act<T>>,
    ) -> (Act<T>, [Act<T>; 3], GenCache<T>) {
        let (h, stem) = self.stem.forward(p, x);
        let mut feats = vec![x.clone()];
        let mut h = h;
        let mut enc = Vec::new();
        for (i, b) in self.enc_blocks.iter().enumerate() {
            let (o, c) = b.forward(p, &h);
            h = o;
            enc.push(c);
            if i + 2 == 2 || i + 2 == 4 {
                feats.push(h.clone());
            }
        }
        let mut dec = Vec::new();
        for b in &self.dec_blocks {
            let (o, c) = b.forward(p, &h);
            h = o;
            dec.push(c);
        }
        let (h, up) = self.up.forward(p, &h, noise);
        let (y, rgb) = self.to_rgb.forward(p, &h);
        let feats: [Act<T>; 3] = feats.try_into().ok().unwrap();
        (
            y,
            feats,
            GenCache {
                stem,
                enc,
                dec,
                up,
                rgb,
            },
        )
    }

    /// Forward only (no caches kept beyond each layer).
    pub fn infer<T: Real>(&self, p: &ParamMap<T>, x: &Act<T>, noise: Option<&Act<T>>) -> Act<T> {
        let mut h = self.stem.infer(p, x);
        for b in self.enc_blocks.iter().chain(&self.dec_blocks) {
            h = b.forward(p, &h).0;
        }
        let h = self.up.forward(p, &h, noise).0;
        self.to_rgb.infer(p, &h)
    }

    /// Encoder up to layer 4: the features of layers 0, 2, 4 and the cache for `encoder_backward`.
    pub fn encode<T: Real>(&self, p: &ParamMap<T>, x: &Act<T>) -> ([Act<T>; 3], EncCache<T>) {
        let (h1, stem) = self.stem.forward(p, x);
        let (h2, c2) = self.enc_blocks[0].forward(p, &h1);
        let (h3, c3) = self.enc_blocks[1].forward(p, &h2);
        let (h4, c4) = self.enc_blocks[2].forward(p, &h3);
        (
            [x.clone(), h2, h4],
            EncCache {
                stem,
                enc: vec![c2, c3, c4],
            },
        )
    }

    /// Backward of `encode` from gradients at the features of layers 2 and 4 (None = zero);
    /// returns the gradient w.r.t. the image (the layer-0 feature's gradient is the caller's).
    pub fn encoder_backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &EncCache<T>,
        d2: Array4<T>,
        d4: Array4<T>,
        bp: &mut Backprop<T>,
    ) -> Array4<T> {
        let d = self.enc_blocks[2]
            .backward(p, &cache.enc[2], d4, bp, true)
            .unwrap();
        let mut d = self.enc_blocks[1]
            .backward(p, &cache.enc[1], d, bp, true)
            .unwrap();
        d += &d2;
        let d = self.enc_blocks[0]
            .backward(p, &cache.enc[0], d, bp, true)
            .unwrap();
        self.stem.backward(p, &cache.stem, d, bp, true).unwrap()
    }

    /// Backward of `forward` from the output gradient; returns the gradient w.r.t. the image
    /// when `need_dx`.
    pub fn backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &GenCache<T>,
        dy: Array4<T>,
        bp: &mut Backprop<T>,
        need_dx: bool,
    ) -> Option<Array4<T>> {
        let d = self.to_rgb.backward(p, &cache.rgb, dy, bp, true).unwrap();
        let mut d = self.up.backward(p, &cache.up, d, bp, true).unwrap();
        for (b, c) in self.dec_blocks.iter().zip(&cache.dec).rev() {
            d = b.backward(p, c, d, bp, true).unwrap();
        }
        for (b, c) in self.enc_blocks.iter().zip(&cache.enc).rev() {
            d = b.backward(p, c, d, bp, true).unwrap();
        }
        self.stem.backward(p, &cache.stem, d, bp, need_dx)
    }
}

/// Convenience: wrap an owned array as an activation.
pub fn act<T: Real>(a: Array4<T>) -> Act<T> {
    Arc::new(a)
}
