//! The blur of upfirdn2d as this network uses it (up = down = 1): zero-pad (pad0, pad1) on both
//! axes, then the separable FIR [1,3,3,1]⊗[1,3,3,1] normalised to sum 1, times `gain`
//! (4 after an upsampling transposed conv). Output length n + pad0 + pad1 − 3 per axis.

use super::gemm::{even_ranges, split_by_ranges};
use crate::parallel::{num_threads, par_for_each};
use crate::tensor::{Real, c};
use ndarray::Array4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blur {
    pub pad0: usize,
    pub pad1: usize,
    pub gain: f64,
}

impl Blur {
    /// Before a 3×3 stride-2 conv.
    pub const DOWN_3X3: Blur = Blur {
        pad0: 2,
        pad1: 2,
        gain: 1.0,
    };
    /// Before a 1×1 stride-2 skip conv.
    pub const DOWN_1X1: Blur = Blur {
        pad0: 1,
        pad1: 1,
        gain: 1.0,
    };
    /// After the stride-2 transposed 3×3 conv (H → 2H+1 → 2H).
    pub const UP: Blur = Blur {
        pad0: 1,
        pad1: 1,
        gain: 4.0,
    };

    pub fn out_len(&self, n: usize) -> usize {
        n + self.pad0 + self.pad1 - 3
    }

    pub fn forward<T: Real>(&self, x: &Array4<T>) -> Array4<T> {
        let (_, _, h, w) = x.dim();
        let out = (self.out_len(h), self.out_len(w));
        self.apply(x, out, -(self.pad0 as isize))
    }

    /// The adjoint: dL/dx from dL/dy; `in_hw` is x's (H, W).
    pub fn backward<T: Real>(&self, dy: &Array4<T>, in_hw: (usize, usize)) -> Array4<T> {
        let (_, _, ho, wo) = dy.dim();
        assert!(
            (self.out_len(in_hw.0), self.out_len(in_hw.1)) == (ho, wo),
            "Blur::backward: dy {:?} does not fit input {in_hw:?}",
            dy.dim()
        );
        // The kernel is symmetric, so the adjoint is the same correlation shifted by pad0 − 3.
        self.apply(dy, in_hw, self.pad0 as isize - 3)
    }

    /// The per-axis taps [1,3,3,1]/8·√gain (the 2-D kernel is their outer product).
    fn taps<T: Real>(&self) -> [T; 4] {
        let g = self.gain.sqrt() / 8.0;
        [c(g), c(3.0 * g), c(3.0 * g), c(g)]
    }

    /// out[i, j] = Σ_{a,b} k[a]·k[b]·src[i+off+a, j+off+b] (zero outside src), separably:
    /// rows first into a (H, Wo) buffer, then columns.
    fn apply<T: Real>(&self, src: &Array4<T>, (ho, wo): (usize, usize), off: isize) -> Array4<T> {
        let (n, ch, h, w) = src.dim();
        let k = self.taps::<T>();
        let src = src.as_standard_layout();
        let xs = src.as_slice().unwrap();
        let mut out = Array4::<T>::zeros((n, ch, ho, wo));
        let planes = n * ch;
        // Small maps are not worth a thread spawn.
        let threads = if planes * ho * wo < 1 << 16 {
            1
        } else {
            num_threads()
        };
        let ranges = even_ranges(planes, threads.min(planes.max(1)));
        let parts = split_by_ranges(out.as_slice_mut().unwrap(), &ranges, ho * wo);
        let items: Vec<_> = ranges.into_iter().zip(parts).collect();
        par_for_each(items, |_, (range, part)| {
            let mut tmp = vec![T::zero(); h * wo];
            let mut row = vec![T::zero(); wo + 3];
            // The window positions m whose source column m + off lies inside the row.
            let m_lo = (-off).max(0) as usize;
            let m_hi = ((w as isize - off).max(m_lo as isize) as usize)
                .min(wo + 3)
                .max(m_lo);
            for (j, pl) in range.enumerate() {
                let x = &xs[pl * h * w..(pl + 1) * h * w];
                let y = &mut part[j * ho * wo..(j + 1) * ho * wo];
                // Rows: copy the in-range part of each input row into a zero-padded window.
                for r in 0..h {
                    row.fill(T::zero());
                    row[m_lo..m_hi].copy_from_slice(
                        &x[r * w + (m_lo as isize + off) as usize..][..m_hi - m_lo],
                    );
                    let t = &mut tmp[r * wo..(r + 1) * wo];
                    for (d, win) in t.iter_mut().zip(row.windows(4)) {
                        *d = k[0] * win[0] + k[1] * win[1] + k[2] * win[2] + k[3] * win[3];
                    }
                }
                // Columns: each output row is a weighted sum of up to four buffered rows.
                for i in 0..ho {
                    let yr = &mut y[i * wo..(i + 1) * wo];
                    for (a, &ka) in k.iter().enumerate() {
                        let r = i as isize + off + a as isize;
                        if r < 0 || r as usize >= h {
                            continue;
                        }
                        let t = &tmp[r as usize * wo..(r as usize + 1) * wo];
                        for (d, v) in yr.iter_mut().zip(t) {
                            *d = *d + ka * *v;
                        }
                    }
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::{ArrayD, Dim, Ix4};

    fn d4(a: &ArrayD<f64>) -> Array4<f64> {
        a.clone().into_dimensionality::<Ix4>().unwrap()
    }

    /// upfirdn2d (up = down = 1) written directly: pad, then the full 4×4 kernel.
    fn naive(b: &Blur, x: &Array4<f64>) -> Array4<f64> {
        let (n, ch, h, w) = x.dim();
        let k1 = [1.0, 3.0, 3.0, 1.0];
        let (ho, wo) = (b.out_len(h), b.out_len(w));
        let mut y = Array4::zeros((n, ch, ho, wo));
        for ((bi, ci, i, j), v) in y.indexed_iter_mut() {
            let mut acc = 0.0;
            for a in 0..4 {
                for e in 0..4 {
                    let (r, col) = (
                        (i + a) as isize - b.pad0 as isize,
                        (j + e) as isize - b.pad0 as isize,
                    );
                    if r >= 0 && col >= 0 && (r as usize) < h && (col as usize) < w {
                        acc += k1[a] * k1[e] / 64.0 * x[[bi, ci, r as usize, col as usize]];
                    }
                }
            }
            *v = acc * b.gain;
        }
        y
    }

    #[test]
    fn blur_forward_and_gradients() {
        for (name, b) in [
            ("DOWN_3X3", Blur::DOWN_3X3),
            ("DOWN_1X1", Blur::DOWN_1X1),
            ("UP", Blur::UP),
        ] {
            for &(h, w) in &[(7, 6), (8, 9), (2, 3)] {
                let x = rand_array(Dim([2, 3, h, w]), 50).into_dyn();
                let y = b.forward(&d4(&x));
                assert_eq!(y.dim(), (2, 3, b.out_len(h), b.out_len(w)));
                let worst = (&y - &naive(&b, &d4(&x)))
                    .iter()
                    .fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(worst < 1e-14, "{name} {h}x{w}: forward vs direct {worst:e}");
                let proj = rand_array(y.raw_dim(), 51);
                let dx = b.backward(&proj, (h, w)).into_dyn();
                let loss = |xv: &ArrayD<f64>| dot(&b.forward(&d4(xv)), &proj);
                check_gradient(&format!("blur {name} {h}x{w}"), &x, &dx, loss, 1e-8, 1e-7);
            }
        }
    }

    #[test]
    fn blur_large_maps_threaded() {
        // Large enough to be split over the threads; backward checked by ⟨Bx, y⟩ = ⟨x, Bᵀy⟩.
        for b in [Blur::DOWN_3X3, Blur::DOWN_1X1, Blur::UP] {
            let x = rand_array(Dim([4, 16, 40, 37]), 53);
            let y = b.forward(&x);
            let worst = (&y - &naive(&b, &x))
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(worst < 1e-14, "{b:?}: forward vs direct {worst:e}");
            let p = rand_array(y.raw_dim(), 54);
            let (l, r) = (dot(&y, &p), dot(&x, &b.backward(&p, (40, 37))));
            assert!(
                (l - r).abs() < 1e-10 * l.abs().max(1.0),
                "{b:?}: adjoint {l} vs {r}"
            );
        }
    }

    #[test]
    fn blur_f32_matches_f64() {
        let x = rand_array(Dim([2, 5, 9, 8]), 52);
        for b in [Blur::DOWN_3X3, Blur::DOWN_1X1, Blur::UP] {
            let y32 = b.forward(&x.mapv(|v| v as f32));
            let y64 = b.forward(&x);
            let worst = y32
                .iter()
                .zip(y64.iter())
                .fold(0.0f64, |m, (a, e)| m.max((*a as f64 - e).abs()));
            assert!(worst < 1e-6 * b.gain, "{b:?}: f32 vs f64 {worst:e}");
        }
    }
}
