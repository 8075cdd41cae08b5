//! Training crops as the official single-image dataset draws them (DESIGN §2), with all the
//! randomness of one iteration derived from (seed, iteration), so a resumed run draws exactly
//! what an uninterrupted one would.
//!
//! Per crop one zoom per axis, uniform in [1/3, 1]; the picture is resized bilinearly to
//! max(crop, zoom·size) per axis (only the crop's window is computed); crops lie on a crop-sized
//! grid with a random offset per crop; grid cells are taken from a shuffled sequence without
//! repetition (the official "100 000 crops" epoch, index modulo the number of cells); each crop
//! is flipped horizontally with probability ½. Source and target are drawn independently.
//!
//! The zoom per crop, not per batch: the official dataset precomputes one zoom per run of
//! `batch_size` consecutive indices, meaning to share it within a batch (its comment, and
//! DESIGN §2, say so), but `train.py`'s data loader shuffles the indices (`serial_batches` is
//! off), so a batch's crops come from unrelated runs and each takes its own zoom.

use crate::image::resize_bilinear_window;
use crate::train::StepInputs;
use ndarray::{Array3, Array4, s};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// The official dataset's nominal length: the shuffled crop sequence repeats after this many.
pub const CROPS_PER_EPOCH: usize = 100_000;
/// Smallest zoom (1 / official `random_scale_max`).
pub const MIN_ZOOM: f64 = 1.0 / 3.0;

pub use crate::rng::mix;

/// The random stream of one purpose (e.g. "iteration 812 of the source picture").
pub fn stream(seed: u64, purpose: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(seed ^ mix(purpose)) ^ index))
}

const PURPOSE_PERM_A: u64 = 1;
const PURPOSE_PERM_B: u64 = 2;
const PURPOSE_ITER: u64 = 3;

/// One picture's crop source.
pub struct CropSource {
    image: Array3<f32>,
    perm_purpose: u64,
    /// The current epoch's shuffled crop sequence (regenerated when the epoch changes).
    perm: Vec<u32>,
    perm_epoch: Option<u64>,
}

impl CropSource {
    fn new(image: Array3<f32>, perm_purpose: u64) -> Self {
        CropSource {
            image,
            perm_purpose,
            perm: Vec::new(),
            perm_epoch: None,
        }
    }

    fn cell_index(&mut self, seed: u64, crop_counter: u64) -> usize {
        let epoch = crop_counter / CROPS_PER_EPOCH as u64;
        if self.perm_epoch != Some(epoch) {
            let mut rng = stream(seed, self.perm_purpose, epoch);
            self.perm = (0..CROPS_PER_EPOCH as u32).collect();
            self.perm.shuffle(&mut rng);
            self.perm_epoch = Some(epoch);
        }
        self.perm[(crop_counter % CROPS_PER_EPOCH as u64) as usize] as usize
    }

    /// `batch` crops (batch, 3, crop, crop) for the batch whose first crop is `crop_counter`.
    fn crops(
        &mut self,
        seed: u64,
        crop_counter: u64,
        crop: usize,
        batch: usize,
        rng: &mut StdRng,
    ) -> Array4<f32> {
        let (_, h, w) = self.image.dim();
        let mut out = Array4::zeros((batch, 3, crop, crop));
        for b in 0..batch {
            let zx = rng.random_range(MIN_ZOOM..1.0);
            let zy = rng.random_range(MIN_ZOOM..1.0);
            let nw = (crop as f64).max(w as f64 * zx).round() as usize;
            let nh = (crop as f64).max(h as f64 * zy).round() as usize;
            let (cells_x, cells_y) = (nw / crop, nh / crop);
            let (room_x, room_y) = (nw - cells_x * crop, nh - cells_y * crop);
            let idx = self.cell_index(seed, crop_counter + b as u64) % (cells_x * cells_y);
            // Official order: column-major over the grid (ix = index / rows, iy = index % rows).
            let (ix, iy) = (idx / cells_y, idx % cells_y);
            let x0 = rng.random_range(0..=room_x) + ix * crop;
            let y0 = rng.random_range(0..=room_y) + iy * crop;
            let flip = rng.random::<f64>() > 0.5;
            let src = resize_bilinear_window(&self.image, nw, nh, x0, y0, crop, crop);
            let mut dst = out.slice_mut(s![b, .., .., ..]);
            if flip {
                dst.assign(&src.slice(s![.., .., ..;-1]));
            } else {
                dst.assign(&src);
            }
        }
        out
    }
}

/// Draws every iteration's inputs for a source/target pair.
pub struct Sampler {
    pub seed: u64,
    pub crop: usize,
    pub batch: usize,
    /// PatchNCE positions drawn per layer (1 unless [`Sampler::with_nce_patches`] says more).
    pub nce_patches: usize,
    source: CropSource,
    target: CropSource,
}

impl Sampler {
    /// Errors when a picture is smaller than a crop even at full size (one line, for the user).
    pub fn new(
        source: Array3<f32>,
        target: Array3<f32>,
        crop: usize,
        batch: usize,
        seed: u64,
    ) -> Result<Self, String> {
        for (what, img) in [("source", &source), ("target", &target)] {
            let (_, h, w) = img.dim();
            if h < crop || w < crop {
                return Err(format!(
                    "the {what} picture is {w}×{h}, smaller than the {crop}×{crop} crop"
                ));
            }
        }
        Ok(Sampler {
            seed,
            crop,
            batch,
            nce_patches: 1,
            source: CropSource::new(source, PURPOSE_PERM_A),
            target: CropSource::new(target, PURPOSE_PERM_B),
        })
    }

    /// The same sampler drawing `patches` PatchNCE positions per layer.
    pub fn with_nce_patches(mut self, patches: usize) -> Self {
        self.nce_patches = patches;
        self
    }

    /// The inputs of iteration `iteration` (0-based): crops, decoder noise, NCE patch ids.
    pub fn draw(&mut self, iteration: u64) -> StepInputs<f32> {
        let mut rng = stream(self.seed, PURPOSE_ITER, iteration);
        let counter = iteration * self.batch as u64;
        let (crop, batch, seed) = (self.crop, self.batch, self.seed);
        let real_a = self.source.crops(seed, counter, crop, batch, &mut rng);
        let real_b = self.target.crops(seed, counter, crop, batch, &mut rng);
        StepInputs::with_crops(real_a, real_b, self.nce_patches, &mut rng)
    }

    pub fn source_image(&self) -> &Array3<f32> {
        &self.source.image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient_image(w: usize, h: usize) -> Array3<f32> {
        Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            ((x + 2 * y + 7 * c) % 97) as f32 / 48.0 - 1.0
        })
    }

    #[test]
    fn several_nce_patches_are_distinct_positions_of_each_layer() {
        let mut s = Sampler::new(gradient_image(300, 200), gradient_image(250, 260), 16, 3, 4)
            .unwrap()
            .with_nce_patches(20);
        let mut seen_high = false;
        for it in 0..50 {
            let inp = s.draw(it);
            for ids in [&inp.nce_ids_x, &inp.nce_ids_y] {
                for (l, layer) in ids.iter().enumerate() {
                    let cells = if l == 0 { 16 * 16 } else { 8 * 8 };
                    assert_eq!(layer.len(), 20);
                    let mut sorted = layer.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    assert_eq!(sorted.len(), 20, "repeated position in {layer:?}");
                    assert!(layer.iter().all(|&p| p < cells), "{layer:?}");
                    seen_high |= l > 0 && layer.iter().any(|&p| p >= cells - 4);
                }
            }
        }
        // The whole range is drawn from, not only its start.
        assert!(seen_high);
    }

    #[test]
    fn draws_are_reproducible_per_iteration() {
        let mk =
            || Sampler::new(gradient_image(300, 200), gradient_image(250, 260), 64, 4, 9).unwrap();
        let (mut a, mut b) = (mk(), mk());
        let x5 = a.draw(5);
        // A fresh sampler asked for iteration 5 directly (as after a resume) draws the same.
        let _ = b.draw(0);
        let y5 = b.draw(5);
        assert_eq!(x5.real_a, y5.real_a);
        assert_eq!(x5.real_b, y5.real_b);
        assert_eq!(x5.noise, y5.noise);
        assert_eq!((x5.nce_ids_x, x5.nce_ids_y), (y5.nce_ids_x, y5.nce_ids_y));
        let x6 = a.draw(6);
        assert_ne!(x5.real_a, x6.real_a);
        assert_eq!(x5.real_a.dim(), (4, 3, 64, 64));
        assert!(x5.real_a.iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn each_crop_takes_its_own_zoom() {
        // Channel 0 rises linearly along x, channel 1 along y: inside a crop one pixel step
        // is 2/(zoomed width) and 2/(zoomed height), which gives each crop's zoom.
        let (w, h) = (600usize, 450usize);
        let ramp = Array3::from_shape_fn((3, h, w), |(c, y, x)| match c {
            0 => 2.0 * (x as f32 + 0.5) / w as f32 - 1.0,
            1 => 2.0 * (y as f32 + 0.5) / h as f32 - 1.0,
            _ => 0.0,
        });
        let mut s = Sampler::new(ramp.clone(), ramp, 64, 8, 5).unwrap();
        for it in 0..3 {
            let crops = s.draw(it).real_a;
            let zooms: Vec<(f64, f64)> = (0..8)
                .map(|b| {
                    let step_x = (crops[[b, 0, 32, 33]] - crops[[b, 0, 32, 32]]).abs();
                    let step_y = (crops[[b, 1, 33, 32]] - crops[[b, 1, 32, 32]]).abs();
                    let zx = 2.0 / f64::from(step_x) / w as f64;
                    let zy = 2.0 / f64::from(step_y) / h as f64;
                    assert!(zx > MIN_ZOOM * 0.99 && zx < 1.01, "zoom {zx}");
                    assert!(zy > MIN_ZOOM * 0.99 && zy < 1.01, "zoom {zy}");
                    (zx, zy)
                })
                .collect();
            let distinct = |f: fn(&(f64, f64)) -> f64| {
                let mut v: Vec<f64> = zooms.iter().map(f).collect();
                v.sort_by(f64::total_cmp);
                v.windows(2).filter(|p| p[1] - p[0] > 0.01).count() + 1
            };
            assert!(
                distinct(|z| z.0) >= 4 && distinct(|z| z.1) >= 4,
                "{zooms:?}"
            );
        }
    }

    #[test]
    fn grid_cells_do_not_repeat_within_an_epoch() {
        let mut s = CropSource::new(gradient_image(64, 64), PURPOSE_PERM_A);
        let first: Vec<usize> = (0..1000).map(|i| s.cell_index(3, i)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), first.len());
    }

    #[test]
    fn too_small_pictures_are_refused() {
        let err = Sampler::new(gradient_image(100, 50), gradient_image(300, 300), 64, 2, 0)
            .err()
            .unwrap();
        assert!(err.contains("100×50"), "{err}");
    }
}
