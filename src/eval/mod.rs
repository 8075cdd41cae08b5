//! Translation-quality metrics (no pretrained networks) and the colour baselines they are
//! compared against. Pictures are (3, H, W) f32 in [-1, 1], as [`crate::image::load_rgb`] gives
//! them; every figure is deterministic for a given seed.
//!
//! - Style distance: sliced Wasserstein distance (SWD) between 7×7 RGB patch sets on a
//!   Laplacian pyramid, as in the Progressive GAN paper ([`sliced_wasserstein`]).
//! - Content kept: SSIM of the luminance at the source's resolution and at a 4× downscale
//!   ([`ssim`]), and the Pearson correlation of Sobel edge magnitudes ([`edge_correlation`]).
//! - Colour statistics: per-channel 1-D Wasserstein-1 distance in CIE Lab ([`lab_distance`]).
//! - Baselines: Reinhard et al. 2001 colour transfer ([`reinhard_transfer`]) and per-channel
//!   histogram matching in RGB ([`histogram_match`]).
//!
//! The `sincut eval` command is [`crate::cli::eval`].

pub mod baselines;
pub mod metrics;

pub use baselines::{histogram_match, reinhard_transfer};
pub use metrics::{
    EVAL_MIN_SIDE, LAB_QUANTILES, Metrics, SWD_DIRECTIONS, SWD_MIN_SIDE, SWD_PATCH, SWD_PATCHES,
    Swd, SwdOptions, edge_correlation, evaluate, evaluate_with, lab_distance, lab_to_srgb,
    laplacian_pyramid, luminance, pearson, picture_to_lab, pyramid_levels, quantile_sorted,
    sliced_wasserstein, sobel_magnitude, srgb_to_lab, ssim, wasserstein_1d,
};
