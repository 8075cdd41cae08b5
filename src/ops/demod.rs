//! The demodulated weight of the decoder's StyledConv (style fixed to ones):
//! w' = w·s / √(Σ_{in,kh,kw} (w·s)² + 1e-8) per output channel, s = 1/√(Cin·k²).
//! The official parameter is (1,Cout,Cin,k,k); here it is viewed as (Cout,Cin,k,k).

use crate::tensor::Real;
use ndarray::{Array4, ArrayView4};

pub fn demod_forward<T: Real>(w: ArrayView4<T>) -> Array4<T> {
    let _ = w;
    todo!()
}

/// dL/dw from dL/dw'.
pub fn demod_backward<T: Real>(w: ArrayView4<T>, dw_eff: ArrayView4<T>) -> Array4<T> {
    let _ = (w, dw_eff);
    todo!()
}
