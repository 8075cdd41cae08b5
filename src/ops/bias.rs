//! Plain per-channel bias (PyTorch Linear's bias in F).

use crate::tensor::Real;
use ndarray::Array4;

/// x[:, c, :, :] += b[c], in place.
pub fn add_bias<T: Real>(x: &mut Array4<T>, b: &[T]) {
    let (n, ch, h, w) = x.dim();
    assert_eq!(b.len(), ch, "add_bias: bias length vs channels");
    let plane = h * w;
    let xs = x.as_slice_mut().expect("add_bias: standard layout");
    for (i, p) in xs.chunks_exact_mut(plane).enumerate().take(n * ch) {
        let bc = b[i % ch];
        p.iter_mut().for_each(|v| *v = *v + bc);
    }
}

/// Per-channel sums of an NCHW array, accumulated in f64 (a 32×64×64 reduction in f32 would
/// drift by far more than PyTorch's pairwise sum does; f64 keeps us within its rounding).
pub(crate) fn channel_sums<T: Real>(a: &Array4<T>) -> Vec<T> {
    let (_, ch, h, w) = a.dim();
    let plane = h * w;
    let mut acc = vec![0.0f64; ch];
    if plane > 0 {
        let s = a.as_slice().expect("channel_sums: standard layout");
        for (i, p) in s.chunks_exact(plane).enumerate() {
            acc[i % ch] += p.iter().map(|v| v.to_f64().unwrap()).sum::<f64>();
        }
    }
    acc.into_iter().map(|v| T::from_f64(v).unwrap()).collect()
}

/// dL/db = Σ over N, H, W of dy.
pub fn bias_grad<T: Real>(dy: &Array4<T>) -> Vec<T> {
    channel_sums(dy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::{Array1, Ix4};

    #[test]
    fn forward_adds_per_channel() {
        let x = rand_array(Ix4(3, 5, 7, 6), 1);
        let b: Vec<f64> = (0..5).map(|i| i as f64 * 0.3 - 0.7).collect();
        let mut y = x.clone();
        add_bias(&mut y, &b);
        for ((n, c, i, j), v) in y.indexed_iter() {
            assert_eq!(*v, x[[n, c, i, j]] + b[c]);
        }
    }

    #[test]
    fn bias_gradient_fd() {
        let x = rand_array(Ix4(3, 5, 7, 6), 2);
        let proj = rand_array(Ix4(3, 5, 7, 6), 3);
        let b = rand_array(ndarray::Ix1(5), 4).into_dyn();
        let loss = |b: &ndarray::ArrayD<f64>| {
            let mut y = x.clone();
            add_bias(&mut y, b.as_slice().unwrap());
            dot(&y, &proj)
        };
        let db = Array1::from(bias_grad(&proj)).into_dyn();
        check_gradient("bias db", &b, &db, loss, 1e-8, 1e-7);
    }
}
