//! Residual sum of a ResBlock: out = (a + b)/√2.

use crate::tensor::{Real, c};
use ndarray::Array4;

/// (a + b)/√2 into a new array.
pub fn residual_forward<T: Real>(a: &Array4<T>, b: &Array4<T>) -> Array4<T> {
    assert_eq!(a.dim(), b.dim(), "residual_forward: shapes");
    // PyTorch: `(out + skip) / math.sqrt(2)`: a true division by the f32-rounded √2.
    let s: T = c(std::f64::consts::SQRT_2);
    let a_s = a.as_slice().expect("residual_forward: standard layout");
    let b_s = b.as_slice().expect("residual_forward: standard layout");
    let out = a_s.iter().zip(b_s).map(|(&x, &y)| (x + y) / s).collect();
    Array4::from_shape_vec(a.dim(), out).expect("residual_forward: shape")
}

/// Both inputs receive dy/√2: scales dy in place and returns nothing (caller uses it twice).
pub fn residual_backward<T: Real>(dy: &mut Array4<T>) {
    // Division backward: grad / other (again a division, as PyTorch's DivBackward).
    let s: T = c(std::f64::consts::SQRT_2);
    dy.iter_mut().for_each(|v| *v = *v / s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::Ix4;

    #[test]
    fn residual_gradient_fd() {
        let a = rand_array(Ix4(3, 5, 7, 6), 21);
        let b = rand_array(Ix4(3, 5, 7, 6), 22);
        let proj = rand_array(Ix4(3, 5, 7, 6), 23);
        let y = residual_forward(&a, &b);
        assert!(
            (y[[1, 2, 3, 4]] - (a[[1, 2, 3, 4]] + b[[1, 2, 3, 4]]) / 2f64.sqrt()).abs() < 1e-15
        );
        let mut d = proj.clone();
        residual_backward(&mut d);
        let la = |a: &ndarray::ArrayD<f64>| {
            let y = residual_forward(&a.clone().into_dimensionality::<Ix4>().unwrap(), &b);
            dot(&y, &proj)
        };
        check_gradient(
            "residual da",
            &a.clone().into_dyn(),
            &d.clone().into_dyn(),
            la,
            1e-8,
            1e-7,
        );
        let lb = |b: &ndarray::ArrayD<f64>| {
            let y = residual_forward(&a, &b.clone().into_dimensionality::<Ix4>().unwrap());
            dot(&y, &proj)
        };
        check_gradient("residual db", &b.into_dyn(), &d.into_dyn(), lb, 1e-8, 1e-7);
    }
}
