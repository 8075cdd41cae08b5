//! D's windows: each crop cut into its non-overlapping S×S windows (batched along N), and the
//! inverse, which is also the adjoint (the windows tile the crop exactly).

use crate::tensor::Real;
use ndarray::Array4;

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
