//! Noise injection: y = x + w·n, one noise channel n (N,1,H,W) broadcast over channels, w scalar.

use crate::tensor::Real;
use ndarray::Array4;

/// In place on x.
pub fn noise_forward<T: Real>(x: &mut Array4<T>, w: T, n: &Array4<T>) {
    let (bn, ch, h, wd) = x.dim();
    assert_eq!(n.dim(), (bn, 1, h, wd), "noise_forward: noise shape");
    let plane = h * wd;
    if plane == 0 {
        return;
    }
    let ns = n.as_slice().expect("noise_forward: standard layout");
    let xs = x.as_slice_mut().expect("noise_forward: standard layout");
    // PyTorch: `image + weight * noise`: the product w·n is rounded first, then added.
    for (i, p) in xs.chunks_exact_mut(plane).enumerate() {
        let np = &ns[(i / ch) * plane..(i / ch + 1) * plane];
        for (v, &nv) in p.iter_mut().zip(np) {
            *v = *v + w * nv;
        }
    }
}

/// dL/dw = Σ dy·n (dL/dx = dy).
pub fn noise_backward_weight<T: Real>(dy: &Array4<T>, n: &Array4<T>) -> T {
    let (bn, ch, h, wd) = dy.dim();
    assert_eq!(
        n.dim(),
        (bn, 1, h, wd),
        "noise_backward_weight: noise shape"
    );
    let plane = h * wd;
    if plane == 0 {
        return T::zero();
    }
    let ns = n
        .as_slice()
        .expect("noise_backward_weight: standard layout");
    let ds = dy
        .as_slice()
        .expect("noise_backward_weight: standard layout");
    // f64 accumulation: a long reduction, kept within PyTorch's (pairwise) rounding.
    let mut acc = 0.0f64;
    for (i, p) in ds.chunks_exact(plane).enumerate() {
        let np = &ns[(i / ch) * plane..(i / ch + 1) * plane];
        acc += p
            .iter()
            .zip(np)
            .map(|(d, v)| d.to_f64().unwrap() * v.to_f64().unwrap())
            .sum::<f64>();
    }
    T::from_f64(acc).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::{Array1, Ix4};

    #[test]
    fn noise_forward_broadcasts_and_weight_grad_fd() {
        let x = rand_array(Ix4(3, 5, 7, 6), 31);
        let n = rand_array(Ix4(3, 1, 7, 6), 32);
        let proj = rand_array(Ix4(3, 5, 7, 6), 33);
        let w = 0.37;
        let mut y = x.clone();
        noise_forward(&mut y, w, &n);
        for ((b, ch, i, j), v) in y.indexed_iter() {
            assert_eq!(*v, x[[b, ch, i, j]] + w * n[[b, 0, i, j]]);
        }
        let dw = noise_backward_weight(&proj, &n);
        let loss = |w: &ndarray::ArrayD<f64>| {
            let mut y = x.clone();
            noise_forward(&mut y, w[[0]], &n);
            dot(&y, &proj)
        };
        check_gradient(
            "noise dw",
            &Array1::from(vec![w]).into_dyn(),
            &Array1::from(vec![dw]).into_dyn(),
            loss,
            1e-8,
            1e-7,
        );
    }
}
