//! Row L2 normalisation of F's outputs: y = x/(‖x‖ + 1e-7), rows of (B, D).

use crate::tensor::{Real, c};
use ndarray::{Array2, ArrayView1, Zip};

const EPS: f64 = 1e-7;

/// ‖row‖₂ in T: squares summed in f64 (within the rounding of PyTorch's `pow(2).sum(1)`),
/// then rounded to T and square-rooted in T as `.pow(1/2)` does.
fn row_norm<T: Real>(row: ArrayView1<T>) -> T {
    let ss: f64 = row
        .iter()
        .map(|v| {
            let f = v.to_f64().unwrap();
            f * f
        })
        .sum();
    T::from_f64(ss).unwrap().sqrt()
}

pub fn l2norm_forward<T: Real>(x: &Array2<T>) -> Array2<T> {
    let mut y = x.to_owned();
    let eps: T = c(EPS);
    for mut row in y.rows_mut() {
        // `x.div(norm + 1e-7)`: a division per element, as PyTorch.
        let d = row_norm(row.view()) + eps;
        row.mapv_inplace(|v| v / d);
    }
    y
}

/// dL/dx from dL/dy.
pub fn l2norm_backward<T: Real>(x: &Array2<T>, dy: &Array2<T>) -> Array2<T> {
    assert_eq!(x.dim(), dy.dim(), "l2norm_backward: shapes");
    let eps: T = c(EPS);
    let mut dx = Array2::<T>::zeros(x.dim());
    Zip::from(dx.rows_mut())
        .and(x.rows())
        .and(dy.rows())
        .for_each(|mut gx, xr, gy| {
            // y = x/d with d = r + ε, r = ‖x‖: dx = dy/d − x·⟨dy, x⟩/(d²·r).
            let r = row_norm(xr);
            let d = r + eps;
            let xdy: f64 = xr
                .iter()
                .zip(gy.iter())
                .map(|(a, b)| a.to_f64().unwrap() * b.to_f64().unwrap())
                .sum();
            // At x = 0 the norm has no derivative; its term is then taken as 0 (the x factor is 0).
            let coef: T = if r > T::zero() {
                T::from_f64(xdy).unwrap() / (d * d * r)
            } else {
                T::zero()
            };
            Zip::from(&mut gx)
                .and(&xr)
                .and(&gy)
                .for_each(|o, &xv, &g| *o = g / d - coef * xv);
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, rand_array};
    use ndarray::{ArrayD, Ix2};

    #[test]
    fn forward_rows_have_unit_norm() {
        let x = rand_array(Ix2(5, 7), 51);
        let y = l2norm_forward(&x);
        for (yr, xr) in y.rows().into_iter().zip(x.rows()) {
            let n = xr.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (a, b) in yr.iter().zip(xr.iter()) {
                assert!((a - b / (n + 1e-7)).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn backward_fd() {
        // Rows of different scales, so the ε in the denominator matters for small ones.
        let mut x = rand_array(Ix2(5, 7), 52);
        x.row_mut(1).mapv_inplace(|v| v * 1e-3);
        x.row_mut(3).mapv_inplace(|v| v * 20.0);
        let proj = rand_array(Ix2(5, 7), 53);
        let dx = l2norm_backward(&x, &proj);
        let loss = |x: &ArrayD<f64>| {
            let y = l2norm_forward(&x.clone().into_dimensionality::<Ix2>().unwrap());
            (&y * &proj).sum()
        };
        check_gradient("l2norm dx", &x.into_dyn(), &dx.into_dyn(), loss, 1e-8, 1e-6);
    }
}
