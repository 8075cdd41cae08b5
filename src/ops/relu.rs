//! ReLU (between F's two linear layers).

use crate::tensor::Real;
use ndarray::Array4;

pub fn relu_forward<T: Real>(x: &mut Array4<T>) {
    let z = T::zero();
    // As PyTorch's clamp_min(x, 0): negatives become 0, NaN propagates.
    x.iter_mut().for_each(|v| {
        #[cfg(test)]
        {
            *v = super::fused_lrelu::kinks::side(*v, true);
        }
        if *v < z {
            *v = z
        }
    });
}

/// dy → dx in place, using the forward output y (gradient 0 where y ≤ 0, as PyTorch).
pub fn relu_backward<T: Real>(y: &Array4<T>, dy: &mut Array4<T>) {
    assert_eq!(y.dim(), dy.dim(), "relu_backward: shapes");
    let z = T::zero();
    let ys = y.as_slice().expect("relu_backward: standard layout");
    let ds = dy.as_slice_mut().expect("relu_backward: standard layout");
    for (d, &yv) in ds.iter_mut().zip(ys) {
        // threshold_backward: `y <= 0 ? 0 : dy`.
        if yv <= z {
            *d = z;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::Ix4;

    #[test]
    fn relu_gradient_fd() {
        let x = rand_array(Ix4(3, 5, 7, 6), 11);
        let proj = rand_array(Ix4(3, 5, 7, 6), 12);
        let mut y = x.clone();
        relu_forward(&mut y);
        for (a, b) in y.iter().zip(x.iter()) {
            assert_eq!(*a, b.max(0.0));
        }
        let mut dx = proj.clone();
        relu_backward(&y, &mut dx);
        let loss = |x: &ndarray::ArrayD<f64>| {
            let mut y = x.clone().into_dimensionality::<Ix4>().unwrap();
            relu_forward(&mut y);
            dot(&y, &proj)
        };
        check_gradient("relu dx", &x.into_dyn(), &dx.into_dyn(), loss, 1e-8, 1e-7);
    }

    #[test]
    fn relu_zero_gets_no_gradient() {
        let y = ndarray::Array4::<f64>::zeros((1, 1, 1, 2));
        let mut dy = ndarray::Array4::<f64>::ones((1, 1, 1, 2));
        relu_backward(&y, &mut dy);
        assert!(dy.iter().all(|&v| v == 0.0));
    }
}
