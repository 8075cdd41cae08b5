//! The metrics: style distance (patch SWD), content kept (SSIM, edge correlation) and colour
//! distance (Lab W1), each deterministic for a given seed.

use crate::data::{mix, stream};
use crate::image::resize_bilinear;
use crate::nn::normal;
use crate::run::metrics::lenient;
use ndarray::{Array2, Array3};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Patches drawn per picture and pyramid level (with replacement). PGGAN uses 128 per image
/// over many images; a single picture needs many more for a stable figure.
pub const SWD_PATCHES: usize = 16_384;
/// Random projection directions per level.
pub const SWD_DIRECTIONS: usize = 512;
/// Side of the square patches.
pub const SWD_PATCH: usize = 7;
/// The pyramid stops once another halving would take the short side below this.
pub const SWD_MIN_SIDE: usize = 16;
/// Probabilities at which quantiles are compared for the colour distance.
pub const LAB_QUANTILES: usize = 1000;

const PURPOSE_SWD_PATCHES: u64 = 0x5344_5701;
const PURPOSE_SWD_DIRS: u64 = 0x5344_5702;

/// How the SWD is sampled.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SwdOptions {
    pub patches: usize,
    pub directions: usize,
    pub seed: u64,
}

impl Default for SwdOptions {
    fn default() -> Self {
        SwdOptions {
            patches: SWD_PATCHES,
            directions: SWD_DIRECTIONS,
            seed: 0,
        }
    }
}

/// SWD per pyramid level (finest first) and their means, all ×10³.
///
/// Read back from metrics.jsonl leniently, as [`Metrics`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Swd {
    #[serde(default, deserialize_with = "lenient::numbers")]
    pub levels: Vec<f64>,
    #[serde(default = "lenient::missing", deserialize_with = "lenient::number")]
    pub mean: f64,
    /// Mean of the band-pass levels only (all but the last, the Gaussian residual, which
    /// carries the global colour and dominates `mean`): texture rather than colour. With a
    /// single level it is that level.
    #[serde(default = "lenient::missing", deserialize_with = "lenient::number")]
    pub texture: f64,
}

/// Every metric of one picture against a source and a target.
///
/// Read back from metrics.jsonl (any version's lines) leniently: a figure that is absent or
/// not a finite number reads as NaN (None), so that one odd figure does not lose the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Style distance to the target (SWD ×10³; lower is closer).
    #[serde(default = "lenient::missing_swd", deserialize_with = "lenient::swd")]
    pub swd: Swd,
    /// Luminance SSIM to the source at the source's resolution.
    #[serde(default = "lenient::missing", deserialize_with = "lenient::number")]
    pub ssim: f64,
    /// Luminance SSIM to the source at a 4× downscale (None when that is under 11 px).
    #[serde(default, deserialize_with = "lenient::optional_number")]
    pub ssim_4x: Option<f64>,
    /// Pearson correlation of Sobel edge magnitudes with the source's.
    #[serde(default = "lenient::missing", deserialize_with = "lenient::number")]
    pub edge_correlation: f64,
    /// 1-D Wasserstein-1 distance to the target per Lab channel (L, a, b) and their sum.
    #[serde(
        default = "lenient::missing_triple",
        deserialize_with = "lenient::triple"
    )]
    pub lab_w1: [f64; 3],
    #[serde(default = "lenient::missing", deserialize_with = "lenient::number")]
    pub lab_w1_sum: f64,
}

// ---------------------------------------------------------------------------------------------
// Laplacian pyramid and SWD

/// Mirror index without repeating the edge (OpenCV's BORDER_REFLECT_101).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let n = n as isize;
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

const BINOMIAL: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// Separable 5-tap binomial blur of every channel, each tap scaled by `gain` per axis.
fn blur(img: &Array3<f32>, gain: f32) -> Array3<f32> {
    let (c, h, w) = img.dim();
    let mut tmp = Array3::<f32>::zeros((c, h, w));
    let mut out = Array3::<f32>::zeros((c, h, w));
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, &t) in BINOMIAL.iter().enumerate() {
                    acc += t * img[[ch, y, reflect(x as isize + k as isize - 2, w)]];
                }
                tmp[[ch, y, x]] = acc * gain;
            }
        }
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (k, &t) in BINOMIAL.iter().enumerate() {
                    acc += t * tmp[[ch, reflect(y as isize + k as isize - 2, h), x]];
                }
                out[[ch, y, x]] = acc * gain;
            }
        }
    }
    out
}

/// Blur, then keep every other row and column (size ⌈n/2⌉).
fn pyr_down(img: &Array3<f32>) -> Array3<f32> {
    let b = blur(img, 1.0);
    let (c, h, w) = b.dim();
    Array3::from_shape_fn((c, h.div_ceil(2), w.div_ceil(2)), |(ch, y, x)| {
        b[[ch, 2 * y, 2 * x]]
    })
}

/// Zero-insert to (h, w), then blur with the kernel doubled per axis (keeps a constant).
fn pyr_up(img: &Array3<f32>, h: usize, w: usize) -> Array3<f32> {
    let c = img.dim().0;
    let mut z = Array3::<f32>::zeros((c, h, w));
    for ch in 0..c {
        for y in (0..h).step_by(2) {
            for x in (0..w).step_by(2) {
                z[[ch, y, x]] = img[[ch, y / 2, x / 2]];
            }
        }
    }
    blur(&z, 2.0)
}

/// How many pyramid levels a picture pair gets: halve the shorter short side while the
/// result stays at least [`SWD_MIN_SIDE`] px.
pub fn pyramid_levels(short_side: usize) -> usize {
    let mut n = 1;
    let mut s = short_side;
    while s.div_ceil(2) >= SWD_MIN_SIDE {
        s = s.div_ceil(2);
        n += 1;
    }
    n
}

/// Laplacian pyramid with `levels` levels, finest first: level i = G_i − up(G_{i+1}); the last
/// level is the Gaussian residual G_{levels−1}.
pub fn laplacian_pyramid(img: &Array3<f32>, levels: usize) -> Vec<Array3<f32>> {
    let mut gauss = vec![img.clone()];
    for _ in 1..levels {
        let next = pyr_down(gauss.last().unwrap());
        gauss.push(next);
    }
    let mut out = Vec::with_capacity(levels);
    for i in 0..levels {
        if i + 1 == levels {
            out.push(gauss[i].clone());
        } else {
            let (_, h, w) = gauss[i].dim();
            out.push(&gauss[i] - &pyr_up(&gauss[i + 1], h, w));
        }
    }
    out
}

/// `n` random 7×7 patches of one level as rows of 147 values (channel, dy, dx). Positions come
/// from a stream that depends only on the seed, the level and the level's size, so two
/// pictures of one size are sampled at the same places.
fn sample_patches(level: &Array3<f32>, n: usize, seed: u64, li: usize) -> Array2<f32> {
    let (c, h, w) = level.dim();
    let d = c * SWD_PATCH * SWD_PATCH;
    let key = mix(mix(li as u64 ^ mix(h as u64)) ^ w as u64);
    let mut rng = stream(seed, PURPOSE_SWD_PATCHES, key);
    let mut out = Array2::<f32>::zeros((n, d));
    for mut row in out.rows_mut() {
        let y0 = rng.random_range(0..=h - SWD_PATCH);
        let x0 = rng.random_range(0..=w - SWD_PATCH);
        let mut k = 0;
        for ch in 0..c {
            for dy in 0..SWD_PATCH {
                for dx in 0..SWD_PATCH {
                    row[k] = level[[ch, y0 + dy, x0 + dx]];
                    k += 1;
                }
            }
        }
    }
    out
}

/// Sliced Wasserstein distance between the patch sets of `a` and `b` (×10³).
///
/// Both pictures get the same number of pyramid levels, chosen from the shorter of their short
/// sides ([`pyramid_levels`]). Per level, `opts.patches` 7×7 patches are drawn from each
/// picture. Normalisation: for each colour channel, one mean and one standard deviation are
/// taken over all 49 values of that channel in every patch of BOTH sets together, and all
/// patch values of the channel are standardised with them (a shared normalisation keeps
/// contrast and colour differences visible, unlike PGGAN's per-set one). Then
/// `opts.directions` random unit directions in the 147-dimensional patch space (seeded per
/// level) project both sets; the projections are sorted and the mean absolute difference of
/// the sorted values (the 1-D Wasserstein-1 distance of equal-sized samples) is averaged over
/// the directions.
///
/// Panics when a picture is smaller than 7 px on a side.
pub fn sliced_wasserstein(a: &Array3<f32>, b: &Array3<f32>, opts: &SwdOptions) -> Swd {
    let short = a.dim().1.min(a.dim().2).min(b.dim().1).min(b.dim().2);
    assert!(
        short >= SWD_PATCH,
        "SWD needs pictures of at least 7 px a side"
    );
    let levels = pyramid_levels(short);
    let pa = laplacian_pyramid(a, levels);
    let pb = laplacian_pyramid(b, levels);
    let mut per_level = Vec::with_capacity(levels);
    for li in 0..levels {
        let mut da = sample_patches(&pa[li], opts.patches, opts.seed, li);
        let mut db = sample_patches(&pb[li], opts.patches, opts.seed, li);
        let c = pa[li].dim().0;
        let per = SWD_PATCH * SWD_PATCH;
        for ch in 0..c {
            let cols = ch * per..(ch + 1) * per;
            let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0.0f64);
            for d in [&da, &db] {
                for row in d.rows() {
                    for &v in row.slice(ndarray::s![cols.clone()]) {
                        s += f64::from(v);
                        s2 += f64::from(v) * f64::from(v);
                        n += 1.0;
                    }
                }
            }
            let mean = s / n;
            let std = (s2 / n - mean * mean).max(0.0).sqrt();
            // A flat channel carries no information: leave it centred but unscaled.
            let scale = if std > 1e-12 { 1.0 / std } else { 1.0 };
            for d in [&mut da, &mut db] {
                d.slice_mut(ndarray::s![.., cols.clone()])
                    .mapv_inplace(|v| ((f64::from(v) - mean) * scale) as f32);
            }
        }
        let dirs = directions(da.ncols(), opts.directions, opts.seed, li);
        let proj_a = da.dot(&dirs);
        let proj_b = db.dot(&dirs);
        let mut total = 0.0f64;
        for k in 0..opts.directions {
            let mut va = proj_a.column(k).to_vec();
            let mut vb = proj_b.column(k).to_vec();
            va.sort_unstable_by(f32::total_cmp);
            vb.sort_unstable_by(f32::total_cmp);
            let sum: f64 = va
                .iter()
                .zip(&vb)
                .map(|(x, y)| f64::from((x - y).abs()))
                .sum();
            total += sum / va.len() as f64;
        }
        per_level.push(total / opts.directions as f64 * 1e3);
    }
    let mean = per_level.iter().sum::<f64>() / per_level.len() as f64;
    let bands = &per_level[..per_level.len().saturating_sub(1).max(1)];
    let texture = bands.iter().sum::<f64>() / bands.len() as f64;
    Swd {
        levels: per_level,
        mean,
        texture,
    }
}

/// (dim, n) matrix of random unit column vectors (Gaussian, normalised: uniform on the sphere).
fn directions(dim: usize, n: usize, seed: u64, li: usize) -> Array2<f32> {
    let mut rng = stream(seed, PURPOSE_SWD_DIRS, li as u64);
    let mut m = Array2::<f32>::zeros((dim, n));
    for k in 0..n {
        let v: Vec<f64> = (0..dim).map(|_| normal(&mut rng)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        for (i, x) in v.iter().enumerate() {
            m[[i, k]] = (x / norm) as f32;
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Luminance, SSIM, edges

/// Rec. 601 luma (0.299 R + 0.587 G + 0.114 B) of a [-1, 1] picture, in [0, 1], as (H, W).
pub fn luminance(img: &Array3<f32>) -> Array2<f64> {
    let (_, h, w) = img.dim();
    Array2::from_shape_fn((h, w), |(y, x)| {
        let v = |c: usize| (f64::from(img[[c, y, x]]) + 1.0) * 0.5;
        0.299 * v(0) + 0.587 * v(1) + 0.114 * v(2)
    })
}

/// Normalised 11-tap Gaussian, σ = 1.5.
fn gauss11() -> [f64; 11] {
    let mut g = [0.0; 11];
    for (i, v) in g.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f64 = g.iter().sum();
    g.map(|v| v / s)
}

/// Separable 11×11 Gaussian filter over the positions where the window fits ("valid").
fn filter_valid(p: &Array2<f64>, g: &[f64; 11]) -> Array2<f64> {
    let (h, w) = p.dim();
    let (oh, ow) = (h - 10, w - 10);
    let tmp = Array2::from_shape_fn((h, ow), |(y, x)| {
        g.iter()
            .enumerate()
            .map(|(k, t)| t * p[[y, x + k]])
            .sum::<f64>()
    });
    Array2::from_shape_fn((oh, ow), |(y, x)| {
        g.iter()
            .enumerate()
            .map(|(k, t)| t * tmp[[y + k, x]])
            .sum::<f64>()
    })
}

/// Mean SSIM (Wang et al. 2004) of two luminance maps in [0, 1]: 11×11 Gaussian window
/// (σ = 1.5) over the positions where it fits, C1 = (0.01·L)², C2 = (0.03·L)² with L = 1.
/// None when a side is under 11 px. Panics when the sizes differ.
pub fn ssim(x: &Array2<f64>, y: &Array2<f64>) -> Option<f64> {
    assert_eq!(x.dim(), y.dim(), "SSIM needs maps of one size");
    let (h, w) = x.dim();
    if h < 11 || w < 11 {
        return None;
    }
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let g = gauss11();
    let mx = filter_valid(x, &g);
    let my = filter_valid(y, &g);
    let sxx = filter_valid(&(x * x), &g);
    let syy = filter_valid(&(y * y), &g);
    let sxy = filter_valid(&(x * y), &g);
    let mut total = 0.0;
    for i in 0..mx.len() {
        let (a, b) = (mx.as_slice().unwrap()[i], my.as_slice().unwrap()[i]);
        let vx = sxx.as_slice().unwrap()[i] - a * a;
        let vy = syy.as_slice().unwrap()[i] - b * b;
        let cxy = sxy.as_slice().unwrap()[i] - a * b;
        total += ((2.0 * a * b + c1) * (2.0 * cxy + c2)) / ((a * a + b * b + c1) * (vx + vy + c2));
    }
    Some(total / mx.len() as f64)
}

/// Sobel gradient magnitude at the interior pixels ((H−2, W−2)).
pub fn sobel_magnitude(p: &Array2<f64>) -> Array2<f64> {
    let (h, w) = p.dim();
    Array2::from_shape_fn((h.saturating_sub(2), w.saturating_sub(2)), |(y, x)| {
        let v = |dy: usize, dx: usize| p[[y + dy, x + dx]];
        let gx = (v(0, 2) + 2.0 * v(1, 2) + v(2, 2)) - (v(0, 0) + 2.0 * v(1, 0) + v(2, 0));
        let gy = (v(2, 0) + 2.0 * v(2, 1) + v(2, 2)) - (v(0, 0) + 2.0 * v(0, 1) + v(0, 2));
        (gx * gx + gy * gy).sqrt()
    })
}

/// Pearson correlation of two maps of one size. When a map is flat (no variance) the
/// correlation is undefined: 1 if both maps are equal, else 0.
pub fn pearson(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let n = a.len() as f64;
    let (ma, mb) = (a.sum() / n, b.sum() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 1e-24 || sbb <= 1e-24 {
        return if a == b { 1.0 } else { 0.0 };
    }
    sab / (saa * sbb).sqrt()
}

/// Correlation of the Sobel edge magnitude maps of two pictures' luminance (same size).
pub fn edge_correlation(a: &Array3<f32>, b: &Array3<f32>) -> f64 {
    pearson(
        &sobel_magnitude(&luminance(a)),
        &sobel_magnitude(&luminance(b)),
    )
}

// ---------------------------------------------------------------------------------------------
// CIE Lab

const SRGB_TO_XYZ: [[f64; 3]; 3] = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175_0],
    [0.019_333_9, 0.119_192_0, 0.950_304_1],
];
/// D65 white as the matrix maps sRGB white (its rows summed: 0.95047, 1.0000001, 1.08883), so
/// white is exactly L = 100, a = b = 0.
const WHITE: [f64; 3] = [
    SRGB_TO_XYZ[0][0] + SRGB_TO_XYZ[0][1] + SRGB_TO_XYZ[0][2],
    SRGB_TO_XYZ[1][0] + SRGB_TO_XYZ[1][1] + SRGB_TO_XYZ[1][2],
    SRGB_TO_XYZ[2][0] + SRGB_TO_XYZ[2][1] + SRGB_TO_XYZ[2][2],
];
const EPS: f64 = 6.0 / 29.0;

fn to_linear(c: f64) -> f64 {
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn to_gamma(c: f64) -> f64 {
    if c <= 0.003_130_8 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

/// sRGB in [0, 1] → CIE L*a*b* (D65 white, 2° observer).
pub fn srgb_to_lab(rgb: [f64; 3]) -> [f64; 3] {
    let lin = rgb.map(to_linear);
    let f = |t: f64| {
        if t > EPS.powi(3) {
            t.cbrt()
        } else {
            t / (3.0 * EPS * EPS) + 4.0 / 29.0
        }
    };
    let xyz: [f64; 3] =
        std::array::from_fn(|i| (0..3).map(|j| SRGB_TO_XYZ[i][j] * lin[j]).sum::<f64>() / WHITE[i]);
    let (fx, fy, fz) = (f(xyz[0]), f(xyz[1]), f(xyz[2]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// Inverse of a 3×3 matrix (the XYZ matrix is well conditioned).
fn invert3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let cof = |r: usize, c: usize| {
        let (r0, r1) = ((r + 1) % 3, (r + 2) % 3);
        let (c0, c1) = ((c + 1) % 3, (c + 2) % 3);
        m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
    };
    std::array::from_fn(|i| std::array::from_fn(|j| cof(j, i) / det))
}

/// CIE L*a*b* → sRGB in [0, 1], not clamped (out-of-gamut colours fall outside).
pub fn lab_to_srgb(lab: [f64; 3]) -> [f64; 3] {
    let inv = invert3(&SRGB_TO_XYZ);
    let fy = (lab[0] + 16.0) / 116.0;
    let fx = fy + lab[1] / 500.0;
    let fz = fy - lab[2] / 200.0;
    let finv = |t: f64| {
        if t > EPS {
            t * t * t
        } else {
            3.0 * EPS * EPS * (t - 4.0 / 29.0)
        }
    };
    let xyz = [
        finv(fx) * WHITE[0],
        finv(fy) * WHITE[1],
        finv(fz) * WHITE[2],
    ];
    std::array::from_fn(|i| to_gamma((0..3).map(|j| inv[i][j] * xyz[j]).sum::<f64>()))
}

/// A [-1, 1] picture as three Lab planes (L, a, b), each H·W values in row-major order.
pub fn picture_to_lab(img: &Array3<f32>) -> [Vec<f64>; 3] {
    let (_, h, w) = img.dim();
    let mut out = [
        Vec::with_capacity(h * w),
        Vec::with_capacity(h * w),
        Vec::with_capacity(h * w),
    ];
    for y in 0..h {
        for x in 0..w {
            let rgb = std::array::from_fn(|c| (f64::from(img[[c, y, x]]) + 1.0) * 0.5);
            let lab = srgb_to_lab(rgb);
            for c in 0..3 {
                out[c].push(lab[c]);
            }
        }
    }
    out
}

/// Quantile of sorted values at probability p: linear interpolation at position p·n − 0.5,
/// clamped to the first and last values.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let pos = (p * n as f64 - 0.5).clamp(0.0, (n - 1) as f64);
    let i = pos.floor() as usize;
    let j = (i + 1).min(n - 1);
    let t = pos - i as f64;
    sorted[i] * (1.0 - t) + sorted[j] * t
}

pub(super) fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    s
}

/// 1-D Wasserstein-1 distance between two samples, as the mean |Qa(p) − Qb(p)| over the
/// [`LAB_QUANTILES`] probabilities p = (k + ½)/[`LAB_QUANTILES`].
pub fn wasserstein_1d(a: &[f64], b: &[f64]) -> f64 {
    let (sa, sb) = (sorted(a), sorted(b));
    (0..LAB_QUANTILES)
        .map(|k| {
            let p = (k as f64 + 0.5) / LAB_QUANTILES as f64;
            (quantile_sorted(&sa, p) - quantile_sorted(&sb, p)).abs()
        })
        .sum::<f64>()
        / LAB_QUANTILES as f64
}

/// Per-channel (L, a, b) 1-D Wasserstein-1 distances between the pictures' pixel colours.
pub fn lab_distance(a: &Array3<f32>, b: &Array3<f32>) -> [f64; 3] {
    let (la, lb) = (picture_to_lab(a), picture_to_lab(b));
    std::array::from_fn(|c| wasserstein_1d(&la[c], &lb[c]))
}

// ---------------------------------------------------------------------------------------------
// All together

/// Every metric with the default SWD sampling ([`SWD_PATCHES`], [`SWD_DIRECTIONS`], seed 0).
pub fn evaluate(result: &Array3<f32>, source: &Array3<f32>, target: &Array3<f32>) -> Metrics {
    evaluate_with(result, source, target, &SwdOptions::default())
}

/// Every metric of `result`: style (SWD) and colour (Lab W1) against `target` at their own
/// sizes; content (SSIM, edges) against `source` at the source's size (the result is resized
/// bilinearly to it if needed), SSIM also after a 4× bilinear downscale of both.
pub fn evaluate_with(
    result: &Array3<f32>,
    source: &Array3<f32>,
    target: &Array3<f32>,
    swd: &SwdOptions,
) -> Metrics {
    let (_, sh, sw) = source.dim();
    let at_source = if result.dim() == source.dim() {
        result.clone()
    } else {
        resize_bilinear(result, sw, sh)
    };
    let (ly_r, ly_s) = (luminance(&at_source), luminance(source));
    let ssim_full = ssim(&ly_r, &ly_s).unwrap_or(f64::NAN);
    let (qw, qh) = ((sw / 4).max(1), (sh / 4).max(1));
    let ssim_4x = ssim(
        &luminance(&resize_bilinear(&at_source, qw, qh)),
        &luminance(&resize_bilinear(source, qw, qh)),
    );
    let lab_w1 = lab_distance(result, target);
    Metrics {
        swd: sliced_wasserstein(result, target, swd),
        ssim: ssim_full,
        ssim_4x,
        edge_correlation: pearson(&sobel_magnitude(&ly_r), &sobel_magnitude(&ly_s)),
        lab_w1,
        lab_w1_sum: lab_w1.iter().sum(),
    }
}

/// Smallest side `eval` accepts (the SSIM window and the SWD pyramid need room).
pub const EVAL_MIN_SIDE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_101() {
        let v: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(v, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn pyramid_keeps_constants_and_sums_back() {
        let img = Array3::from_elem((3, 37, 50), 0.3f32);
        let up = pyr_up(&pyr_down(&img), 37, 50);
        assert!(up.iter().all(|v| (v - 0.3).abs() < 1e-6));
        assert_eq!(pyramid_levels(16), 1);
        assert_eq!(pyramid_levels(30), 1); // 15 px would be under 16
        assert_eq!(pyramid_levels(31), 2);
        assert_eq!(pyramid_levels(32), 2);
        assert_eq!(pyramid_levels(128), 4);
        // Collapsing the Laplacian pyramid gives the picture back.
        let img = Array3::from_shape_fn((3, 40, 45), |(c, y, x)| {
            ((c * 7 + y * 3 + x * x) % 13) as f32 / 13.0
        });
        let lap = laplacian_pyramid(&img, 2);
        let (_, h, w) = lap[0].dim();
        let back = &lap[0] + &pyr_up(&lap[1], h, w);
        assert!(back.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // a matrix product reads best with indices
    fn inverse_matrix() {
        let inv = invert3(&SRGB_TO_XYZ);
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| SRGB_TO_XYZ[i][k] * inv[k][j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
