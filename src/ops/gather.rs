//! PatchNCE's patch sampling: the feature rows at one flat position y·W+x for a range of batch
//! rows, and the adjoint that adds row gradients back at that position.

use crate::tensor::Real;
use ndarray::{Array2, Array4, s};

/// Whether rows `r0..r0+b` at flat position `pos` lie in a map of `shape` (N,C,H,W) (shared
/// by every backend).
pub fn check_position(shape: [usize; 4], r0: usize, b: usize, pos: usize) -> Result<(), String> {
    let [n, _, h, w] = shape;
    if b > 0 && r0 + b <= n && pos < h * w {
        Ok(())
    } else {
        Err(format!(
            "gather: rows {r0}..{} at {pos} of {shape:?}",
            r0 + b
        ))
    }
}

/// Whether `rows` (B, C·…) scatter into `shape` at rows `r0..r0+B`, position `pos`.
pub fn check_scatter(
    shape: [usize; 4],
    rows: [usize; 4],
    r0: usize,
    pos: usize,
) -> Result<(), String> {
    check_position(shape, r0, rows[0], pos)?;
    if rows[1] * rows[2] * rows[3] == shape[1] {
        Ok(())
    } else {
        Err(format!("scatter_add: rows {rows:?} vs {shape:?}"))
    }
}

/// Rows (B, C) of feature map `f` (N,C,H,W) at flat position `pos`, batch rows `r0..r0+b`.
pub fn gather_position<T: Real>(f: &Array4<T>, r0: usize, b: usize, pos: usize) -> Array2<T> {
    let w = f.shape()[3];
    f.slice(s![r0..r0 + b, .., pos / w, pos % w]).to_owned()
}

/// d[r0.., :, pos] += rows: the adjoint of [`gather_position`].
pub fn scatter_add_position<T: Real>(d: &mut Array4<T>, r0: usize, pos: usize, rows: &Array2<T>) {
    let w = d.shape()[3];
    let mut dst = d.slice_mut(s![r0..r0 + rows.nrows(), .., pos / w, pos % w]);
    dst += rows;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_are_adjoint() {
        let f = Array4::from_shape_fn((3, 2, 2, 3), |(n, c, y, x)| {
            (n * 1000 + c * 100 + y * 10 + x) as f64
        });
        // Position 4 of a 2×3 map is (y 1, x 1).
        let rows = gather_position(&f, 1, 2, 4);
        assert_eq!(rows, ndarray::arr2(&[[1011.0, 1111.0], [2011.0, 2111.0]]));
        let mut d = Array4::zeros((3, 2, 2, 3));
        scatter_add_position(&mut d, 1, 4, &rows);
        scatter_add_position(&mut d, 1, 4, &rows);
        assert_eq!(d[[2, 1, 1, 1]], 2.0 * 2111.0);
        assert_eq!(d.iter().filter(|v| **v != 0.0).count(), 4);
    }
}
