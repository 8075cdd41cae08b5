//! Convolutions without bias (the equalized scale is applied by the caller): conv2d with zero
//! padding and stride, and its adjoint, PyTorch's conv_transpose2d (padding 0).

use crate::tensor::Real;
use ndarray::{Array4, ArrayView4};

/// Output length of a convolution along one axis.
pub fn conv_out_len(n: usize, k: usize, stride: usize, pad: usize) -> usize {
    (n + 2 * pad - k) / stride + 1
}

/// y = conv2d(x, w): x (N,Cin,H,W), w (Cout,Cin,k,k) → (N,Cout,Ho,Wo).
pub fn conv2d_forward<T: Real>(x: &Array4<T>, w: ArrayView4<T>, stride: usize, pad: usize) -> Array4<T> {
    let _ = (x, w, stride, pad);
    todo!()
}

/// dL/dx from dL/dy; `in_hw` is x's (H, W) (a stride can leave the last rows unused).
pub fn conv2d_backward_input<T: Real>(
    dy: &Array4<T>,
    w: ArrayView4<T>,
    stride: usize,
    pad: usize,
    in_hw: (usize, usize),
) -> Array4<T> {
    let _ = (dy, w, stride, pad, in_hw);
    todo!()
}

/// dL/dw (Cout,Cin,k,k), summed over the batch.
pub fn conv2d_backward_weight<T: Real>(
    x: &Array4<T>,
    dy: &Array4<T>,
    k: usize,
    stride: usize,
    pad: usize,
) -> Array4<T> {
    let _ = (x, dy, k, stride, pad);
    todo!()
}

/// PyTorch conv_transpose2d with padding 0: x (N,Cin,H,W), w (Cin,Cout,k,k)
/// → (N,Cout,(H−1)·s+k,(W−1)·s+k).
pub fn conv_transpose2d_forward<T: Real>(x: &Array4<T>, w: ArrayView4<T>, stride: usize) -> Array4<T> {
    let _ = (x, w, stride);
    todo!()
}

/// dL/dx of conv_transpose2d_forward.
pub fn conv_transpose2d_backward_input<T: Real>(dy: &Array4<T>, w: ArrayView4<T>, stride: usize) -> Array4<T> {
    let _ = (dy, w, stride);
    todo!()
}

/// dL/dw (Cin,Cout,k,k) of conv_transpose2d_forward, summed over the batch.
pub fn conv_transpose2d_backward_weight<T: Real>(x: &Array4<T>, dy: &Array4<T>, k: usize, stride: usize) -> Array4<T> {
    let _ = (x, dy, k, stride);
    todo!()
}
