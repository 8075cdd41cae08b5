//! Swapping the first two axes of a 4-D tensor: a (Cout, Cin, k, k) weight to the
//! (Cin, Cout, k, k) layout of conv_transpose2d and back.

use crate::tensor::Real;
use ndarray::Array4;

/// (A, B, H, W) → (B, A, H, W), standard layout.
pub fn swap01<T: Real>(x: &Array4<T>) -> Array4<T> {
    x.view()
        .permuted_axes([1, 0, 2, 3])
        .as_standard_layout()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_and_is_its_own_inverse() {
        let x = Array4::from_shape_fn((2, 3, 2, 1), |(a, b, c, _)| (a * 100 + b * 10 + c) as f64);
        let y = swap01(&x);
        assert_eq!(y.dim(), (3, 2, 2, 1));
        assert_eq!(y[[2, 1, 1, 0]], 121.0);
        assert!(y.is_standard_layout());
        assert_eq!(swap01(&y), x);
    }
}
