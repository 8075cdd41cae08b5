//! Identity loss: mean |a − b| (PyTorch l1_loss; its gradient is sign(a − b)/n, 0 where equal).

use crate::tensor::Real;
use ndarray::Array4;

pub fn l1_mean_forward<T: Real>(a: &Array4<T>, b: &Array4<T>) -> T {
    assert_eq!(a.dim(), b.dim(), "l1_mean_forward: shapes");
    let n = a.len();
    assert!(n > 0, "l1_mean_forward: empty");
    let as_ = a.as_slice().expect("l1: standard layout");
    let bs = b.as_slice().expect("l1: standard layout");
    // Differences and |·| rounded in T as PyTorch; the long sum accumulated in f64.
    let sum: f64 = as_
        .iter()
        .zip(bs)
        .map(|(&x, &y)| (x - y).abs().to_f64().unwrap())
        .sum();
    T::from_f64(sum / n as f64).unwrap()
}

/// d/da of the mean.
pub fn l1_mean_backward<T: Real>(a: &Array4<T>, b: &Array4<T>) -> Array4<T> {
    assert_eq!(a.dim(), b.dim(), "l1_mean_backward: shapes");
    let g = T::one() / T::from_usize(a.len()).unwrap();
    let z = T::zero();
    let mut d = a - b;
    // sgn(a − b)·(1/n), with sgn(0) = 0 as torch.sign.
    d.mapv_inplace(|v| {
        if v > z {
            g
        } else if v < z {
            -g
        } else {
            z
        }
    });
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, rand_array};
    use ndarray::{ArrayD, Ix4};

    #[test]
    fn forward_and_fd() {
        let a = rand_array(Ix4(3, 5, 7, 6), 91);
        let b = rand_array(Ix4(3, 5, 7, 6), 92);
        let m = l1_mean_forward(&a, &b);
        let e = (&a - &b).mapv(f64::abs).sum() / a.len() as f64;
        assert!((m - e).abs() < 1e-14);
        let d = l1_mean_backward(&a, &b);
        let loss =
            |x: &ArrayD<f64>| l1_mean_forward(&x.clone().into_dimensionality::<Ix4>().unwrap(), &b);
        check_gradient("l1 da", &a.into_dyn(), &d.into_dyn(), loss, 1e-10, 1e-7);
    }

    #[test]
    fn equal_entries_get_zero_gradient() {
        let a = rand_array(Ix4(1, 2, 3, 1), 93);
        let mut b = a.clone();
        b[[0, 1, 2, 0]] += 0.5;
        let d = l1_mean_backward(&a, &b);
        for ((_, ch, i, _), v) in d.indexed_iter() {
            let e = if (ch, i) == (1, 2) { -1.0 / 6.0 } else { 0.0 };
            assert_eq!(*v, e);
        }
    }
}
