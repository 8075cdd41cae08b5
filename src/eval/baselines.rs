//! The colour baselines a translation is compared against: Reinhard transfer and histogram
//! matching.

use super::metrics::{lab_to_srgb, picture_to_lab, quantile_sorted, sorted};
use ndarray::Array3;

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// Reinhard et al. 2001 global colour transfer: each Lab channel of the source is shifted and
/// scaled to the target's mean and (population) standard deviation. CIE Lab stands in for the
/// paper's lαβ space (both decorrelate lightness from the two opponent colour axes). The result
/// is clamped to the sRGB cube, so its statistics match the target's exactly only when the
/// transfer stays in gamut.
pub fn reinhard_transfer(source: &Array3<f32>, target: &Array3<f32>) -> Array3<f32> {
    let (ls, lt) = (picture_to_lab(source), picture_to_lab(target));
    let (_, h, w) = source.dim();
    let maps: [(f64, f64, f64, f64); 3] = std::array::from_fn(|c| {
        let (ms, ss) = mean_std(&ls[c]);
        let (mt, st) = mean_std(&lt[c]);
        // A flat source channel cannot be stretched: only move it to the target's mean.
        let gain = if ss > 1e-12 { st / ss } else { 0.0 };
        (ms, gain, mt, st)
    });
    let mut out = Array3::<f32>::zeros((3, h, w));
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let lab = std::array::from_fn(|c| {
                let (ms, g, mt, _) = maps[c];
                (ls[c][i] - ms) * g + mt
            });
            let rgb = lab_to_srgb(lab);
            for c in 0..3 {
                out[[c, y, x]] = (rgb[c].clamp(0.0, 1.0) * 2.0 - 1.0) as f32;
            }
        }
    }
    out
}

/// Per-channel histogram matching in RGB (quantile mapping): the source pixel of rank r (ties
/// broken by position) among n takes the target's quantile at p = (r + ½)/n. With pictures of
/// one size the output's values per channel are exactly the target's.
pub fn histogram_match(source: &Array3<f32>, target: &Array3<f32>) -> Array3<f32> {
    let (c, h, w) = source.dim();
    let mut out = Array3::<f32>::zeros((c, h, w));
    for ch in 0..c {
        let src: Vec<f64> = source
            .index_axis(ndarray::Axis(0), ch)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let tgt = sorted(
            &target
                .index_axis(ndarray::Axis(0), ch)
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
        );
        let mut order: Vec<usize> = (0..src.len()).collect();
        order.sort_by(|&i, &j| src[i].total_cmp(&src[j]).then(i.cmp(&j)));
        let n = src.len() as f64;
        let mut plane = out.index_axis_mut(ndarray::Axis(0), ch);
        let flat = plane.as_slice_mut().expect("fresh array");
        for (r, &i) in order.iter().enumerate() {
            flat[i] = quantile_sorted(&tgt, (r as f64 + 0.5) / n) as f32;
        }
    }
    out
}
