//! Reading and writing pictures: RGB as planar f32 (3, H, W) in [-1, 1].

use crate::io::Result;
use ndarray::Array3;
use std::path::Path;

/// How to write a picture (the format comes from the file extension).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaveOptions {
    /// JPEG quality 1..=100.
    pub jpeg_quality: u8,
    /// 16 bits per channel (PNG and TIFF only).
    pub sixteen_bit: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            jpeg_quality: 95,
            sixteen_bit: false,
        }
    }
}

/// Loads any supported picture as RGB (3, H, W) in [-1, 1], with its EXIF orientation applied.
pub fn load_rgb(path: &Path) -> Result<Array3<f32>> {
    let _ = path;
    todo!()
}

/// Writes (3, H, W) values in [-1, 1] (clamped), atomically, in the format of the extension.
pub fn save_rgb(path: &Path, img: &Array3<f32>, opts: &SaveOptions) -> Result<()> {
    let _ = (path, img, opts);
    todo!()
}

/// Resizes (3, H, W) to (3, new_h, new_w) with PIL's BILINEAR filter (a triangle filter whose
/// support grows with the shrink factor, so shrinking is antialiased), as the official data
/// pipeline does.
pub fn resize_bilinear(img: &Array3<f32>, new_w: usize, new_h: usize) -> Array3<f32> {
    let _ = (img, new_w, new_h);
    todo!()
}
