//! PatchNCE's patch sampling: the feature rows at a list of flat positions y·W+x for a range of
//! batch rows, and the adjoint that adds row gradients back at those positions. Rows are
//! position-major: row i·b + j is batch row r0 + j at position ids[i], so that one patch per
//! crop (a single position) gives the rows in batch order.

use crate::tensor::Real;
use ndarray::{Array2, Array4, s};

/// Whether rows `r0..r0+b` at every position of `ids` (at least one) lie in a map of `shape`
/// (N,C,H,W) (shared by every backend).
pub fn check_positions(
    shape: [usize; 4],
    r0: usize,
    b: usize,
    ids: &[usize],
) -> Result<(), String> {
    let [n, _, h, w] = shape;
    match ids.iter().find(|&&p| p >= h * w) {
        _ if ids.is_empty() => Err(format!("gather: no positions in {shape:?}")),
        Some(p) => Err(format!("gather: position {p} outside {h}×{w} of {shape:?}")),
        None if b > 0 && r0 + b <= n => Ok(()),
        None => Err(format!("gather: rows {r0}..{} of {shape:?}", r0 + b)),
    }
}

/// Whether `rows` (len(ids)·B, C·…) scatter into `shape` at rows `r0..r0+B`, positions `ids`.
pub fn check_scatter(
    shape: [usize; 4],
    rows: [usize; 4],
    r0: usize,
    ids: &[usize],
) -> Result<(), String> {
    let per = rows[0] / ids.len().max(1);
    if ids.is_empty() || per * ids.len() != rows[0] || rows[1] * rows[2] * rows[3] != shape[1] {
        return Err(format!(
            "scatter_add: rows {rows:?} at {} positions vs {shape:?}",
            ids.len()
        ));
    }
    check_positions(shape, r0, per, ids)
}

/// Rows (len(ids)·b, C) of feature map `f` (N,C,H,W): row i·b + j is batch row r0 + j at flat
/// position ids[i].
pub fn gather_positions<T: Real>(f: &Array4<T>, r0: usize, b: usize, ids: &[usize]) -> Array2<T> {
    let (ch, w) = (f.shape()[1], f.shape()[3]);
    let mut rows = Array2::zeros((ids.len() * b, ch));
    for (i, &pos) in ids.iter().enumerate() {
        rows.slice_mut(s![i * b..(i + 1) * b, ..])
            .assign(&f.slice(s![r0..r0 + b, .., pos / w, pos % w]));
    }
    rows
}

/// d[r0 + j, :, ids[i]] += rows[i·b + j, :], positions in order: the adjoint of
/// [`gather_positions`] (a position listed twice receives both rows).
pub fn scatter_add_positions<T: Real>(
    d: &mut Array4<T>,
    r0: usize,
    ids: &[usize],
    rows: &Array2<T>,
) {
    let w = d.shape()[3];
    let b = rows.nrows() / ids.len();
    for (i, &pos) in ids.iter().enumerate() {
        let mut dst = d.slice_mut(s![r0..r0 + b, .., pos / w, pos % w]);
        dst += &rows.slice(s![i * b..(i + 1) * b, ..]);
    }
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
        let rows = gather_positions(&f, 1, 2, &[4]);
        assert_eq!(rows, ndarray::arr2(&[[1011.0, 1111.0], [2011.0, 2111.0]]));
        let mut d = Array4::zeros((3, 2, 2, 3));
        scatter_add_positions(&mut d, 1, &[4], &rows);
        scatter_add_positions(&mut d, 1, &[4], &rows);
        assert_eq!(d[[2, 1, 1, 1]], 2.0 * 2111.0);
        assert_eq!(d.iter().filter(|v| **v != 0.0).count(), 4);
    }

    /// Several positions: position-major rows, and ⟨gather(f), r⟩ = ⟨f, scatter(r)⟩.
    #[test]
    fn several_positions_are_position_major_and_adjoint() {
        let f = Array4::from_shape_fn((3, 2, 2, 3), |(n, c, y, x)| {
            (n * 1000 + c * 100 + y * 10 + x) as f64
        });
        let ids = [5, 0, 5];
        let rows = gather_positions(&f, 0, 2, &ids);
        assert_eq!(rows.dim(), (6, 2));
        assert_eq!(rows.row(1).to_vec(), vec![1012.0, 1112.0]);
        assert_eq!(rows.row(2).to_vec(), vec![0.0, 100.0]);
        assert_eq!(rows.row(5), rows.row(1));
        let r = Array2::from_shape_fn((6, 2), |(i, c)| (i * 7 + c * 3) as f64 - 10.0);
        let mut d = Array4::zeros((3, 2, 2, 3));
        scatter_add_positions(&mut d, 0, &ids, &r);
        let lhs: f64 = (&rows * &r).sum();
        let rhs: f64 = (&f * &d).sum();
        assert_eq!(lhs, rhs);
        assert!(check_positions([3, 2, 2, 3], 0, 2, &ids).is_ok());
        assert!(check_positions([3, 2, 2, 3], 0, 2, &[6]).is_err());
        assert!(check_positions([3, 2, 2, 3], 2, 2, &[0]).is_err());
        assert!(check_positions([3, 2, 2, 3], 0, 2, &[]).is_err());
        assert!(check_scatter([3, 2, 2, 3], [5, 2, 1, 1], 0, &ids).is_err());
        assert!(check_scatter([3, 2, 2, 3], [6, 2, 1, 1], 0, &ids).is_ok());
    }
}
