//! The presets: named starting points for a run's options.

use crate::config::ModelConfig;
use crate::run::RunConfig;
use std::path::PathBuf;

/// A named set of training options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// This project's defaults: crop 128, batch 16, ngf 10, ndf 8, ≈100k iterations (GPU-sized).
    Default,
    /// The official SinCUT geometry: crop 64, batch 16, ngf 10, ndf 8, 100k iterations.
    Official,
    /// A visible translation in about 12 minutes on a 2-core CPU (smaller model and batch, 64
    /// PatchNCE patches per crop).
    Quick,
    /// The quick model trained twice as long: about 25 minutes on a 2-core CPU.
    Cpu,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Official => "official",
            Preset::Quick => "quick",
            Preset::Cpu => "cpu",
        }
    }

    /// (model, iterations, snapshot interval, checkpoint interval).
    pub fn settings(self) -> (ModelConfig, u64, u64, u64) {
        let base = ModelConfig::default();
        match self {
            Preset::Default => (base, 100_000, 2_000, 1_000),
            Preset::Official => (ModelConfig { crop: 64, ..base }, 100_000, 2_000, 1_000),
            Preset::Quick => (quick_model(base), 1_500, 250, 250),
            Preset::Cpu => (quick_model(base), 3_000, 500, 250),
        }
    }
}

/// The CPU-sized model: crop 64, batch 4, ngf 4, ndf 4 (a sixth of G's parameters), and 64
/// PatchNCE positions per crop and layer instead of SinCUT's one: at batch 4 one position gives
/// PatchNCE 4 rows to tell apart, 64 give it 256 (CUT's own count); on the official pair that
/// kept more of the painting and came closer to the photo's texture on every seed measured
/// (README, Translation quality).
fn quick_model(base: ModelConfig) -> ModelConfig {
    ModelConfig {
        crop: 64,
        batch: 4,
        ngf: 4,
        ndf: 4,
        nce_patches: 64,
        ..base
    }
}

impl RunConfig {
    /// A fresh run's configuration from a preset (pictures empty, seed 0, 512-pixel previews
    /// and tiles, quality metrics at the snapshot interval).
    pub fn from_preset(preset: Preset) -> RunConfig {
        let (model, iters, snapshot_every, checkpoint_every) = preset.settings();
        RunConfig {
            source: PathBuf::new(),
            target: PathBuf::new(),
            model,
            iters,
            seed: 0,
            snapshot_every,
            checkpoint_every,
            preview_size: 512,
            tiles: 512,
            preset: Some(preset.name().to_string()),
            eval_every: snapshot_every,
            device: None,
            precision: None,
            changes: Vec::new(),
            time: None,
            ema_half_life: crate::train::ema::DEFAULT_EMA_HALF_LIFE,
            ema_rampup: crate::train::ema::DEFAULT_EMA_RAMPUP,
            no_ema: false,
        }
    }
}
