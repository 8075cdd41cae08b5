//! y = x·s with an f32 (engine-precision) factor: equalized-learning-rate weights, loss weights
//! on upstream gradients, R1's λ/N.

use crate::tensor::Real;
use ndarray::Array4;

/// A scaled copy of `x` (each element rounded once, `v * s`).
pub fn scale<T: Real>(x: &Array4<T>, s: T) -> Array4<T> {
    x.mapv(|v| v * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_every_element() {
        let x = Array4::from_shape_fn((2, 3, 1, 2), |(a, b, _, d)| (a * 6 + b * 2 + d) as f32);
        let y = scale(&x, 0.5f32);
        assert_eq!(y.dim(), x.dim());
        assert!(y.iter().zip(x.iter()).all(|(a, b)| *a == *b * 0.5));
    }
}
