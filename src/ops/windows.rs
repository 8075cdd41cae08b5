//! D's windows: each crop cut into its non-overlapping S×S windows (batched along N), and the
//! inverse, which is also the adjoint (the windows tile the crop exactly).

use crate::tensor::Real;
use ndarray::Array4;

/// Whether crops of `shape` (N,C,H,W) cut into whole S×S windows (shared by every backend).
pub fn check_to_windows(shape: [usize; 4], s: usize) -> Result<(), String> {
    let [_, _, h, w] = shape;
    if s > 0 && h.is_multiple_of(s) && w.is_multiple_of(s) {
        Ok(())
    } else {
        Err(format!(
            "to_windows: {h}×{w} is not a whole number of {s}×{s} windows"
        ))
    }
}

/// Whether windows of `shape` reassemble into N crops of H×W.
pub fn check_from_windows(shape: [usize; 4], n: usize, h: usize, w: usize) -> Result<(), String> {
    let [nw, _, s, s2] = shape;
    if s == s2 && s > 0 && h.is_multiple_of(s) && w.is_multiple_of(s) && nw == n * (h / s) * (w / s)
    {
        Ok(())
    } else {
        Err(format!("from_windows: {shape:?} vs crops ({n}, {h}, {w})"))
    }
}

/// Cuts each crop (N,C,H,W) into its non-overlapping S×S windows, crop-major, row-major within a
/// crop: (N·(H/S)·(W/S), C, S, S).
pub fn to_windows<T: Real>(x: &Array4<T>, s: usize) -> Array4<T> {
    let (n, ch, h, w) = x.dim();
    if h == s && w == s {
        return x.clone();
    }
    let (ty, tx) = (h / s, w / s);
    let mut out = Array4::zeros((n * ty * tx, ch, s, s));
    for i in 0..n {
        for a in 0..ty {
            for b in 0..tx {
                let src = x.slice(ndarray::s![i, .., a * s..(a + 1) * s, b * s..(b + 1) * s]);
                out.slice_mut(ndarray::s![(i * ty + a) * tx + b, .., .., ..])
                    .assign(&src);
            }
        }
    }
    out
}

/// The inverse (and adjoint) of `to_windows`.
pub fn from_windows<T: Real>(win: &Array4<T>, n: usize, h: usize, w: usize) -> Array4<T> {
    let (_, ch, s, _) = win.dim();
    if h == s && w == s {
        return win.clone();
    }
    let (ty, tx) = (h / s, w / s);
    let mut out = Array4::zeros((n, ch, h, w));
    for i in 0..n {
        for a in 0..ty {
            for b in 0..tx {
                let src = win.slice(ndarray::s![(i * ty + a) * tx + b, .., .., ..]);
                out.slice_mut(ndarray::s![i, .., a * s..(a + 1) * s, b * s..(b + 1) * s])
                    .assign(&src);
            }
        }
    }
    out
}
