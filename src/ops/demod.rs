//! The demodulated weight of the decoder's StyledConv (style fixed to ones):
//! w' = w·s / √(Σ_{in,kh,kw} (w·s)² + 1e-8) per output channel, s = 1/√(Cin·k²).
//! The official parameter is (1,Cout,Cin,k,k); here it is viewed as (Cout,Cin,k,k).

use crate::tensor::{Real, c};
use ndarray::{Array4, ArrayView4};

/// Per output channel o: (s, d) with d = 1/√(s²·Σw[o]² + 1e-8), so that w'[o] = w[o]·s·d.
fn scales<T: Real>(w: &ArrayView4<T>) -> (T, Vec<T>) {
    let (cout, cin, k, _) = w.dim();
    let s = T::one() / c::<T>((cin * k * k) as f64).sqrt();
    let d = w
        .outer_iter()
        .map(|wo| {
            let ss: T = wo.iter().map(|v| *v * *v).sum();
            T::one() / (s * s * ss + c(1e-8)).sqrt()
        })
        .collect::<Vec<_>>();
    assert_eq!(d.len(), cout);
    (s, d)
}

pub fn demod_forward<T: Real>(w: ArrayView4<T>) -> Array4<T> {
    let (s, d) = scales(&w);
    let mut out = w.to_owned();
    for (mut o, dv) in out.outer_iter_mut().zip(d) {
        o.mapv_inplace(|v| v * s * dv);
    }
    out
}

/// dL/dw from dL/dw'.
/// With q = s²Σw² + ε and d = q^(−1/2): ∂w'_j/∂w_i = s·d·δ_ij − s³·d³·w_i·w_j, so
/// dL/dw = s·d·g − s³·d³·⟨g, w⟩·w per output channel (g = dL/dw').
pub fn demod_backward<T: Real>(w: ArrayView4<T>, dw_eff: ArrayView4<T>) -> Array4<T> {
    assert_eq!(w.dim(), dw_eff.dim(), "demod_backward: w vs dw_eff");
    let (s, d) = scales(&w);
    let mut out = dw_eff.to_owned();
    for ((mut g, wo), dv) in out.outer_iter_mut().zip(w.outer_iter()).zip(d) {
        let gw: T = g.iter().zip(wo.iter()).map(|(a, b)| *a * *b).sum();
        let a = s * dv;
        let b = a * a * a * gw;
        g.zip_mut_with(&wo, |gv, wv| *gv = a * *gv - b * *wv);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::{ArrayD, Dim, Ix4};

    fn d4(a: &ArrayD<f64>) -> Array4<f64> {
        a.clone().into_dimensionality::<Ix4>().unwrap()
    }

    #[test]
    fn demod_forward_normalises_each_output_channel() {
        let w = rand_array(Dim([5, 3, 3, 3]), 60);
        let y = demod_forward(w.view());
        let s = 1.0 / 27f64.sqrt();
        for (o, yo) in y.outer_iter().enumerate() {
            let ss: f64 = w
                .index_axis(ndarray::Axis(0), o)
                .iter()
                .map(|v| (v * s).powi(2))
                .sum();
            let want = s / (ss + 1e-8).sqrt();
            for (a, b) in yo.iter().zip(w.index_axis(ndarray::Axis(0), o).iter()) {
                assert!(
                    (a - b * want).abs() < 1e-14,
                    "channel {o}: {a} vs {}",
                    b * want
                );
            }
            // Unit norm up to the ε.
            let n2: f64 = yo.iter().map(|v| v * v).sum();
            assert!((n2 - 1.0).abs() < 1e-6, "channel {o}: |w'|² = {n2}");
        }
    }

    #[test]
    fn demod_gradient() {
        for &(co, ci, k) in &[(5, 3, 3), (4, 7, 1)] {
            let w = rand_array(Dim([co, ci, k, k]), 61).into_dyn();
            let g = rand_array(Dim([co, ci, k, k]), 62);
            let dw = demod_backward(d4(&w).view(), g.view()).into_dyn();
            let loss = |wv: &ArrayD<f64>| dot(&demod_forward(d4(wv).view()), &g);
            check_gradient(
                &format!("demod {co}x{ci}x{k}x{k}"),
                &w,
                &dw,
                loss,
                1e-8,
                1e-6,
            );
        }
    }
}
