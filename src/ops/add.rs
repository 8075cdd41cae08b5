//! dst[offset..offset+len(src)] += src over the flat (standard-layout) elements: gradient
//! accumulation, and adding a per-term gradient into one half of a batch.

use crate::tensor::Real;
use ndarray::Array4;

/// Adds `src` element by element into `dst`'s flat elements starting at `offset`.
/// Panics when it does not fit (the engine checks shapes before calling).
pub fn add_into<T: Real>(dst: &mut Array4<T>, offset: usize, src: &Array4<T>) {
    let d = dst.as_slice_mut().expect("standard layout");
    let src = src.as_standard_layout();
    let s = src.as_slice().expect("standard layout");
    assert!(offset + s.len() <= d.len(), "add_into: source does not fit");
    for (a, &b) in d[offset..offset + s.len()].iter_mut().zip(s) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_at_an_offset_only() {
        let mut d = Array4::<f32>::ones((2, 2, 1, 1));
        let s = Array4::from_shape_vec((1, 2, 1, 1), vec![10.0, 20.0]).unwrap();
        add_into(&mut d, 2, &s);
        assert_eq!(d.as_slice().unwrap(), &[1.0, 1.0, 11.0, 21.0]);
    }
}
