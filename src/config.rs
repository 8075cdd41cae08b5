//! Model and training configuration (the official SinCUT options this engine uses).

use serde::{Deserialize, Serialize};

/// Everything that fixes the networks' shapes and the losses of one training step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Training crop size (G and NCE see crop×crop).
    pub crop: usize,
    pub batch: usize,
    pub ngf: usize,
    pub ndf: usize,
    /// Resolution the widths are computed for (64 in official SinCUT).
    pub model_resolution: usize,
    /// D is built for this window and scores each non-overlapping window of a crop.
    pub d_window: usize,
    #[serde(rename = "lambda_GAN")]
    pub lambda_gan: f64,
    #[serde(rename = "lambda_NCE")]
    pub lambda_nce: f64,
    #[serde(rename = "lambda_R1")]
    pub lambda_r1: f64,
    #[serde(rename = "lambda_identity")]
    pub lambda_idt: f64,
    #[serde(rename = "nce_T")]
    pub nce_t: f64,
    #[serde(rename = "netF_nc")]
    pub netf_nc: usize,
    /// PatchNCE positions per layer and crop (official `num_patches`; SinCUT uses 1). The
    /// negatives of each patch are all the other patches of the batch at its layer.
    #[serde(rename = "num_patches")]
    pub nce_patches: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            crop: 128,
            batch: 16,
            ngf: 10,
            ndf: 8,
            model_resolution: 64,
            d_window: 64,
            lambda_gan: 1.0,
            lambda_nce: 4.0,
            lambda_r1: 1.0,
            lambda_idt: 1.0,
            nce_t: 0.07,
            netf_nc: 256,
            nce_patches: 1,
            lr: 0.002,
            beta1: 0.0,
            beta2: 0.99,
            adam_eps: 1e-8,
        }
    }
}

/// Most PatchNCE rows (batch × patches) one layer may have: the CUDA kernel keeps a row of
/// similarities in shared memory (`PNCE_MAX_B` in kernels/patchnce.cu).
pub const MAX_NCE_ROWS: usize = 1024;

/// The encoder layers whose features PatchNCE uses.
pub const NCE_LAYERS: [usize; 3] = [0, 2, 4];

impl ModelConfig {
    /// G width at resolution r: round(16384·(ngf/32)/r), capped at 512 for r ≤ 32.
    pub fn g_channels(&self, r: usize) -> usize {
        let v = (16384.0 * (self.ngf as f64 / 32.0) / r as f64).round_ties_even() as usize;
        if r <= 32 { v.min(512) } else { v }
    }

    /// D width at resolution r: int(16384·(ndf/64)/r), capped at 384 for r ≤ 32.
    pub fn d_channels(&self, r: usize) -> usize {
        let v = (16384.0 * (self.ndf as f64 / 64.0) / r as f64) as usize;
        if r <= 32 { v.min(384) } else { v }
    }

    /// Number of D windows per crop side.
    pub fn d_tiles_per_side(&self) -> usize {
        self.crop / self.d_window
    }

    /// Checks the options against each other; the message is one line for the user.
    pub fn validate(&self) -> Result<(), String> {
        if !self.model_resolution.is_power_of_two() || self.model_resolution < 8 {
            return Err(format!(
                "model resolution {} must be a power of two ≥ 8",
                self.model_resolution
            ));
        }
        if !self.d_window.is_power_of_two() || self.d_window < 8 {
            return Err(format!(
                "D window {} must be a power of two ≥ 8",
                self.d_window
            ));
        }
        if self.crop == 0 || !self.crop.is_multiple_of(self.d_window) {
            return Err(format!(
                "crop {} must be a multiple of the D window {}",
                self.crop, self.d_window
            ));
        }
        if !self.crop.is_multiple_of(4) {
            return Err(format!("crop {} must be a multiple of 4", self.crop));
        }
        if self.batch < 2 {
            return Err(format!(
                "batch {} is too small: PatchNCE takes its negatives from the other crops of the batch (batch ≥ 2)",
                self.batch
            ));
        }
        if self.ngf == 0 || self.ndf == 0 {
            return Err("ngf and ndf must be positive".into());
        }
        let half_cells = (self.crop / 2) * (self.crop / 2);
        if self.nce_patches == 0 || self.nce_patches > half_cells {
            return Err(format!(
                "NCE patches {} must lie in 1..={half_cells} (the positions of a {}×{} feature map)",
                self.nce_patches,
                self.crop / 2,
                self.crop / 2
            ));
        }
        // With one patch the rows are the batch, which the memory estimate bounds first.
        if self.nce_patches > 1 && self.batch.saturating_mul(self.nce_patches) > MAX_NCE_ROWS {
            return Err(format!(
                "batch {} × NCE patches {} is more than {MAX_NCE_ROWS} PatchNCE rows",
                self.batch, self.nce_patches
            ));
        }
        if self.d_channels(4) == 0 || self.d_channels(self.d_window) == 0 {
            return Err(format!(
                "ndf {} is too small for D window {}",
                self.ndf, self.d_window
            ));
        }
        // A NaN or negative rate or weight trains nonsense (and a NaN is written to run.json as
        // null, which nothing can read back), so it is refused before anything is written.
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr {} must be a finite number > 0", self.lr));
        }
        for (name, v) in [
            ("lambda_GAN", self.lambda_gan),
            ("lambda_NCE", self.lambda_nce),
            ("lambda_R1", self.lambda_r1),
            ("lambda_identity", self.lambda_idt),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "loss weight {name} {v} must be a finite number ≥ 0"
                ));
            }
        }
        if !(self.nce_t.is_finite() && self.nce_t > 0.0) {
            return Err(format!("nce_T {} must be a finite number > 0", self.nce_t));
        }
        if !((0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2)) {
            return Err(format!(
                "Adam betas ({}, {}) must lie in [0, 1)",
                self.beta1, self.beta2
            ));
        }
        if !(self.adam_eps.is_finite() && self.adam_eps > 0.0) {
            return Err(format!(
                "Adam eps {} must be a finite number > 0",
                self.adam_eps
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_widths() {
        let c = ModelConfig {
            ngf: 10,
            ndf: 8,
            ..Default::default()
        };
        assert_eq!((c.g_channels(64), c.g_channels(32)), (80, 160));
        let d: Vec<usize> = [64, 32, 16, 8, 4]
            .iter()
            .map(|&r| c.d_channels(r))
            .collect();
        assert_eq!(d, vec![32, 64, 128, 256, 384]);
        let g = ModelConfig {
            ngf: 4,
            ndf: 2,
            ..Default::default()
        };
        assert_eq!((g.g_channels(64), g.g_channels(32)), (32, 64));
        assert_eq!(g.d_channels(4), 128);
    }

    #[test]
    fn rejects_contradictions() {
        let c = ModelConfig {
            crop: 96,
            d_window: 64,
            ..Default::default()
        };
        assert!(c.validate().is_err());
        let c = ModelConfig {
            batch: 1,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("negatives"));
        assert!(ModelConfig::default().validate().is_ok());
        for (patches, needle) in [
            (0, "NCE patches 0"),
            (64 * 64 + 1, "1..=4096"),
            (65, "patches 65 is more than 1024"),
        ] {
            let c = ModelConfig {
                nce_patches: patches,
                ..Default::default()
            };
            assert!(c.validate().unwrap_err().contains(needle), "{patches}");
        }
        let c = ModelConfig {
            nce_patches: 64,
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        let c = ModelConfig {
            batch: usize::MAX,
            nce_patches: 2,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("PatchNCE rows"));
    }

    #[test]
    fn rejects_non_finite_or_negative_rates_and_weights() {
        for (c, needle) in [
            (
                ModelConfig {
                    lr: f64::NAN,
                    ..Default::default()
                },
                "lr NaN",
            ),
            (
                ModelConfig {
                    lr: -0.1,
                    ..Default::default()
                },
                "lr -0.1",
            ),
            (
                ModelConfig {
                    lr: f64::INFINITY,
                    ..Default::default()
                },
                "lr inf",
            ),
            (
                ModelConfig {
                    lambda_nce: -1.0,
                    ..Default::default()
                },
                "lambda_NCE -1",
            ),
            (
                ModelConfig {
                    lambda_gan: f64::NAN,
                    ..Default::default()
                },
                "lambda_GAN NaN",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        // Zero weights switch a loss off, which is legitimate.
        let c = ModelConfig {
            lambda_idt: 0.0,
            lambda_r1: 0.0,
            ..Default::default()
        };
        assert!(c.validate().is_ok());
    }
}
