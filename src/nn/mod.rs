//! The networks: generator G, discriminator D, patch projector F, and their parameters.

pub mod discriminator;
pub mod generator;
pub mod layers;
pub mod projector;

use crate::config::ModelConfig;
use crate::tensor::{Real, c};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, RngExt};
use std::collections::BTreeMap;

pub use discriminator::Discriminator;
pub use generator::Generator;
pub use projector::Projector;

/// Parameters (or gradients, or optimizer moments) by official name with the network prefix,
/// e.g. `G.encoder.convs.2.conv1.0.weight`, `D.final_linear.0.weight`, `F.mlp_1.2.bias`,
/// in the official shapes.
pub type ParamMap<T> = BTreeMap<String, ArrayD<T>>;

/// The three networks of one configuration.
#[derive(Clone, Debug)]
pub struct Networks {
    pub g: Generator,
    pub d: Discriminator,
    pub f: Projector,
}

impl Networks {
    pub fn new(cfg: &ModelConfig) -> Self {
        let r = cfg.model_resolution;
        // NCE layers 0, 2, 4: the image, then the two feature maps at half resolution.
        let f = Projector {
            in_channels: vec![3, cfg.g_channels(r / 2), cfg.g_channels(r / 2)],
            nc: cfg.netf_nc,
        };
        Networks {
            g: Generator::new(cfg),
            d: Discriminator::new(cfg),
            f,
        }
    }

    /// Every parameter's name and official shape, G then D then F.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = self.g.param_shapes();
        v.extend(self.d.param_shapes());
        v.extend(self.f.param_shapes());
        v
    }

    /// Zeros for every parameter of the networks whose names start with `prefix` ("G.", "D.", "F.").
    pub fn zeros<T: Real>(&self, prefix: &str) -> ParamMap<T> {
        self.param_shapes()
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, s)| (n, ArrayD::zeros(IxDyn(&s))))
            .collect()
    }

    /// Checks that `p` holds exactly the networks' parameters in their shapes.
    pub fn check_params<T: Real>(&self, p: &ParamMap<T>) -> Result<(), String> {
        let shapes = self.param_shapes();
        for (n, s) in &shapes {
            match p.get(n) {
                None => return Err(format!("parameter {n} is missing")),
                Some(a) if a.shape() != s.as_slice() => {
                    return Err(format!(
                        "parameter {n} has shape {:?}, this model needs {:?}",
                        a.shape(),
                        s
                    ));
                }
                _ => {}
            }
        }
        if let Some(extra) = p.keys().find(|k| !shapes.iter().any(|(n, _)| n == *k)) {
            return Err(format!("parameter {extra} does not belong to this model"));
        }
        Ok(())
    }

    /// The official initialisation: equalized weights N(0,1), biases and the noise weight 0,
    /// F's Linear layers xavier-normal with gain 0.02 and zero bias.
    pub fn init<T: Real, R: Rng>(&self, rng: &mut R) -> ParamMap<T> {
        let mut p = ParamMap::new();
        for (name, shape) in self.param_shapes() {
            let n: usize = shape.iter().product();
            let data: Vec<T> = if name.ends_with(".bias") || name.ends_with("noise.weight") {
                vec![T::zero(); n]
            } else if name.starts_with("F.") {
                let (fan_out, fan_in) = (shape[0], shape[1]);
                let std = 0.02 * (2.0 / (fan_in + fan_out) as f64).sqrt();
                (0..n).map(|_| c(std * normal(rng))).collect()
            } else {
                (0..n).map(|_| c(normal(rng))).collect()
            };
            p.insert(name, ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap());
        }
        p
    }
}

/// A standard normal sample (Box–Muller).
pub fn normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
