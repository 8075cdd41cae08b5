//! CPU tensors: `ndarray` arrays in NCHW layout, generic over the float type.
//!
//! The engine runs in `f32` (what training and the golden fixtures use); every op is also
//! generic over `f64` so that finite-difference checks can be tight.

use ndarray::{Array4, ArrayD, IxDyn};

/// The float types the CPU engine computes in (`f32`, `f64`).
pub trait Real:
    ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::fmt::Debug
    + std::fmt::Display
    + Send
    + Sync
    + Default
    + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

/// A constant in the engine's float type (`c(0.2)`).
#[inline(always)]
pub fn c<T: Real>(x: f64) -> T {
    T::from_f64(x).expect("float constant")
}

/// Activations: (batch, channels, height, width), standard (C-contiguous) layout.
pub type Tensor4<T> = Array4<T>;

/// Converts between float types (f32 fixtures ↔ f64 replays).
pub fn cast<A: Real, B: Real>(a: &ArrayD<A>) -> ArrayD<B> {
    a.mapv(|v| B::from_f64(v.to_f64().unwrap()).unwrap())
}

/// Reshapes a dynamic array to 4-D (panics on mismatch: a programming error, not user input).
pub fn to4<T: Real>(a: &ArrayD<T>) -> Array4<T> {
    let s = a.shape();
    assert_eq!(s.len(), 4, "expected a 4-D tensor, got {:?}", s);
    a.clone()
        .into_shape_with_order((s[0], s[1], s[2], s[3]))
        .unwrap()
}

pub fn to_dyn<T: Real>(a: Array4<T>) -> ArrayD<T> {
    a.into_dyn()
}

pub fn zeros_dyn<T: Real>(shape: &[usize]) -> ArrayD<T> {
    ArrayD::zeros(IxDyn(shape))
}
