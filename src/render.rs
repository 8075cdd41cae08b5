//! Full-resolution rendering, tile by tile, equal to a whole-image pass.
//!
//! Three facts make tiling exact (DESIGN §5 "Render"):
//! - the decoder's noise is a pure function of (seed, global pixel x, y) ([`noise_at`]), so a
//!   window sees exactly the noise the whole image would;
//! - every output pixel depends only on input pixels within G's receptive-field radius
//!   ([`receptive_field`], computed from the layers), so a window grown by that halo computes its
//!   centre exactly; where the window stops at the image border, its zero padding is the whole
//!   image's;
//! - window origins are multiples of G's downsampling factor, so the stride-2 sampling grid
//!   inside a window is the whole image's grid.
//!
//! Sizes that are not a multiple of the downsampling factor (G maps H → H only when H is even)
//! are padded up to the next multiple by replicating the last row / column, rendered, and
//! cropped back. Both [`render`] and [`render_whole`] do this, identically: the padding is read
//! on the fly (clamped coordinates), never materialised, and the noise of the padded pixels
//! comes from their global coordinates like any other pixel's.

use crate::backend::device::OnBackend;
use crate::backend::{Backend, Params, upload_params};
use crate::error::{Error, Result};
use crate::nn::generator::Generator;
use crate::nn::layers::{ConvLayer, ResBlock};
use crate::nn::{Networks, ParamMap};
use crate::ops::blur::Blur;
use crate::tensor::{Real, c};
use crate::train::step::g_infer;
use ndarray::{Array3, Array4};

// ---------------------------------------------------------------------------------------------
// Position-keyed noise.

use crate::rng::finalise as mix64;

/// A standard normal sample that depends only on (seed, global pixel x, y): the noise a render
/// injects at output pixel (x, y). Counter-based (no stream state), so any tiling, any order and
/// any thread sees the same value.
pub fn noise_at(seed: u64, x: u64, y: u64) -> f32 {
    // Each coordinate goes through its own mixing round (distinct odd offsets keep (x, y) and
    // (y, x) apart); mix64 is a bijection, so distinct keys only collide by chance (2⁻⁶⁴).
    let h = mix64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let h = mix64(
        h ^ x
            .wrapping_mul(0xd1b5_4a32_d192_ed03)
            .wrapping_add(0x2545_f491_4f6c_dd1d),
    );
    let h = mix64(
        h ^ y
            .wrapping_mul(0x8cb9_2ba7_2f3d_8dd7)
            .wrapping_add(0x6a09_e667_f3bc_c909),
    );
    let h2 = mix64(h ^ 0xa076_1d64_78bd_642f);
    // Two uniforms from the top 53 bits: u1 in (0, 1] (log is finite), u2 in [0, 1).
    let scale = 1.0 / (1u64 << 53) as f64;
    let u1 = ((h >> 11) + 1) as f64 * scale;
    let u2 = (h2 >> 11) as f64 * scale;
    // Box–Muller in f64, rounded once to f32.
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

// ---------------------------------------------------------------------------------------------
// Receptive field from the architecture.

/// One layer of G along one axis, as a map from an output index interval to the input
/// interval it reads (zero-padding positions included: they must also lie in the window).
#[derive(Clone, Debug)]
enum Stage {
    /// out[o] reads in[o·s − p .. o·s − p + k − 1].
    Conv { k: i64, s: i64, p: i64 },
    /// The 4-tap upfirdn blur with pad0 in front: out[o] reads in[o − pad0 .. o − pad0 + 3].
    Blur { pad0: i64 },
    /// Transposed conv (padding 0): in[j] writes out[j·s .. j·s + k − 1].
    ConvT { k: i64, s: i64 },
    /// Residual: the union of both paths (an empty path is the identity).
    Res { main: Vec<Stage>, skip: Vec<Stage> },
}

/// The 4-tap FIR every `Blur` applies (`[1,3,3,1]` per axis).
const BLUR_TAPS: i64 = 4;

fn conv_stages(l: &ConvLayer) -> Vec<Stage> {
    let k = l.k as i64;
    if l.down {
        // As ConvLayer::forward: blur (its pads depend on k), then stride 2, padding 0.
        let b = if l.k == 3 {
            Blur::DOWN_3X3
        } else {
            Blur::DOWN_1X1
        };
        vec![
            Stage::Blur {
                pad0: b.pad0 as i64,
            },
            Stage::Conv { k, s: 2, p: 0 },
        ]
    } else {
        vec![Stage::Conv { k, s: 1, p: k / 2 }]
    }
}

fn res_stage(b: &ResBlock) -> Stage {
    let mut main = conv_stages(&b.conv1);
    main.extend(conv_stages(&b.conv2));
    Stage::Res {
        main,
        skip: b.skip.as_ref().map(conv_stages).unwrap_or_default(),
    }
}

/// G as stages in forward order.
fn g_stages(g: &Generator) -> Vec<Stage> {
    let mut v = conv_stages(&g.stem);
    v.extend(g.enc_blocks.iter().chain(&g.dec_blocks).map(res_stage));
    // StyledConvUp: transposed 3×3 stride 2, then the ×4 blur.
    v.push(Stage::ConvT { k: 3, s: 2 });
    v.push(Stage::Blur {
        pad0: Blur::UP.pad0 as i64,
    });
    v.extend(conv_stages(&g.to_rgb));
    v
}

/// The input interval that the output interval `(lo, hi)` (inclusive) of `stages` reads.
fn back(stages: &[Stage], (mut lo, mut hi): (i64, i64)) -> (i64, i64) {
    for st in stages.iter().rev() {
        (lo, hi) = match st {
            Stage::Conv { k, s, p } => (lo * s - p, hi * s - p + k - 1),
            Stage::Blur { pad0 } => (lo - pad0, hi - pad0 + BLUR_TAPS - 1),
            // The inputs j with j·s ≤ o ≤ j·s + k − 1.
            Stage::ConvT { k, s } => (ceil_div(lo - (k - 1), *s), hi.div_euclid(*s)),
            Stage::Res { main, skip } => {
                let a = back(main, (lo, hi));
                let b = back(skip, (lo, hi));
                (a.0.min(b.0), a.1.max(b.1))
            }
        };
    }
    (lo, hi)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

/// The product of the strides on the way down (stages before the first transposed conv): window
/// origins must be multiples of it for the windows to share the whole image's sampling grid.
fn stride_product(stages: &[Stage]) -> i64 {
    let mut f = 1;
    for st in stages {
        match st {
            Stage::Conv { s, .. } => f *= s,
            Stage::ConvT { .. } => break,
            Stage::Res { main, .. } => f *= stride_product(main),
            Stage::Blur { .. } => {}
        }
    }
    f
}

/// G's downsampling factor (2 for the official G): images are padded to a multiple of it and
/// window origins aligned to it.
pub fn down_factor(g: &Generator) -> usize {
    stride_product(&g_stages(g)) as usize
}

/// G's receptive-field radius in output pixels: output pixel o depends only on input pixels
/// within o ± radius (per axis). Computed by walking the layers back from one output pixel of
/// each phase of the sampling grid (the dependency cone differs between even and odd outputs).
/// For the official G this is 30: 12 half-resolution 3×3 convs (±12 there), the transposed conv
/// and its blur (±1 more), then the down blur + stride-2 conv (×2, −2/+3) and the first full-
/// resolution 3×3 conv (±1); the asymmetric ends (−29/+30 or −30/+29 by parity) give 30.
pub fn receptive_field(g: &Generator) -> usize {
    let stages = g_stages(g);
    let f = stride_product(&stages);
    // Any output pixel of each phase will do (the cone only shifts with o); the walk treats the
    // layers as infinite, i.e. ignores the image border, which can only shrink the cone.
    let base = 1000 * f;
    (base..base + f)
        .map(|o| {
            let (lo, hi) = back(&stages, (o, o));
            (o - lo).max(hi - o) as usize
        })
        .max()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// How to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Output tile side in pixels (the windows G runs on are this plus the halo).
    pub tile: usize,
    /// Seed of the position-keyed noise.
    pub seed: u64,
}

/// The smallest tile side `render` and `fit` accept: below it the halo dwarfs the tile and a
/// render takes many times longer than it should (0 would not render at all).
pub const MIN_TILE: usize = 16;

/// The one check of a tile size, shared by `render` and `fit` (before any work).
pub fn check_tile(tile: usize) -> crate::error::Result<()> {
    if tile < MIN_TILE {
        return Err(crate::error::Error::new(format!(
            "--tiles {tile} is too small (at least {MIN_TILE})"
        )));
    }
    Ok(())
}

/// The half-open window [y0, y1) × [x0, x1) of the padded image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    y0: usize,
    y1: usize,
    x0: usize,
    x1: usize,
}

/// `n` rounded up to a multiple of `f`.
fn align_up(n: usize, f: usize) -> usize {
    n.div_ceil(f) * f
}

/// G's input for the window `win` of the image padded by edge replication (the window may
/// reach into that padding), and the noise of the window's global pixels: (1,3,h,w), (1,1,h,w).
fn window_inputs<T: Real>(img: &Array3<T>, win: Rect, seed: u64) -> (Array4<T>, Array4<T>) {
    let (_, h, w) = img.dim();
    let (wh, ww) = (win.y1 - win.y0, win.x1 - win.x0);
    let mut x = Array4::<T>::zeros((1, 3, wh, ww));
    for ch in 0..3 {
        for r in 0..wh {
            // Clamped coordinates replicate the last row / column into the padding.
            let sy = (win.y0 + r).min(h - 1);
            for col in 0..ww {
                x[[0, ch, r, col]] = img[[ch, sy, (win.x0 + col).min(w - 1)]];
            }
        }
    }
    let mut noise = Array4::<T>::zeros((1, 1, wh, ww));
    for r in 0..wh {
        for col in 0..ww {
            noise[[0, 0, r, col]] =
                c(noise_at(seed, (win.x0 + col) as u64, (win.y0 + r) as u64) as f64);
        }
    }
    (x, noise)
}

/// Runs G on one window's input and noise, returning (1, 3, h, w).
pub type WindowRunner<'a, T> = dyn FnMut(&Array4<T>, &Array4<T>) -> Result<Array4<T>> + 'a;

/// Runs G on the window `win` (see [`window_inputs`]) with `run`.
fn run_window<T: Real>(
    img: &Array3<T>,
    win: Rect,
    seed: u64,
    run: &mut WindowRunner<'_, T>,
) -> Result<Array4<T>> {
    let (x, noise) = window_inputs(img, win, seed);
    let y = run(&x, &noise)?;
    assert_eq!(
        y.dim(),
        (1, 3, win.y1 - win.y0, win.x1 - win.x0),
        "G changed the window size: window is not aligned"
    );
    Ok(y)
}

/// G's inference on backend `e` as a window runner.
fn backend_runner<'a, B: Backend>(
    e: &'a B,
    nets: &'a Networks,
    p: &'a Params<B>,
) -> impl FnMut(&Array4<B::Elem>, &Array4<B::Elem>) -> Result<Array4<B::Elem>> + 'a {
    move |x, noise| g_infer(e, nets, p, x, noise)
}

/// Copies the part `tile` (global coordinates, clipped to the real image) of a window's output
/// into `out`.
fn write_tile<T: Real>(out: &mut Array3<T>, y: &Array4<T>, win: Rect, tile: Rect) {
    let (_, h, w) = out.dim();
    let (ty1, tx1) = (tile.y1.min(h), tile.x1.min(w));
    if ty1 <= tile.y0 || tx1 <= tile.x0 {
        return;
    }
    let src = y.slice(ndarray::s![
        0,
        ..,
        tile.y0 - win.y0..ty1 - win.y0,
        tile.x0 - win.x0..tx1 - win.x0
    ]);
    out.slice_mut(ndarray::s![.., tile.y0..ty1, tile.x0..tx1])
        .assign(&src);
}

fn check_image<T: Real>(img: &Array3<T>) {
    let (ch, h, w) = img.dim();
    assert!(
        ch == 3 && h > 0 && w > 0,
        "render: expected a (3, H, W) image, got {:?}",
        img.dim()
    );
}

/// Translates a (3, H, W) image with G on backend `e` tile by tile; equal to [`render_whole`]
/// up to float rounding, with memory bounded by one window's activations (plus the input and
/// output). `progress(done, total)` is called after each tile.
pub fn render<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    img: &Array3<B::Elem>,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Array3<B::Elem>> {
    render_with(
        &nets.g,
        img,
        opts,
        progress,
        &mut backend_runner(e, nets, p),
    )
}

/// [`render`] that gives up between two tiles once `stop()` says so (then None): Ctrl-C during
/// fit's final render stops it instead of rendering to the end.
pub fn render_until<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    img: &Array3<B::Elem>,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(usize, usize),
    stop: &dyn Fn() -> bool,
) -> Result<Option<Array3<B::Elem>>> {
    let stopped = std::cell::Cell::new(false);
    let mut run = backend_runner(e, nets, p);
    let out = render_with(&nets.g, img, opts, progress, &mut |x, noise| {
        if stop() {
            stopped.set(true);
            return Err(Error::new("stopped"));
        }
        run(x, noise)
    });
    match out {
        Err(_) if stopped.get() => Ok(None),
        other => other.map(Some),
    }
}

/// `sincut render`'s work: uploads the parameters and renders on the opened backend.
pub struct RenderJob<'a> {
    pub nets: &'a Networks,
    pub params: &'a ParamMap<f32>,
    pub img: &'a Array3<f32>,
    pub opts: RenderOptions,
    pub progress: &'a mut dyn FnMut(usize, usize),
}

impl OnBackend for RenderJob<'_> {
    type Output = Array3<f32>;
    fn run<B: Backend<Elem = f32>>(self, e: &B) -> Result<Array3<f32>> {
        let p = upload_params(e, self.params)?;
        render(e, self.nets, &p, self.img, &self.opts, self.progress)
    }
}

/// The tiling of [`render`] with G run by `run`: the same tiles, windows and noise.
pub fn render_with<T: Real>(
    g: &Generator,
    img: &Array3<T>,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(usize, usize),
    run: &mut WindowRunner<'_, T>,
) -> Result<Array3<T>> {
    render_with_halo(g, img, opts, receptive_field(g), progress, run)
}

/// [`render_with`] with a given halo (tests show that less than the receptive field breaks
/// equality).
fn render_with_halo<T: Real>(
    g: &Generator,
    img: &Array3<T>,
    opts: &RenderOptions,
    halo: usize,
    progress: &mut dyn FnMut(usize, usize),
    run: &mut WindowRunner<'_, T>,
) -> Result<Array3<T>> {
    check_image(img);
    assert!(opts.tile > 0, "render: tile size must be positive");
    let (_, h, w) = img.dim();
    let f = down_factor(g);
    let (hp, wp) = (align_up(h, f), align_up(w, f));
    let mut out = Array3::<T>::zeros((3, h, w));
    // Tiles cover the real image; only the windows reach into the replicated padding.
    let tiles: Vec<Rect> = (0..h)
        .step_by(opts.tile)
        .flat_map(|y0| {
            (0..w).step_by(opts.tile).map(move |x0| Rect {
                y0,
                y1: (y0 + opts.tile).min(h),
                x0,
                x1: (x0 + opts.tile).min(w),
            })
        })
        .collect();
    for (i, &t) in tiles.iter().enumerate() {
        // Grow by the halo, align the origin down and the end up to the factor (hp, wp are
        // multiples of it), clip at the border: then every window side is a multiple of f.
        let win = Rect {
            y0: t.y0.saturating_sub(halo) / f * f,
            y1: align_up(t.y1 + halo, f).min(hp),
            x0: t.x0.saturating_sub(halo) / f * f,
            x1: align_up(t.x1 + halo, f).min(wp),
        };
        let y = run_window(img, win, opts.seed, run)?;
        write_tile(&mut out, &y, win, t);
        progress(i + 1, tiles.len());
    }
    Ok(out)
}

/// The reference: one pass of G over the whole image (padded to a multiple of the downsampling
/// factor as [`render`] does), with the same position-keyed noise.
pub fn render_whole<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    img: &Array3<B::Elem>,
    seed: u64,
) -> Result<Array3<B::Elem>> {
    check_image(img);
    let (_, h, w) = img.dim();
    let f = down_factor(&nets.g);
    let all = Rect {
        y0: 0,
        y1: align_up(h, f),
        x0: 0,
        x1: align_up(w, f),
    };
    let y = run_window(img, all, seed, &mut backend_runner(e, nets, p))?;
    let mut out = Array3::zeros((3, h, w));
    write_tile(&mut out, &y, all, all);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::backend::upload_params;
    use crate::config::ModelConfig;
    use crate::nn::generator;
    use crate::nn::normal;
    use rand::{RngExt, SeedableRng, rngs::StdRng};
    use std::rc::Rc;

    #[test]
    fn noise_is_standard_normal_and_independent() {
        let n = 100_000u64;
        let side = 400u64; // 400 × 250 grid
        let z: Vec<f64> = (0..n)
            .map(|i| noise_at(7, i % side, i / side) as f64)
            .collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/√n ≈ 0.0032 for the mean, √(2/n) ≈ 0.0045 for the variance.
        assert!(mean.abs() < 0.015, "mean {mean}");
        assert!((var - 1.0).abs() < 0.025, "variance {var}");
        // Shape, not just moments: P(|z| < 1) = 0.6827, P(|z| < 2) = 0.9545.
        let within = |t: f64| z.iter().filter(|v| v.abs() < t).count() as f64 / n as f64;
        assert!(
            (within(1.0) - 0.6827).abs() < 0.006,
            "P(|z|<1) {}",
            within(1.0)
        );
        assert!(
            (within(2.0) - 0.9545).abs() < 0.004,
            "P(|z|<2) {}",
            within(2.0)
        );
        // Neighbours (right, below, diagonal), the same pixel under another seed, and the
        // transposed pixel are uncorrelated (|r| ≲ 4/√n ≈ 0.013).
        let corr = |f: &dyn Fn(u64, u64) -> (f32, f32)| {
            let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
            for i in 0..n {
                let (a, b) = f(i % side, i / side);
                let (a, b) = (a as f64, b as f64);
                sab += a * b;
                saa += a * a;
                sbb += b * b;
            }
            sab / (saa * sbb).sqrt()
        };
        let cases: [(&str, &dyn Fn(u64, u64) -> (f32, f32)); 5] = [
            ("right", &|x, y| (noise_at(7, x, y), noise_at(7, x + 1, y))),
            ("below", &|x, y| (noise_at(7, x, y), noise_at(7, x, y + 1))),
            ("diagonal", &|x, y| {
                (noise_at(7, x, y), noise_at(7, x + 1, y + 1))
            }),
            ("seed", &|x, y| (noise_at(7, x, y), noise_at(8, x, y))),
            ("transposed", &|x, y| (noise_at(7, x, y), noise_at(7, y, x))),
        ];
        for (name, f) in cases {
            let r = corr(f);
            assert!(r.abs() < 0.015, "{name} correlation {r}");
        }
        // Pure function of its arguments.
        assert_eq!(noise_at(3, 12345, 678), noise_at(3, 12345, 678));
        assert_ne!(noise_at(3, 12345, 678), noise_at(4, 12345, 678));
    }

    type Cpu<T> = CpuBackend<T>;

    /// A small G with random weights, non-zero biases and noise weight, on the CPU backend.
    fn small<T: Real>(ngf: usize, seed: u64) -> (Networks, Params<Cpu<T>>) {
        let cfg = ModelConfig {
            ngf,
            ..Default::default()
        };
        let nets = Networks::new(&cfg);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut p: ParamMap<T> = nets.init(&mut rng);
        p.retain(|k, _| k.starts_with("G."));
        for (k, v) in p.iter_mut() {
            if k.ends_with(".bias") || k.ends_with("noise.weight") {
                v.mapv_inplace(|_| c(0.3 * normal(&mut rng)));
            }
        }
        let p = upload_params(&Cpu::<T>::new(), &p).unwrap();
        (nets, p)
    }

    /// G on a whole batch without noise.
    fn infer<T: Real>(nets: &Networks, p: &Params<Cpu<T>>, x: &Array4<T>) -> Array4<T> {
        generator::g_infer(&Cpu::<T>::new(), &nets.g, p, &Rc::new(x.clone()), None).unwrap()
    }

    fn rand_image<T: Real>(h: usize, w: usize, seed: u64) -> Array3<T> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array3::from_shape_simple_fn((3, h, w), || c(rng.random_range(-1.0..1.0)))
    }

    #[test]
    fn receptive_field_of_official_g() {
        let g = Networks::new(&ModelConfig::default()).g;
        assert_eq!(down_factor(&g), 2);
        // See receptive_field's comment for the count.
        assert_eq!(receptive_field(&g), 30);
    }

    /// Perturb one input pixel of a whole-image pass (f64, noise off) and find the farthest
    /// output pixel (per axis) that changes: never beyond the computed radius, and at most a
    /// couple of pixels short of it.
    #[test]
    fn receptive_field_is_tight() {
        let (nets, p) = small::<f64>(2, 1);
        let r = receptive_field(&nets.g);
        let n = 2 * r + 40;
        let x = rand_image::<f64>(n, n, 2).insert_axis(ndarray::Axis(0));
        let y0 = infer(&nets, &p, &x);
        let c0 = n / 2;
        // Both phases of the stride-2 grid, per axis.
        for (py, px) in [(c0, c0), (c0 + 1, c0 + 1), (c0, c0 + 1)] {
            let mut xp = x.clone();
            for ch in 0..3 {
                xp[[0, ch, py, px]] += 1.0;
            }
            let y1 = infer(&nets, &p, &xp);
            let (mut dy, mut dx) = (0usize, 0usize);
            // Exact comparison: an unaffected pixel is computed from identical inputs.
            for ((_, ch, i, j), v) in y1.indexed_iter() {
                if *v != y0[[0, ch, i, j]] {
                    dy = dy.max(i.abs_diff(py));
                    dx = dx.max(j.abs_diff(px));
                }
            }
            let empirical = dy.max(dx);
            eprintln!("pixel ({py},{px}): farthest change ({dy}, {dx}) px; computed radius {r}");
            assert!(
                empirical <= r,
                "pixel ({py},{px}) changed an output {empirical} px away; computed radius {r}"
            );
            assert!(
                r - dy.min(dx) <= 2,
                "computed radius {r} is loose: farthest change ({dy}, {dx}) px"
            );
        }
    }

    /// 8-bit level of a value in [-1, 1], as saving does.
    fn level(v: f64) -> i64 {
        ((v + 1.0) / 2.0 * 255.0).clamp(0.0, 255.0).round() as i64
    }

    /// Renders with each tile size and compares with the whole-image pass: the largest absolute
    /// difference and the number of 8-bit levels that differ (asserting none by more than one).
    fn compare<T: Real>(
        nets: &Networks,
        p: &Params<Cpu<T>>,
        img: &Array3<T>,
        tiles: &[usize],
        tol: f64,
    ) -> Vec<(usize, f64, usize)> {
        let e = Cpu::<T>::new();
        let whole = render_whole(&e, nets, p, img, 11).unwrap();
        assert_eq!(whole.dim(), img.dim());
        let (_, h, w) = img.dim();
        tiles
            .iter()
            .map(|&tile| {
                let mut calls = Vec::new();
                let out = render(
                    &e,
                    nets,
                    p,
                    img,
                    &RenderOptions { tile, seed: 11 },
                    &mut |d, t| calls.push((d, t)),
                )
                .unwrap();
                let n = h.div_ceil(tile) * w.div_ceil(tile);
                assert_eq!(calls.len(), n);
                assert_eq!(calls.last(), Some(&(n, n)));
                let mut max = 0.0f64;
                let mut off = 0;
                for (a, b) in out.iter().zip(&whole) {
                    let (a, b) = (a.to_f64().unwrap(), b.to_f64().unwrap());
                    assert!(a.is_finite());
                    max = max.max((a - b).abs());
                    let d = level(a).abs_diff(level(b));
                    assert!(d <= 1, "tile {tile}: 8-bit levels differ by {d}");
                    off += usize::from(d == 1);
                }
                assert!(
                    max <= tol,
                    "tile {tile}: max |tiled − whole| = {max:e} > {tol:e}"
                );
                (tile, max, off)
            })
            .collect()
    }

    #[test]
    fn tiled_equals_whole_f32() {
        let (nets, p) = small::<f32>(3, 3);
        // 301 wide, 233 high: both odd, so the edge-replicated padding is exercised too.
        let img = rand_image::<f32>(233, 301, 4);
        let res = compare(&nets, &p, &img, &[512, 256, 200, 72], 1e-4);
        for (tile, max, off) in res {
            eprintln!("f32 tile {tile}: max |diff| {max:e}, 8-bit levels off by one: {off}");
            // Rounding-level differences move a handful of values across a level boundary.
            assert!(off <= 5, "tile {tile}: {off} values off by one 8-bit level");
        }
    }

    #[test]
    fn tiled_equals_whole_f64() {
        let (nets, p) = small::<f64>(2, 5);
        let img = rand_image::<f64>(233, 301, 6);
        for (tile, max, off) in compare(&nets, &p, &img, &[512, 256, 200, 72], 1e-10) {
            eprintln!("f64 tile {tile}: max |diff| {max:e}");
            assert_eq!(off, 0);
        }
        // Tiny odd image, tiles smaller than the halo.
        let img = rand_image::<f64>(13, 9, 7);
        compare(&nets, &p, &img, &[4, 5], 1e-10);
    }

    /// The test above can fail: a halo short of the receptive field changes the output.
    #[test]
    fn short_halo_is_not_exact() {
        let (nets, p) = small::<f64>(2, 5);
        let img = rand_image::<f64>(120, 130, 8);
        let e = Cpu::<f64>::new();
        let whole = render_whole(&e, &nets, &p, &img, 11).unwrap();
        let r = receptive_field(&nets.g);
        let opts = RenderOptions { tile: 40, seed: 11 };
        let max_diff = |halo| {
            let out = render_with_halo(
                &nets.g,
                &img,
                &opts,
                halo,
                &mut |_, _| {},
                &mut backend_runner(&e, &nets, &p),
            )
            .unwrap();
            out.iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        };
        assert!(max_diff(r) <= 1e-10);
        // r − 1 is still exact here: with even tile origins, aligning the window down/up to the
        // factor 2 restores the missing pixel. r − 2 is one aligned step short.
        let short = max_diff(r - 2);
        eprintln!("halo {}: max |diff| {short:e}", r - 2);
        assert!(short > 1e-9, "halo {} still exact ({short:e})", r - 2);
    }
}
