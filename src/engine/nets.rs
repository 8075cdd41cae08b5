//! The networks on an [`Engine`]: the layers of `crate::nn` (the same layer descriptions and
//! parameter names) with forward, backward and R1's tangent pass written over the engine's ops,
//! in the reference's operation order (so that on the CPU engine they agree bit for bit).

use super::{Engine, Params};
use crate::error::{Error, Result};
use crate::nn::layers::{Bias, ConvLayer, ResBlock, StyledConvUp};
use crate::nn::{Discriminator, Generator, Projector};
use crate::ops::blur::Blur;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// An activation shared between the layer that made it and the caches that keep it.
pub type Act<E> = Rc<<E as Engine>::Tensor>;

/// A parameter by name (a missing one is an error, not a panic: parameters may come from files).
pub fn param<'p, T>(p: &'p BTreeMap<String, T>, name: &str) -> Result<&'p T> {
    p.get(name)
        .ok_or_else(|| Error::new(format!("missing parameter {name}")))
}

/// Adds `g` to the gradient named `name`, shaped as the parameter (the first contribution is
/// moved in: 0 + g = g exactly, as the reference's zero-initialised accumulation).
pub fn accumulate<E: Engine>(
    e: &E,
    p: &Params<E>,
    grads: &mut Params<E>,
    name: &str,
    g: E::Tensor,
) -> Result<()> {
    match grads.get_mut(name) {
        Some(dst) => e.add_into(dst, 0, &g),
        None => {
            let shape = e.shape(param(p, name)?);
            grads.insert(name.to_string(), e.reshape(g, shape)?);
            Ok(())
        }
    }
}

/// What a backward pass does besides propagating the input gradient (as `nn::layers::Backprop`).
pub struct Backprop<'a, E: Engine> {
    /// Accumulate parameter gradients here (None: the network is frozen).
    pub grads: Option<&'a mut Params<E>>,
    /// Keep each conv's output-side gradient by weight name (R1's backward signals).
    pub record: Option<&'a mut HashMap<String, E::Tensor>>,
}

impl<'a, E: Engine> Backprop<'a, E> {
    pub fn grads(grads: &'a mut Params<E>) -> Self {
        Backprop {
            grads: Some(grads),
            record: None,
        }
    }
    pub fn frozen() -> Self {
        Backprop {
            grads: None,
            record: None,
        }
    }
}

/// Pairs the tangent pass with the recorded backward signals to form R1's weight gradients.
pub struct R1Pairing<'a, E: Engine> {
    pub signals: &'a HashMap<String, E::Tensor>,
    pub grads: &'a mut Params<E>,
}

// ---------------------------------------------------------------------------------------------
// EqualConv2d / EqualLinear with blur and activation.

pub struct ConvCache<E: Engine> {
    /// The input (before the blur when downsampling; backward recomputes the blur).
    x: Act<E>,
    /// The output after the activation (its sign gives the slope).
    y: Option<Act<E>>,
}

/// The weight as used: raw·scale, (Cout, Cin, k, k).
fn weight_eff<E: Engine>(e: &E, l: &ConvLayer, p: &Params<E>) -> Result<E::Tensor> {
    e.scale(param(p, &l.weight)?, l.scale() as f32)
}

pub fn conv_forward<E: Engine>(
    e: &E,
    l: &ConvLayer,
    p: &Params<E>,
    x: &Act<E>,
) -> Result<(Act<E>, ConvCache<E>)> {
    let w = weight_eff(e, l, p)?;
    let mut y = if l.down {
        e.conv2d(&e.blur(&l.blur(), x)?, &w, l.stride(), l.pad())?
    } else {
        e.conv2d(x, &w, l.stride(), l.pad())?
    };
    match &l.bias {
        Bias::Act(b) => e.fused_lrelu(&mut y, param(p, b)?)?,
        Bias::Plain(b) => e.add_bias(&mut y, param(p, b)?)?,
        Bias::None => {}
    }
    let y = Rc::new(y);
    let keep_y = matches!(l.bias, Bias::Act(_)).then(|| y.clone());
    Ok((
        y,
        ConvCache {
            x: x.clone(),
            y: keep_y,
        },
    ))
}

fn slope_y<E: Engine>(c: &ConvCache<E>) -> Result<&E::Tensor> {
    c.y.as_deref()
        .ok_or_else(|| Error::new("conv cache lacks the activation output"))
}

pub fn conv_backward<E: Engine>(
    e: &E,
    l: &ConvLayer,
    p: &Params<E>,
    cache: &ConvCache<E>,
    mut dy: E::Tensor,
    bp: &mut Backprop<E>,
    need_dx: bool,
) -> Result<Option<E::Tensor>> {
    match &l.bias {
        Bias::Act(b) => {
            let db = e.fused_lrelu_backward(slope_y(cache)?, &mut dy)?;
            if let Some(g) = bp.grads.as_deref_mut() {
                accumulate(e, p, g, b, db)?;
            }
        }
        Bias::Plain(b) => {
            if let Some(g) = bp.grads.as_deref_mut() {
                accumulate(e, p, g, b, e.bias_grad(&dy)?)?;
            }
        }
        Bias::None => {}
    }
    if let Some(g) = bp.grads.as_deref_mut() {
        let blurred;
        let xin: &E::Tensor = if l.down {
            blurred = e.blur(&l.blur(), &cache.x)?;
            &blurred
        } else {
            &cache.x
        };
        let dw = e.conv2d_backward_weight(xin, &dy, l.k, l.stride(), l.pad())?;
        accumulate(e, p, g, &l.weight, e.scale(&dw, l.scale() as f32)?)?;
    }
    let dx = if need_dx {
        let w = weight_eff(e, l, p)?;
        let [_, _, h, wd] = e.shape(&cache.x);
        let blur = l.blur();
        let hw = if l.down {
            (blur.out_len(h), blur.out_len(wd))
        } else {
            (h, wd)
        };
        let dxin = e.conv2d_backward_input(&dy, &w, l.stride(), l.pad(), hw)?;
        Some(if l.down {
            e.blur_backward(&blur, &dxin, (h, wd))?
        } else {
            dxin
        })
    } else {
        None
    };
    if let Some(r) = bp.record.as_deref_mut() {
        r.insert(l.weight.clone(), dy);
    }
    Ok(dx)
}

/// Tangent pass (no bias, primal slopes), accumulating R1's weight gradient where a backward
/// signal was recorded for this weight.
pub fn conv_tangent<E: Engine>(
    e: &E,
    l: &ConvLayer,
    p: &Params<E>,
    cache: &ConvCache<E>,
    t: &E::Tensor,
    r1: &mut R1Pairing<E>,
) -> Result<E::Tensor> {
    let blurred;
    let tin: &E::Tensor = if l.down {
        blurred = e.blur(&l.blur(), t)?;
        &blurred
    } else {
        t
    };
    let w = weight_eff(e, l, p)?;
    let mut out = e.conv2d(tin, &w, l.stride(), l.pad())?;
    if let Bias::Act(_) = l.bias {
        e.fused_lrelu_tangent(slope_y(cache)?, &mut out)?;
    }
    if let Some(u) = r1.signals.get(&l.weight) {
        let dw = e.conv2d_backward_weight(tin, u, l.k, l.stride(), l.pad())?;
        accumulate(e, p, r1.grads, &l.weight, e.scale(&dw, l.scale() as f32)?)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// ResBlock.

pub struct ResCache<E: Engine> {
    c1: ConvCache<E>,
    c2: ConvCache<E>,
    skip: Option<ConvCache<E>>,
}

pub fn res_forward<E: Engine>(
    e: &E,
    b: &ResBlock,
    p: &Params<E>,
    x: &Act<E>,
) -> Result<(Act<E>, ResCache<E>)> {
    let (h1, c1) = conv_forward(e, &b.conv1, p, x)?;
    let (h2, c2) = conv_forward(e, &b.conv2, p, &h1)?;
    drop(h1);
    let (s, cs) = match &b.skip {
        Some(sk) => {
            let (s, cs) = conv_forward(e, sk, p, x)?;
            (s, Some(cs))
        }
        None => (x.clone(), None),
    };
    // conv2's output is also kept by its cache (for the slope): sum into a copy.
    let mut out = e.copy(&h2)?;
    e.residual(&mut out, &s)?;
    Ok((Rc::new(out), ResCache { c1, c2, skip: cs }))
}

pub fn res_backward<E: Engine>(
    e: &E,
    b: &ResBlock,
    p: &Params<E>,
    cache: &ResCache<E>,
    mut dy: E::Tensor,
    bp: &mut Backprop<E>,
    need_dx: bool,
) -> Result<Option<E::Tensor>> {
    e.residual_backward(&mut dy)?;
    let dskip = match (&b.skip, &cache.skip) {
        (Some(sk), Some(cs)) => conv_backward(e, sk, p, cs, e.copy(&dy)?, bp, need_dx)?,
        _ if need_dx => Some(e.copy(&dy)?),
        _ => None,
    };
    let dh1 = conv_backward(e, &b.conv2, p, &cache.c2, dy, bp, true)?
        .ok_or_else(|| Error::new("conv2 backward returned no input gradient"))?;
    let dx = conv_backward(e, &b.conv1, p, &cache.c1, dh1, bp, need_dx)?;
    Ok(match (dx, dskip) {
        (Some(mut a), Some(s)) => {
            e.add_into(&mut a, 0, &s)?;
            Some(a)
        }
        _ => None,
    })
}

pub fn res_tangent<E: Engine>(
    e: &E,
    b: &ResBlock,
    p: &Params<E>,
    cache: &ResCache<E>,
    t: &E::Tensor,
    r1: &mut R1Pairing<E>,
) -> Result<E::Tensor> {
    let h1 = conv_tangent(e, &b.conv1, p, &cache.c1, t, r1)?;
    let mut out = conv_tangent(e, &b.conv2, p, &cache.c2, &h1, r1)?;
    let s = match (&b.skip, &cache.skip) {
        (Some(sk), Some(cs)) => conv_tangent(e, sk, p, cs, t, r1)?,
        _ => e.copy(t)?,
    };
    e.residual(&mut out, &s)?;
    Ok(out)
}

/// A backward pass that must return the input gradient.
fn need<T>(v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::new("backward pass returned no input gradient"))
}

// ---------------------------------------------------------------------------------------------
// The decoder's upsampling StyledConv.

pub struct StyledCache<E: Engine> {
    x: Act<E>,
    noise: Option<Act<E>>,
    y: Act<E>,
}

/// The demodulated weight in conv_transpose layout (Cin, Cout, 3, 3).
fn styled_weight_t<E: Engine>(e: &E, s: &StyledConvUp, p: &Params<E>) -> Result<E::Tensor> {
    e.swap01(&e.demod(param(p, &s.w())?)?)
}

pub fn styled_forward<E: Engine>(
    e: &E,
    s: &StyledConvUp,
    p: &Params<E>,
    x: &Act<E>,
    noise: Option<&Act<E>>,
) -> Result<(Act<E>, StyledCache<E>)> {
    let wt = styled_weight_t(e, s, p)?;
    let up = e.conv_transpose2d(x, &wt, 2)?;
    let mut y = e.blur(&Blur::UP, &up)?;
    drop(up);
    if let Some(n) = noise {
        e.noise(&mut y, param(p, &s.nw())?, n)?;
    }
    e.fused_lrelu(&mut y, param(p, &s.b())?)?;
    let y = Rc::new(y);
    Ok((
        y.clone(),
        StyledCache {
            x: x.clone(),
            noise: noise.cloned(),
            y,
        },
    ))
}

pub fn styled_backward<E: Engine>(
    e: &E,
    s: &StyledConvUp,
    p: &Params<E>,
    cache: &StyledCache<E>,
    mut dy: E::Tensor,
    bp: &mut Backprop<E>,
    need_dx: bool,
) -> Result<Option<E::Tensor>> {
    let db = e.fused_lrelu_backward(&cache.y, &mut dy)?;
    if let Some(g) = bp.grads.as_deref_mut() {
        accumulate(e, p, g, &s.b(), db)?;
        let dnw = match &cache.noise {
            Some(n) => e.noise_backward_weight(&dy, n)?,
            None => e.zeros([1, 1, 1, 1])?,
        };
        accumulate(e, p, g, &s.nw(), dnw)?;
    }
    let [_, _, h, w] = e.shape(&cache.x);
    let dup = e.blur_backward(&Blur::UP, &dy, (2 * h + 1, 2 * w + 1))?;
    if let Some(g) = bp.grads.as_deref_mut() {
        let dwt = e.conv_transpose2d_backward_weight(&cache.x, &dup, 3, 2)?;
        let dwd = e.swap01(&dwt)?;
        let dw = e.demod_backward(param(p, &s.w())?, &dwd)?;
        accumulate(e, p, g, &s.w(), dw)?;
    }
    if need_dx {
        let wt = styled_weight_t(e, s, p)?;
        Ok(Some(e.conv_transpose2d_backward_input(&dup, &wt, 2)?))
    } else {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// G.

/// What a full forward of G keeps for its backward.
pub struct GenCache<E: Engine> {
    stem: ConvCache<E>,
    enc: Vec<ResCache<E>>,
    dec: Vec<ResCache<E>>,
    up: StyledCache<E>,
    rgb: ConvCache<E>,
}

/// What an encoder-only forward (up to the deepest NCE layer) keeps.
pub struct EncCache<E: Engine> {
    stem: ConvCache<E>,
    enc: Vec<ResCache<E>>,
}

/// G's full forward: output, the NCE features of layers 0, 2, 4, and the cache.
#[allow(clippy::type_complexity)]
pub fn g_forward<E: Engine>(
    e: &E,
    g: &Generator,
    p: &Params<E>,
    x: &Act<E>,
    noise: Option<&Act<E>>,
) -> Result<(Act<E>, [Act<E>; 3], GenCache<E>)> {
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
    let feats: [Act<E>; 3] = feats
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
pub fn g_infer<E: Engine>(
    e: &E,
    g: &Generator,
    p: &Params<E>,
    x: &Act<E>,
    noise: Option<&Act<E>>,
) -> Result<E::Tensor> {
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
pub fn g_encode<E: Engine>(
    e: &E,
    g: &Generator,
    p: &Params<E>,
    x: &Act<E>,
) -> Result<([Act<E>; 3], EncCache<E>)> {
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
pub fn g_encoder_backward<E: Engine>(
    e: &E,
    g: &Generator,
    p: &Params<E>,
    cache: &EncCache<E>,
    d2: &E::Tensor,
    d4: E::Tensor,
    bp: &mut Backprop<E>,
) -> Result<E::Tensor> {
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
    need(conv_backward(e, &g.stem, p, &cache.stem, d, bp, true)?)
}

/// Backward of `g_forward` from the output gradient.
pub fn g_backward<E: Engine>(
    e: &E,
    g: &Generator,
    p: &Params<E>,
    cache: &GenCache<E>,
    dy: E::Tensor,
    bp: &mut Backprop<E>,
    need_dx: bool,
) -> Result<Option<E::Tensor>> {
    let d = need(conv_backward(e, &g.to_rgb, p, &cache.rgb, dy, bp, true)?)?;
    let mut d = need(styled_backward(e, &g.up, p, &cache.up, d, bp, true)?)?;
    for (b, c) in g.dec_blocks.iter().zip(&cache.dec).rev() {
        d = need(res_backward(e, b, p, c, d, bp, true)?)?;
    }
    for (b, c) in g.enc_blocks.iter().zip(&cache.enc).rev() {
        d = need(res_backward(e, b, p, c, d, bp, true)?)?;
    }
    conv_backward(e, &g.stem, p, &cache.stem, d, bp, need_dx)
}

// ---------------------------------------------------------------------------------------------
// D.

pub struct DiscCache<E: Engine> {
    stem: ConvCache<E>,
    blocks: Vec<ResCache<E>>,
    final_conv: ConvCache<E>,
    l1: ConvCache<E>,
    l2: ConvCache<E>,
    n: usize,
}

/// The last 4×4 feature map's channels (the first linear layer reads C4·16 inputs).
fn c4(d: &Discriminator) -> usize {
    d.linear1.cin / 16
}

/// Windows (N,3,S,S) → logits (N,1,1,1) and the cache.
pub fn d_forward<E: Engine>(
    e: &E,
    d: &Discriminator,
    p: &Params<E>,
    x: &Act<E>,
) -> Result<(E::Tensor, DiscCache<E>)> {
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
pub fn d_backward<E: Engine>(
    e: &E,
    d: &Discriminator,
    p: &Params<E>,
    cache: &DiscCache<E>,
    dlogits: E::Tensor,
    bp: &mut Backprop<E>,
    need_dx: bool,
) -> Result<Option<E::Tensor>> {
    let dy = e.reshape(dlogits, [cache.n, 1, 1, 1])?;
    let g = need(conv_backward(e, &d.linear2, p, &cache.l2, dy, bp, true)?)?;
    let g = need(conv_backward(e, &d.linear1, p, &cache.l1, g, bp, true)?)?;
    let g = e.reshape(g, [cache.n, c4(d), 4, 4])?;
    let mut g = need(conv_backward(
        e,
        &d.final_conv,
        p,
        &cache.final_conv,
        g,
        bp,
        true,
    )?)?;
    for (b, c) in d.blocks.iter().zip(&cache.blocks).rev() {
        g = need(res_backward(e, b, p, c, g, bp, true)?)?;
    }
    conv_backward(e, &d.stem, p, &cache.stem, g, bp, need_dx)
}

/// Tangent pass of the input direction `t` through the primal's slopes (R1's weight gradients).
pub fn d_tangent<E: Engine>(
    e: &E,
    d: &Discriminator,
    p: &Params<E>,
    cache: &DiscCache<E>,
    t: &E::Tensor,
    r1: &mut R1Pairing<E>,
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

// ---------------------------------------------------------------------------------------------
// F.

pub struct ProjCache<E: Engine> {
    x: E::Tensor,
    hidden: E::Tensor,
    pre: E::Tensor,
}

fn f_name(l: usize, part: &str) -> String {
    format!("F.mlp_{l}.{part}")
}

/// Rows (B, C, 1, 1) of NCE layer `l` → normalised projections (B, nc, 1, 1).
pub fn f_forward<E: Engine>(
    e: &E,
    _f: &Projector,
    p: &Params<E>,
    l: usize,
    rows: E::Tensor,
) -> Result<(E::Tensor, ProjCache<E>)> {
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
pub fn f_backward<E: Engine>(
    e: &E,
    p: &Params<E>,
    l: usize,
    cache: &ProjCache<E>,
    dy: &E::Tensor,
    grads: Option<&mut Params<E>>,
) -> Result<E::Tensor> {
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
