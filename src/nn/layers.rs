//! The official layers (rosinality-style StyleGAN2 blocks as the CUT repository uses them):
//! each layer's description (official parameter names, shapes, scale) and its passes, written
//! once over [`Backend`]: forward, backward and, for the R1 path through D, the tangent (JVP).

use crate::backend::{Backend, Params};
use crate::error::{Error, Result};
use crate::ops::blur::Blur;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// An activation shared between the layer that made it and the caches that keep it.
pub type Act<B> = Rc<<B as Backend>::Tensor>;

/// A parameter by name (a missing one is an error, not a panic: parameters may come from files).
pub fn param<'p, T>(p: &'p BTreeMap<String, T>, name: &str) -> Result<&'p T> {
    p.get(name)
        .ok_or_else(|| Error::new(format!("missing parameter {name}")))
}

/// Adds `g` to the gradient named `name`, shaped as the parameter (the first contribution is
/// moved in: 0 + g = g exactly, as a zero-initialised accumulation would give).
pub fn accumulate<B: Backend>(
    e: &B,
    p: &Params<B>,
    grads: &mut Params<B>,
    name: &str,
    g: B::Tensor,
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

/// What a backward pass does besides propagating the input gradient.
pub struct Backprop<'a, B: Backend> {
    /// Accumulate parameter gradients here (None: the network is frozen).
    pub grads: Option<&'a mut Params<B>>,
    /// Keep each conv's output-side gradient by weight name (R1's backward signals).
    pub record: Option<&'a mut HashMap<String, B::Tensor>>,
}

impl<'a, B: Backend> Backprop<'a, B> {
    pub fn grads(grads: &'a mut Params<B>) -> Self {
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
pub struct R1Pairing<'a, B: Backend> {
    pub signals: &'a HashMap<String, B::Tensor>,
    pub grads: &'a mut Params<B>,
}

/// The bias after a convolution.
#[derive(Clone, Debug, PartialEq)]
pub enum Bias {
    None,
    /// FusedLeakyReLU: bias then leaky ReLU ×√2.
    Act(String),
    /// A plain bias (the last EqualLinear of D).
    Plain(String),
}

/// EqualConv2d (weight N(0,1) used as w/√(c_in·k²)), optionally after a downsampling blur,
/// followed by its bias/activation. EqualLinear is the same on (N, C, 1, 1).
#[derive(Clone, Debug)]
pub struct ConvLayer {
    pub weight: String,
    pub bias: Bias,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub down: bool,
}

impl ConvLayer {
    /// `prefix` is the module path; `downsample` puts a Blur at index 0 as the official Sequential.
    pub fn new(
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
        down: bool,
        act: bool,
        bias: bool,
    ) -> Self {
        let i = usize::from(down);
        let bias = match (act, bias) {
            (true, true) => Bias::Act(format!("{prefix}.{}.bias", i + 1)),
            (false, true) => panic!("ConvLayer with a bias and no activation is not used"),
            _ => Bias::None,
        };
        ConvLayer {
            weight: format!("{prefix}.{i}.weight"),
            bias,
            cin,
            cout,
            k,
            down,
        }
    }

    /// EqualLinear (in → out) as a 1×1 conv on (N, in, 1, 1).
    pub fn linear(prefix: &str, cin: usize, cout: usize, act: bool) -> Self {
        let b = format!("{prefix}.bias");
        ConvLayer {
            weight: format!("{prefix}.weight"),
            bias: if act { Bias::Act(b) } else { Bias::Plain(b) },
            cin,
            cout,
            k: 1,
            down: false,
        }
    }

    pub fn scale(&self) -> f64 {
        1.0 / ((self.cin * self.k * self.k) as f64).sqrt()
    }
    pub fn stride(&self) -> usize {
        if self.down { 2 } else { 1 }
    }
    pub fn pad(&self) -> usize {
        if self.down { 0 } else { self.k / 2 }
    }
    pub fn blur(&self) -> Blur {
        if self.k == 3 {
            Blur::DOWN_3X3
        } else {
            Blur::DOWN_1X1
        }
    }

    /// The parameters' names and official shapes.
    pub fn param_shapes(&self, linear: bool) -> Vec<(String, Vec<usize>)> {
        let mut v = vec![(
            self.weight.clone(),
            if linear {
                vec![self.cout, self.cin]
            } else {
                vec![self.cout, self.cin, self.k, self.k]
            },
        )];
        match &self.bias {
            Bias::Act(b) if !linear => v.push((b.clone(), vec![1, self.cout, 1, 1])),
            Bias::Act(b) | Bias::Plain(b) => v.push((b.clone(), vec![self.cout])),
            Bias::None => {}
        }
        v
    }
}

pub struct ConvCache<B: Backend> {
    /// The convolution's input: after the blur when downsampling, so that the weight gradient
    /// neither recomputes the blur nor converts it again for the GEMM (the CUDA engine keeps a
    /// tensor's bf16 operand copy with it).
    x: Act<B>,
    /// The layer's input size before the blur (the input gradient's size).
    in_hw: (usize, usize),
    /// The output after the activation (its sign gives the slope).
    y: Option<Act<B>>,
    /// The weight as the forward used it (raw·scale), for the backward and tangent passes:
    /// the parameters do not change between them.
    w: Act<B>,
}

/// The weight as used: raw·scale, (Cout, Cin, k, k).
fn weight_eff<B: Backend>(e: &B, l: &ConvLayer, p: &Params<B>) -> Result<B::Tensor> {
    e.scale(param(p, &l.weight)?, l.scale())
}

pub fn conv_forward<B: Backend>(
    e: &B,
    l: &ConvLayer,
    p: &Params<B>,
    x: &Act<B>,
) -> Result<(Act<B>, ConvCache<B>)> {
    let w = Rc::new(weight_eff(e, l, p)?);
    let [_, _, h, wd] = e.shape(x);
    let xin: Act<B> = if l.down {
        Rc::new(e.blur(&l.blur(), x)?)
    } else {
        x.clone()
    };
    let (s, pad) = (l.stride(), l.pad());
    let y = match &l.bias {
        Bias::Act(b) => e.conv2d_bias_lrelu(&xin, &w, s, pad, param(p, b)?)?,
        Bias::Plain(b) => {
            let mut y = e.conv2d(&xin, &w, s, pad)?;
            e.add_bias(&mut y, param(p, b)?)?;
            y
        }
        Bias::None => e.conv2d(&xin, &w, s, pad)?,
    };
    let y = Rc::new(y);
    let keep_y = matches!(l.bias, Bias::Act(_)).then(|| y.clone());
    Ok((
        y,
        ConvCache {
            x: xin,
            in_hw: (h, wd),
            y: keep_y,
            w,
        },
    ))
}

fn slope_y<B: Backend>(c: &ConvCache<B>) -> Result<&B::Tensor> {
    c.y.as_deref()
        .ok_or_else(|| Error::new("conv cache lacks the activation output"))
}

pub fn conv_backward<B: Backend>(
    e: &B,
    l: &ConvLayer,
    p: &Params<B>,
    cache: &ConvCache<B>,
    dy: &B::Tensor,
    bp: &mut Backprop<B>,
    need_dx: bool,
) -> Result<Option<B::Tensor>> {
    // The gradient at the conv's output: through the activation where there is one.
    let mut d_act = None;
    match &l.bias {
        Bias::Act(b) => {
            let (d, db) = e.fused_lrelu_backward(slope_y(cache)?, dy)?;
            d_act = Some(d);
            if let Some(g) = bp.grads.as_deref_mut() {
                accumulate(e, p, g, b, db)?;
            }
        }
        Bias::Plain(b) => {
            if let Some(g) = bp.grads.as_deref_mut() {
                accumulate(e, p, g, b, e.bias_grad(dy)?)?;
            }
        }
        Bias::None => {}
    }
    let d = d_act.as_ref().unwrap_or(dy);
    if let Some(g) = bp.grads.as_deref_mut() {
        let dw = e.conv2d_backward_weight(&cache.x, d, l.k, l.stride(), l.pad())?;
        accumulate(e, p, g, &l.weight, e.scale(&dw, l.scale())?)?;
    }
    let dx = if need_dx {
        let [_, _, h, wd] = e.shape(&cache.x);
        let dxin = e.conv2d_backward_input(d, &cache.w, l.stride(), l.pad(), (h, wd))?;
        Some(if l.down {
            e.blur_backward(&l.blur(), &dxin, cache.in_hw)?
        } else {
            dxin
        })
    } else {
        None
    };
    if let Some(r) = bp.record.as_deref_mut() {
        let kept = match d_act {
            Some(d) => d,
            None => e.copy(dy)?,
        };
        r.insert(l.weight.clone(), kept);
    }
    Ok(dx)
}

/// Tangent pass (no bias, primal slopes), accumulating R1's weight gradient where a backward
/// signal was recorded for this weight.
pub fn conv_tangent<B: Backend>(
    e: &B,
    l: &ConvLayer,
    p: &Params<B>,
    cache: &ConvCache<B>,
    t: &B::Tensor,
    r1: &mut R1Pairing<B>,
) -> Result<B::Tensor> {
    let blurred;
    let tin: &B::Tensor = if l.down {
        blurred = e.blur(&l.blur(), t)?;
        &blurred
    } else {
        t
    };
    let mut out = e.conv2d(tin, &cache.w, l.stride(), l.pad())?;
    if let Bias::Act(_) = l.bias {
        e.fused_lrelu_tangent(slope_y(cache)?, &mut out)?;
    }
    if let Some(u) = r1.signals.get(&l.weight) {
        let dw = e.conv2d_backward_weight(tin, u, l.k, l.stride(), l.pad())?;
        accumulate(e, p, r1.grads, &l.weight, e.scale(&dw, l.scale())?)?;
    }
    Ok(out)
}

/// ResBlock: conv1 (3×3), conv2 (3×3, maybe down), skip (1×1 no bias, maybe down, or identity);
/// out = (conv2 + skip)/√2.
#[derive(Clone, Debug)]
pub struct ResBlock {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    pub skip: Option<ConvLayer>,
}

impl ResBlock {
    pub fn new(prefix: &str, cin: usize, cout: usize, down: bool) -> Self {
        ResBlock {
            conv1: ConvLayer::new(&format!("{prefix}.conv1"), cin, cin, 3, false, true, true),
            conv2: ConvLayer::new(&format!("{prefix}.conv2"), cin, cout, 3, down, true, true),
            skip: (cin != cout || down).then(|| {
                ConvLayer::new(&format!("{prefix}.skip"), cin, cout, 1, down, false, false)
            }),
        }
    }

    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = self.conv1.param_shapes(false);
        v.extend(self.conv2.param_shapes(false));
        if let Some(s) = &self.skip {
            v.extend(s.param_shapes(false));
        }
        v
    }
}

pub struct ResCache<B: Backend> {
    c1: ConvCache<B>,
    c2: ConvCache<B>,
    skip: Option<ConvCache<B>>,
}

pub fn res_forward<B: Backend>(
    e: &B,
    b: &ResBlock,
    p: &Params<B>,
    x: &Act<B>,
) -> Result<(Act<B>, ResCache<B>)> {
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
    let out = e.residual(&h2, &s)?;
    Ok((Rc::new(out), ResCache { c1, c2, skip: cs }))
}

pub fn res_backward<B: Backend>(
    e: &B,
    b: &ResBlock,
    p: &Params<B>,
    cache: &ResCache<B>,
    mut dy: B::Tensor,
    bp: &mut Backprop<B>,
    need_dx: bool,
) -> Result<Option<B::Tensor>> {
    e.residual_backward(&mut dy)?;
    let dskip = match (&b.skip, &cache.skip) {
        (Some(sk), Some(cs)) => conv_backward(e, sk, p, cs, &dy, bp, need_dx)?,
        _ => None,
    };
    let dh1 = conv_backward(e, &b.conv2, p, &cache.c2, &dy, bp, true)?
        .ok_or_else(|| Error::new("conv2 backward returned no input gradient"))?;
    let dx = conv_backward(e, &b.conv1, p, &cache.c1, &dh1, bp, need_dx)?;
    Ok(match dx {
        Some(mut a) => {
            // The skip's gradient: its conv's input gradient, or dy itself (identity).
            e.add_into(&mut a, 0, dskip.as_ref().unwrap_or(&dy))?;
            Some(a)
        }
        None => None,
    })
}

pub fn res_tangent<B: Backend>(
    e: &B,
    b: &ResBlock,
    p: &Params<B>,
    cache: &ResCache<B>,
    t: &B::Tensor,
    r1: &mut R1Pairing<B>,
) -> Result<B::Tensor> {
    let h1 = conv_tangent(e, &b.conv1, p, &cache.c1, t, r1)?;
    let h2 = conv_tangent(e, &b.conv2, p, &cache.c2, &h1, r1)?;
    drop(h1);
    match (&b.skip, &cache.skip) {
        (Some(sk), Some(cs)) => e.residual(&h2, &conv_tangent(e, sk, p, cs, t, r1)?),
        _ => e.residual(&h2, t),
    }
}

/// A backward pass that must return the input gradient.
pub fn need<T>(v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::new("backward pass returned no input gradient"))
}

/// The decoder's upsampling StyledConv (style fixed to ones): demodulated transposed 3×3 conv
/// stride 2, blur ×4, noise injection, fused leaky ReLU.
#[derive(Clone, Debug)]
pub struct StyledConvUp {
    pub prefix: String,
    pub cin: usize,
    pub cout: usize,
}

impl StyledConvUp {
    pub fn w(&self) -> String {
        format!("{}.conv.weight", self.prefix)
    }
    pub fn nw(&self) -> String {
        format!("{}.noise.weight", self.prefix)
    }
    pub fn b(&self) -> String {
        format!("{}.activate.bias", self.prefix)
    }

    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        vec![
            (self.w(), vec![1, self.cout, self.cin, 3, 3]),
            (self.nw(), vec![1]),
            (self.b(), vec![1, self.cout, 1, 1]),
        ]
    }
}

pub struct StyledCache<B: Backend> {
    x: Act<B>,
    noise: Option<Act<B>>,
    y: Act<B>,
}

/// The demodulated weight in conv_transpose layout (Cin, Cout, 3, 3).
fn styled_weight_t<B: Backend>(e: &B, s: &StyledConvUp, p: &Params<B>) -> Result<B::Tensor> {
    e.swap01(&e.demod(param(p, &s.w())?)?)
}

pub fn styled_forward<B: Backend>(
    e: &B,
    s: &StyledConvUp,
    p: &Params<B>,
    x: &Act<B>,
    noise: Option<&Act<B>>,
) -> Result<(Act<B>, StyledCache<B>)> {
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

pub fn styled_backward<B: Backend>(
    e: &B,
    s: &StyledConvUp,
    p: &Params<B>,
    cache: &StyledCache<B>,
    dy: B::Tensor,
    bp: &mut Backprop<B>,
    need_dx: bool,
) -> Result<Option<B::Tensor>> {
    let (dy, db) = e.fused_lrelu_backward(&cache.y, &dy)?;
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
