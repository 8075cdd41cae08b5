//! Σx² accumulated in f64 (R1's penalty on D's input gradient).

use crate::tensor::Real;

pub fn sum_squares<T: Real>(x: &[T]) -> f64 {
    x.iter()
        .map(|&v| {
            let v = v.to_f64().unwrap();
            v * v
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_squares() {
        assert_eq!(super::sum_squares(&[1.0f32, -2.0, 3.0]), 14.0);
    }
}
