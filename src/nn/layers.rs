//! The official layers (rosinality-style StyleGAN2 blocks as the CUT repository uses them), each
//! with forward, backward and, for the R1 path through D, a tangent (JVP) pass.

use super::ParamMap;
use crate::ops::blur::Blur;
use crate::ops::conv2d::{
    conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv_transpose2d_forward,
    conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use crate::ops::demod::{demod_backward, demod_forward};
use crate::ops::fused_lrelu::{fused_lrelu_backward, fused_lrelu_forward, fused_lrelu_tangent};
use crate::ops::noise::{noise_backward_weight, noise_forward};
use crate::ops::residual::{residual_backward, residual_forward};
use crate::tensor::{Real, c};
use ndarray::{Array4, ArrayView4};
use std::collections::HashMap;
use std::sync::Arc;

/// An activation shared between the layer that made it and the caches that keep it.
pub type Act<T> = Arc<Array4<T>>;

/// What a backward pass does besides propagating the input gradient.
pub struct Backprop<'a, T> {
    /// Accumulate parameter gradients here (None: the network is frozen).
    pub grads: Option<&'a mut ParamMap<T>>,
    /// Keep each conv's output-side gradient (after its activation's slope) by weight name:
    /// the "backward signal" the R1 weight gradient pairs with the tangent.
    pub record: Option<&'a mut HashMap<String, Array4<T>>>,
}

impl<'a, T> Backprop<'a, T> {
    pub fn grads(grads: &'a mut ParamMap<T>) -> Self {
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

/// Adds `g` (any shape with the parameter's element count) to the gradient named `name`.
pub fn accumulate<T: Real>(grads: &mut ParamMap<T>, name: &str, g: &[T]) {
    let dst = grads
        .get_mut(name)
        .unwrap_or_else(|| panic!("no gradient slot for {name}"));
    let dst = dst.as_slice_mut().expect("standard layout");
    assert_eq!(dst.len(), g.len(), "gradient size of {name}");
    for (d, s) in dst.iter_mut().zip(g) {
        *d = *d + *s;
    }
}

/// A parameter as a flat slice.
pub fn param<'p, T: Real>(p: &'p ParamMap<T>, name: &str) -> &'p [T] {
    p.get(name)
        .unwrap_or_else(|| panic!("missing parameter {name}"))
        .as_slice()
        .expect("standard layout")
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

pub struct ConvCache<T> {
    /// The layer's input (before the blur when downsampling: the backward pass recomputes the
    /// blur, which is cheaper than keeping its larger output alive).
    x: Act<T>,
    /// The output after the activation (its sign gives the slope).
    y: Option<Act<T>>,
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

    /// The weight as used: raw·scale, (Cout, Cin, k, k).
    pub fn weight_eff<T: Real>(&self, p: &ParamMap<T>) -> Array4<T> {
        let w = param(p, &self.weight);
        let s: T = c(self.scale());
        ArrayView4::from_shape((self.cout, self.cin, self.k, self.k), w)
            .expect("weight shape")
            .mapv(|v| v * s)
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

    pub fn forward<T: Real>(&self, p: &ParamMap<T>, x: &Act<T>) -> (Act<T>, ConvCache<T>) {
        let w = self.weight_eff(p);
        let mut y = if self.down {
            conv2d_forward(&self.blur().forward(x), w.view(), self.stride(), self.pad())
        } else {
            conv2d_forward(x, w.view(), self.stride(), self.pad())
        };
        match &self.bias {
            Bias::Act(b) => fused_lrelu_forward(&mut y, param(p, b)),
            Bias::Plain(b) => crate::ops::bias::add_bias(&mut y, param(p, b)),
            Bias::None => {}
        }
        let y = Arc::new(y);
        let keep_y = matches!(self.bias, Bias::Act(_)).then(|| y.clone());
        (
            y,
            ConvCache {
                x: x.clone(),
                y: keep_y,
            },
        )
    }

    /// Forward without keeping anything for a backward pass.
    pub fn infer<T: Real>(&self, p: &ParamMap<T>, x: &Act<T>) -> Act<T> {
        self.forward(p, x).0
    }

    /// Gradient w.r.t. the layer input (when `need_dx`), accumulating parameter gradients.
    pub fn backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &ConvCache<T>,
        mut dy: Array4<T>,
        bp: &mut Backprop<T>,
        need_dx: bool,
    ) -> Option<Array4<T>> {
        match &self.bias {
            Bias::Act(b) => {
                let db = fused_lrelu_backward(cache.y.as_ref().unwrap(), &mut dy);
                if let Some(g) = bp.grads.as_deref_mut() {
                    accumulate(g, b, &db);
                }
            }
            Bias::Plain(b) => {
                if let Some(g) = bp.grads.as_deref_mut() {
                    accumulate(g, b, &crate::ops::bias::bias_grad(&dy));
                }
            }
            Bias::None => {}
        }
        if let Some(g) = bp.grads.as_deref_mut() {
            let xin = if self.down {
                Arc::new(self.blur().forward(&cache.x))
            } else {
                cache.x.clone()
            };
            let dw = conv2d_backward_weight(&xin, &dy, self.k, self.stride(), self.pad());
            let s: T = c(self.scale());
            let dw: Vec<T> = dw.iter().map(|&v| v * s).collect();
            accumulate(g, &self.weight, &dw);
        }
        let dx = need_dx.then(|| {
            let w = self.weight_eff(p);
            let in_hw = (cache.x.shape()[2], cache.x.shape()[3]);
            let blur = self.blur();
            let hw = if self.down {
                (blur.out_len(in_hw.0), blur.out_len(in_hw.1))
            } else {
                in_hw
            };
            let dxin = conv2d_backward_input(&dy, w.view(), self.stride(), self.pad(), hw);
            if self.down {
                blur.backward(&dxin, in_hw)
            } else {
                dxin
            }
        });
        if let Some(r) = bp.record.as_deref_mut() {
            r.insert(self.weight.clone(), dy);
        }
        dx
    }

    /// Tangent pass (no bias, primal slopes). With `r1` = (recorded backward signals, gradient
    /// map, the R1 gradient of this weight is accumulated: weight_grad(tangent input, signal).
    pub fn tangent<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &ConvCache<T>,
        t: &Array4<T>,
        r1: &mut R1Pairing<T>,
    ) -> Array4<T> {
        let tin = if self.down {
            self.blur().forward(t)
        } else {
            t.clone()
        };
        let w = self.weight_eff(p);
        let mut out = conv2d_forward(&tin, w.view(), self.stride(), self.pad());
        if let Bias::Act(_) = self.bias {
            fused_lrelu_tangent(cache.y.as_ref().unwrap(), &mut out);
        }
        if let Some(u) = r1.signals.get(&self.weight) {
            let dw = conv2d_backward_weight(&tin, u, self.k, self.stride(), self.pad());
            let s: T = c(self.scale());
            let dw: Vec<T> = dw.iter().map(|&v| v * s).collect();
            accumulate(r1.grads, &self.weight, &dw);
        }
        out
    }
}

/// Pairs the tangent pass with the recorded backward signals to form R1's weight gradients.
pub struct R1Pairing<'a, T> {
    pub signals: &'a HashMap<String, Array4<T>>,
    pub grads: &'a mut ParamMap<T>,
}

/// ResBlock: conv1 (3×3), conv2 (3×3, maybe down), skip (1×1 no bias, maybe down, or identity);
/// out = (conv2 + skip)/√2.
#[derive(Clone, Debug)]
pub struct ResBlock {
    pub conv1: ConvLayer,
    pub conv2: ConvLayer,
    pub skip: Option<ConvLayer>,
}

pub struct ResCache<T> {
    c1: ConvCache<T>,
    c2: ConvCache<T>,
    skip: Option<ConvCache<T>>,
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

    pub fn forward<T: Real>(&self, p: &ParamMap<T>, x: &Act<T>) -> (Act<T>, ResCache<T>) {
        let (h1, c1) = self.conv1.forward(p, x);
        let (h2, c2) = self.conv2.forward(p, &h1);
        drop(h1);
        let (s, cs) = match &self.skip {
            Some(sk) => {
                let (s, cs) = sk.forward(p, x);
                (s, Some(cs))
            }
            None => (x.clone(), None),
        };
        // conv2's output is also kept by its cache (for the slope), so sum into a copy.
        let mut out = (*h2).clone();
        residual_forward(&mut out, &s);
        (Arc::new(out), ResCache { c1, c2, skip: cs })
    }

    pub fn backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &ResCache<T>,
        mut dy: Array4<T>,
        bp: &mut Backprop<T>,
        need_dx: bool,
    ) -> Option<Array4<T>> {
        residual_backward(&mut dy);
        let dskip = match (&self.skip, &cache.skip) {
            (Some(sk), Some(cs)) => sk.backward(p, cs, dy.clone(), bp, need_dx),
            _ => need_dx.then(|| dy.clone()),
        };
        let dh1 = self.conv2.backward(p, &cache.c2, dy, bp, true).unwrap();
        let dx = self.conv1.backward(p, &cache.c1, dh1, bp, need_dx);
        match (dx, dskip) {
            (Some(mut a), Some(b)) => {
                a += &b;
                Some(a)
            }
            _ => None,
        }
    }

    pub fn tangent<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &ResCache<T>,
        t: &Array4<T>,
        r1: &mut R1Pairing<T>,
    ) -> Array4<T> {
        let h1 = self.conv1.tangent(p, &cache.c1, t, r1);
        let mut out = self.conv2.tangent(p, &cache.c2, &h1, r1);
        let s = match (&self.skip, &cache.skip) {
            (Some(sk), Some(cs)) => sk.tangent(p, cs, t, r1),
            _ => t.clone(),
        };
        residual_forward(&mut out, &s);
        out
    }
}

/// The decoder's upsampling StyledConv (style fixed to ones): demodulated transposed 3×3 conv
/// stride 2, blur ×4, noise injection, fused leaky ReLU.
#[derive(Clone, Debug)]
pub struct StyledConvUp {
    pub prefix: String,
    pub cin: usize,
    pub cout: usize,
}

pub struct StyledCache<T> {
    x: Act<T>,
    noise: Option<Act<T>>,
    y: Act<T>,
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

    /// The demodulated weight in conv_transpose layout (Cin, Cout, 3, 3).
    fn weight_t<T: Real>(&self, p: &ParamMap<T>) -> Array4<T> {
        let w = ArrayView4::from_shape((self.cout, self.cin, 3, 3), param(p, &self.w())).unwrap();
        let wd = demod_forward(w);
        wd.permuted_axes([1, 0, 2, 3])
            .as_standard_layout()
            .to_owned()
    }

    /// `noise` (N,1,2H,2W); None injects nothing (as a zero noise would).
    pub fn forward<T: Real>(
        &self,
        p: &ParamMap<T>,
        x: &Act<T>,
        noise: Option<&Act<T>>,
    ) -> (Act<T>, StyledCache<T>) {
        let wt = self.weight_t(p);
        let up = conv_transpose2d_forward(x, wt.view(), 2);
        let mut y = Blur::UP.forward(&up);
        drop(up);
        if let Some(n) = noise {
            noise_forward(&mut y, param(p, &self.nw())[0], n);
        }
        fused_lrelu_forward(&mut y, param(p, &self.b()));
        let y = Arc::new(y);
        (
            y.clone(),
            StyledCache {
                x: x.clone(),
                noise: noise.cloned(),
                y,
            },
        )
    }

    pub fn backward<T: Real>(
        &self,
        p: &ParamMap<T>,
        cache: &StyledCache<T>,
        mut dy: Array4<T>,
        bp: &mut Backprop<T>,
        need_dx: bool,
    ) -> Option<Array4<T>> {
        let db = fused_lrelu_backward(&cache.y, &mut dy);
        if let Some(g) = bp.grads.as_deref_mut() {
            accumulate(g, &self.b(), &db);
            let dnw = match &cache.noise {
                Some(n) => noise_backward_weight(&dy, n),
                None => T::zero(),
            };
            accumulate(g, &self.nw(), &[dnw]);
        }
        let (h, w) = (cache.x.shape()[2], cache.x.shape()[3]);
        let dup = Blur::UP.backward(&dy, (2 * h + 1, 2 * w + 1));
        if let Some(g) = bp.grads.as_deref_mut() {
            let dwt = conv_transpose2d_backward_weight(&cache.x, &dup, 3, 2);
            let dwd = dwt
                .permuted_axes([1, 0, 2, 3])
                .as_standard_layout()
                .to_owned();
            let w =
                ArrayView4::from_shape((self.cout, self.cin, 3, 3), param(p, &self.w())).unwrap();
            let dw = demod_backward(w, dwd.view());
            accumulate(g, &self.w(), dw.as_slice().unwrap());
        }
        need_dx.then(|| {
            let wt = self.weight_t(p);
            conv_transpose2d_backward_input(&dup, wt.view(), 2)
        })
    }
}

pub use crate::ops::windows::{from_windows, to_windows};
