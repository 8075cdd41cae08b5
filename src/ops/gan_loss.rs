//! Non-saturating GAN terms: mean softplus(x) (fake, for D) or mean softplus(−x) (real for D,
//! fake for G). PyTorch's softplus returns x itself above 20.

use crate::tensor::Real;

/// mean over all logits of softplus(±x); `negate` selects softplus(−x).
pub fn softplus_mean_forward<T: Real>(logits: &[T], negate: bool) -> T {
    let _ = (logits, negate);
    todo!()
}

/// d(mean softplus(±x))/dx.
pub fn softplus_mean_backward<T: Real>(logits: &[T], negate: bool) -> Vec<T> {
    let _ = (logits, negate);
    todo!()
}
