//! One SinCUT training step and iteration as pure functions of their inputs.

pub mod ema;
pub mod step;

use crate::config::{ModelConfig, NCE_LAYERS};
use crate::nn::ParamMap;
use crate::tensor::Real;
use ndarray::{Array4, ArrayD};

/// All the randomness of one step, drawn outside it.
#[derive(Clone, Debug)]
pub struct StepInputs<T> {
    /// Source crops (N,3,crop,crop) in [-1, 1].
    pub real_a: Array4<T>,
    /// Target crops (N,3,crop,crop).
    pub real_b: Array4<T>,
    /// Decoder noise (2N,1,crop,crop): rows 0..N with G(real_a), N..2N with G(real_b).
    pub noise: Array4<T>,
    /// Flat indices y·W+x of the sampled patches per NCE layer (0, 2, 4) for
    /// NCE(real_a → fake_b): distinct positions, each taken in every crop of the batch.
    pub nce_ids_x: NcePositions,
    /// The same for NCE(real_b → idt_b).
    pub nce_ids_y: NcePositions,
}

/// The patch positions of the three NCE layers (the official `num_patches` per layer; SinCUT's
/// default is one).
pub type NcePositions = [Vec<usize>; 3];

impl StepInputs<f32> {
    /// The step inputs for these crops, with the rest of a step's randomness (decoder noise,
    /// then `patches` NCE patch positions per layer for X and Y) drawn from `rng` in that order.
    /// One patch is drawn as an integer in the layer's range, more as distinct positions (the
    /// official `randperm(H·W)[:num_patches]`).
    pub fn with_crops<R: rand::Rng>(
        real_a: Array4<f32>,
        real_b: Array4<f32>,
        patches: usize,
        rng: &mut R,
    ) -> Self {
        use rand::RngExt;
        let (batch, _, crop, _) = real_a.dim();
        let noise = Array4::from_shape_simple_fn((2 * batch, 1, crop, crop), || {
            crate::nn::normal(rng) as f32
        });
        // NCE layers 0, 2, 4: the input resolution, then twice at half of it.
        let half = crop / 2;
        let mut positions = |side: usize| -> Vec<usize> {
            let cells = side * side;
            if patches <= 1 {
                vec![rng.random_range(0..cells)]
            } else {
                rand::seq::index::sample(rng, cells, patches.min(cells)).into_vec()
            }
        };
        let mut ids = || [positions(crop), positions(half), positions(half)];
        let (nce_ids_x, nce_ids_y) = (ids(), ids());
        StepInputs {
            real_a,
            real_b,
            noise,
            nce_ids_x,
            nce_ids_y,
        }
    }
}

impl<T: Real> StepInputs<T> {
    /// The same inputs in another precision (values converted through f64; the ids are kept).
    pub fn cast<U: Real>(&self) -> StepInputs<U> {
        let conv = |a: &Array4<T>| a.mapv(|v| U::from_f64(v.to_f64().unwrap_or(f64::NAN)).unwrap());
        StepInputs {
            real_a: conv(&self.real_a),
            real_b: conv(&self.real_b),
            noise: conv(&self.noise),
            nce_ids_x: self.nce_ids_x.clone(),
            nce_ids_y: self.nce_ids_y.clone(),
        }
    }
}

/// Parameters with the Adam moments of all three optimizers (one step count: they step together).
#[derive(Clone, Debug)]
pub struct TrainState<T> {
    pub params: ParamMap<T>,
    pub exp_avg: ParamMap<T>,
    pub exp_avg_sq: ParamMap<T>,
    /// Completed Adam steps.
    pub step: u64,
    /// The moving average of G's weights (`ema`), when the run keeps one.
    pub ema: Option<ParamMap<T>>,
}

impl<T: Real> TrainState<T> {
    pub fn new(params: ParamMap<T>) -> Self {
        let zeros: ParamMap<T> = params
            .iter()
            .map(|(k, v)| (k.clone(), ArrayD::zeros(v.raw_dim())))
            .collect();
        TrainState {
            params,
            exp_avg: zeros.clone(),
            exp_avg_sq: zeros,
            step: 0,
            ema: None,
        }
    }
}

/// Every loss term of one step (official names).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    pub d_fake: f64,
    pub d_real: f64,
    pub d_r1: f64,
    pub d: f64,
    pub g_gan: f64,
    pub nce: f64,
    pub nce_y: f64,
    pub idt: f64,
    pub g: f64,
}

impl Losses {
    /// (fixture name, value) pairs: `D_fake`, `D_real`, `D_R1`, `D`, `G_GAN`, `NCE`, `NCE_Y`, `idt`, `G`.
    pub fn named(&self) -> [(&'static str, f64); 9] {
        [
            ("D_fake", self.d_fake),
            ("D_real", self.d_real),
            ("D_R1", self.d_r1),
            ("D", self.d),
            ("G_GAN", self.g_gan),
            ("NCE", self.nce),
            ("NCE_Y", self.nce_y),
            ("idt", self.idt),
            ("G", self.g),
        ]
    }

    pub fn is_finite(&self) -> bool {
        self.named().iter().all(|(_, v)| v.is_finite())
    }
}

/// Which G loss terms a backward pass carries.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    pub gan: bool,
    pub nce: bool,
    pub idt: bool,
}

impl Terms {
    pub const ALL: Terms = Terms {
        gan: true,
        nce: true,
        idt: true,
    };
    /// Each term alone (the fixtures' `grad_gan`, `grad_nce`, `grad_idt`).
    pub const GAN: Terms = Terms {
        gan: true,
        nce: false,
        idt: false,
    };
    pub const NCE: Terms = Terms {
        gan: false,
        nce: true,
        idt: false,
    };
    pub const IDT: Terms = Terms {
        gan: false,
        nce: false,
        idt: true,
    };
}

/// Checks that the inputs fit the configuration (shapes, patch ids within each layer's map).
pub fn check_inputs<T: Real>(cfg: &ModelConfig, inp: &StepInputs<T>) -> Result<(), String> {
    let n = cfg.batch;
    let crop = cfg.crop;
    if inp.real_a.dim() != (n, 3, crop, crop) || inp.real_b.dim() != (n, 3, crop, crop) {
        return Err(format!(
            "crops must be ({n},3,{crop},{crop}), got {:?} and {:?}",
            inp.real_a.dim(),
            inp.real_b.dim()
        ));
    }
    if inp.noise.dim() != (2 * n, 1, crop, crop) {
        return Err(format!(
            "noise must be ({},1,{crop},{crop}), got {:?}",
            2 * n,
            inp.noise.dim()
        ));
    }
    for ids in [&inp.nce_ids_x, &inp.nce_ids_y] {
        for (l, layer) in ids.iter().enumerate() {
            let side = if NCE_LAYERS[l] == 0 { crop } else { crop / 2 };
            if layer.is_empty() {
                return Err(format!("NCE layer {} has no patch", NCE_LAYERS[l]));
            }
            for (i, &id) in layer.iter().enumerate() {
                if id >= side * side {
                    return Err(format!(
                        "NCE patch id {id} is outside layer {}'s {side}×{side} map",
                        NCE_LAYERS[l]
                    ));
                }
                // Two equal positions would make a patch its own negative.
                if layer[..i].contains(&id) {
                    return Err(format!(
                        "NCE patch id {id} is drawn twice for layer {}",
                        NCE_LAYERS[l]
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
