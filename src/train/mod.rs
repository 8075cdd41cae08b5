//! One SinCUT training step and iteration as pure functions of their inputs.

pub mod step;

use crate::config::ModelConfig;
use crate::nn::{Networks, ParamMap};
use crate::ops::adam::{AdamConfig, adam_update};
use crate::tensor::Real;
use ndarray::{Array4, ArrayD, IxDyn};
use std::collections::BTreeMap;
use step::{Losses, Terms, d_step, g_backward, g_forward, g_upstream};

/// All the randomness of one step, drawn outside it.
#[derive(Clone, Debug)]
pub struct StepInputs<T> {
    /// Source crops (N,3,crop,crop) in [-1, 1].
    pub real_a: Array4<T>,
    /// Target crops (N,3,crop,crop).
    pub real_b: Array4<T>,
    /// Decoder noise (2N,1,crop,crop): rows 0..N with G(real_a), N..2N with G(real_b).
    pub noise: Array4<T>,
    /// Flat index y·W+x of the sampled patch per NCE layer (0, 2, 4) for NCE(real_a → fake_b).
    pub nce_ids_x: [usize; 3],
    /// The same for NCE(real_b → idt_b).
    pub nce_ids_y: [usize; 3],
}

impl StepInputs<f32> {
    /// The step inputs for these crops, with the rest of a step's randomness (decoder noise,
    /// then the NCE patch ids for X and Y) drawn from `rng` in that order.
    pub fn with_crops<R: rand::Rng>(real_a: Array4<f32>, real_b: Array4<f32>, rng: &mut R) -> Self {
        use rand::RngExt;
        let (batch, _, crop, _) = real_a.dim();
        let noise = Array4::from_shape_simple_fn((2 * batch, 1, crop, crop), || {
            crate::nn::normal(rng) as f32
        });
        // NCE layers 0, 2, 4: the input resolution, then twice at half of it.
        let half = crop / 2;
        let mut ids = || {
            [
                rng.random_range(0..crop * crop),
                rng.random_range(0..half * half),
                rng.random_range(0..half * half),
            ]
        };
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

/// One step without a parameter update, every quantity under its golden-fixture name:
/// `fake`, `d_real`, `d_fake`, `r1.input_grad`, `loss.*` (shape (1,)), `grad.D.*`, `grad.G.*`,
/// `grad.F.*`, `grad_r1.D.*`, `grad_gan.G.*`, `grad_nce.G.*`, `grad_nce.F.*`, `grad_idt.G.*`.
pub fn replay_step<T: Real>(
    cfg: &ModelConfig,
    params: &ParamMap<T>,
    inputs: &StepInputs<T>,
) -> BTreeMap<String, ArrayD<T>> {
    let nets = Networks::new(cfg);
    let mut out = BTreeMap::new();
    let n = cfg.batch;
    let gf = g_forward(&nets, params, inputs);
    let fake_b = gf.fake.slice(ndarray::s![0..n, .., .., ..]).to_owned();
    let ds = d_step(cfg, &nets, params, &fake_b, &inputs.real_b);
    let up = g_upstream(cfg, &nets, params, &gf, inputs);
    let losses = collect_losses(&ds, &up);
    let col = |v: &[T]| ArrayD::from_shape_vec(IxDyn(&[v.len(), 1]), v.to_vec()).unwrap();
    out.insert("fake".into(), (*gf.fake).clone().into_dyn());
    out.insert("d_real".into(), col(&ds.d_real_logits));
    out.insert("d_fake".into(), col(&ds.d_fake_logits));
    out.insert("r1.input_grad".into(), ds.r1_input_grad.clone().into_dyn());
    for (name, v) in losses.named() {
        // The official compute_G_loss() leaves self.loss_G = G_GAN + ½(NCE + NCE_Y) and
        // returns that plus the identity term; only optimize_parameters() then stores the
        // returned total in loss_G. A step without an update reads the former (the fixtures'
        // step.loss.G), an iteration the latter (traj k<i>.loss.G, and our `Losses::g`).
        let v = if name == "G" {
            losses.g_gan + 0.5 * (losses.nce + losses.nce_y)
        } else {
            v
        };
        out.insert(format!("loss.{name}"), scalar(v));
    }
    let mut put = |prefix: &str, m: &ParamMap<T>| {
        for (k, v) in m {
            out.insert(format!("{prefix}.{k}"), v.clone());
        }
    };
    put("grad", &ds.grads);
    put("grad_r1", &ds.grads_r1);
    put("grad", &g_backward(&nets, params, &gf, &up, Terms::ALL));
    put("grad", &up.grads_f);
    put("grad_nce", &up.grads_f);
    // Each G loss term alone: the same backward from that term's upstream gradient only.
    for (prefix, terms) in [
        ("grad_gan", Terms::GAN),
        ("grad_nce", Terms::NCE),
        ("grad_idt", Terms::IDT),
    ] {
        put(prefix, &g_backward(&nets, params, &gf, &up, terms));
    }
    out
}

fn scalar<T: Real>(v: f64) -> ArrayD<T> {
    ArrayD::from_elem(IxDyn(&[1]), crate::tensor::c(v))
}

fn collect_losses<T>(ds: &step::DStep<T>, up: &step::GUpstream<T>) -> Losses {
    let d = 0.5 * (ds.loss_fake + ds.loss_real) + ds.loss_r1;
    let g = up.loss_gan + 0.5 * (up.loss_nce + up.loss_nce_y) + up.loss_idt;
    Losses {
        d_fake: ds.loss_fake,
        d_real: ds.loss_real,
        d_r1: ds.loss_r1,
        d,
        g_gan: up.loss_gan,
        nce: up.loss_nce,
        nce_y: up.loss_nce_y,
        idt: up.loss_idt,
        g,
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
        }
    }

    fn adam(&mut self, grads: &ParamMap<T>, step: u64, lr: f64, cfg: &AdamConfig) {
        for (name, g) in grads {
            let p = self
                .params
                .get_mut(name)
                .expect("gradient of an unknown parameter");
            adam_update(
                p.as_slice_mut().unwrap(),
                g.as_slice().unwrap(),
                self.exp_avg.get_mut(name).unwrap().as_slice_mut().unwrap(),
                self.exp_avg_sq
                    .get_mut(name)
                    .unwrap()
                    .as_slice_mut()
                    .unwrap(),
                step,
                lr,
                cfg,
            );
        }
    }
}

/// One official iteration: forward, D step (Adam on D), then G and F steps (Adam) against the
/// updated D. Returns the losses (G's computed with the updated D, as the official code).
pub fn train_iteration<T: Real>(
    cfg: &ModelConfig,
    nets: &Networks,
    state: &mut TrainState<T>,
    inputs: &StepInputs<T>,
    lr: f64,
) -> Losses {
    let adam = AdamConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.adam_eps,
    };
    let n = cfg.batch;
    let step = state.step + 1;
    let gf = g_forward(nets, &state.params, inputs);
    let fake_b = gf.fake.slice(ndarray::s![0..n, .., .., ..]).to_owned();
    let ds = d_step(cfg, nets, &state.params, &fake_b, &inputs.real_b);
    drop(fake_b);
    state.adam(&ds.grads, step, lr, &adam);
    let up = g_upstream(cfg, nets, &state.params, &gf, inputs);
    let grads_g = g_backward(nets, &state.params, &gf, &up, Terms::ALL);
    drop(gf);
    state.adam(&grads_g, step, lr, &adam);
    state.adam(&up.grads_f, step, lr, &adam);
    state.step = step;
    collect_losses(&ds, &up)
}

/// K official iterations (D step + Adam, then G and F steps + Adam) from `params` at the
/// configuration's learning rate: `k<i>.loss.*` for each iteration and `final.<param name>`.
pub fn replay_trajectory<T: Real>(
    cfg: &ModelConfig,
    params: &ParamMap<T>,
    iters: &[StepInputs<T>],
) -> BTreeMap<String, ArrayD<T>> {
    let nets = Networks::new(cfg);
    let mut state = TrainState::new(params.clone());
    let mut out = BTreeMap::new();
    for (i, inp) in iters.iter().enumerate() {
        let losses = train_iteration(cfg, &nets, &mut state, inp, cfg.lr);
        for (name, v) in losses.named() {
            out.insert(format!("k{i}.loss.{name}"), scalar(v));
        }
    }
    for (k, v) in state.params {
        out.insert(format!("final.{k}"), v);
    }
    out
}

#[cfg(test)]
mod tests;
