//! The blur of upfirdn2d as this network uses it (up = down = 1): zero-pad (pad0, pad1) on both
//! axes, then the separable FIR [1,3,3,1]⊗[1,3,3,1] normalised to sum 1, times `gain`
//! (4 after an upsampling transposed conv). Output length n + pad0 + pad1 − 3 per axis.

use crate::tensor::Real;
use ndarray::Array4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blur {
    pub pad0: usize,
    pub pad1: usize,
    pub gain: f64,
}

impl Blur {
    /// Before a 3×3 stride-2 conv.
    pub const DOWN_3X3: Blur = Blur { pad0: 2, pad1: 2, gain: 1.0 };
    /// Before a 1×1 stride-2 skip conv.
    pub const DOWN_1X1: Blur = Blur { pad0: 1, pad1: 1, gain: 1.0 };
    /// After the stride-2 transposed 3×3 conv (H → 2H+1 → 2H).
    pub const UP: Blur = Blur { pad0: 1, pad1: 1, gain: 4.0 };

    pub fn out_len(&self, n: usize) -> usize {
        n + self.pad0 + self.pad1 - 3
    }

    pub fn forward<T: Real>(&self, x: &Array4<T>) -> Array4<T> {
        let _ = x;
        todo!()
    }

    /// The adjoint: dL/dx from dL/dy; `in_hw` is x's (H, W).
    pub fn backward<T: Real>(&self, dy: &Array4<T>, in_hw: (usize, usize)) -> Array4<T> {
        let _ = (dy, in_hw);
        todo!()
    }
}
