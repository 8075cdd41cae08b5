//! The SinCUT step in the official order: G forward on cat(x, y); D loss with R1 and its
//! gradients; G + F loss (GAN, PatchNCE both ways, identity) and its gradients.

use super::StepInputs;
use crate::config::{ModelConfig, NCE_LAYERS};
use crate::nn::generator::{EncCache, GenCache, act};
use crate::nn::layers::{Act, Backprop, R1Pairing, from_windows, to_windows};
use crate::nn::{Networks, ParamMap};
use crate::ops::gan_loss::{softplus_mean_backward, softplus_mean_forward};
use crate::ops::gather::{gather_position, scatter_add_position};
use crate::ops::l1::{l1_mean_backward, l1_mean_forward};
use crate::ops::patchnce::{patchnce_backward, patchnce_forward};
use crate::tensor::{Real, c};
use ndarray::{Array4, Axis, concatenate, s};
use std::collections::HashMap;

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

/// G's forward on cat(real_a, real_b).
pub struct GForward<T> {
    /// cat(fake_b, idt_b), (2N,3,H,W).
    pub fake: Act<T>,
    /// Encoder features of layers 0, 2, 4 on cat(real_a, real_b): the NCE keys.
    pub keys: [Act<T>; 3],
    pub cache: GenCache<T>,
}

pub fn g_forward<T: Real>(nets: &Networks, p: &ParamMap<T>, inp: &StepInputs<T>) -> GForward<T> {
    let x = act(concatenate(Axis(0), &[inp.real_a.view(), inp.real_b.view()]).unwrap());
    let noise = act(inp.noise.clone());
    let (fake, keys, cache) = nets.g.forward(p, &x, Some(&noise));
    GForward { fake, keys, cache }
}

/// The D step's results: losses, logits, R1's input gradient, gradients.
pub struct DStep<T> {
    pub d_fake_logits: Vec<T>,
    pub d_real_logits: Vec<T>,
    pub r1_input_grad: Array4<T>,
    pub loss_fake: f64,
    pub loss_real: f64,
    pub loss_r1: f64,
    /// Gradient of the whole D loss (R1 included).
    pub grads: ParamMap<T>,
    /// Gradient of the R1 term alone.
    pub grads_r1: ParamMap<T>,
}

fn f64_of<T: Real>(v: T) -> f64 {
    v.to_f64().unwrap()
}

/// D loss = ½(mean softplus(D(fake_b)) + mean softplus(−D(real_b))) + R1 and its gradients.
pub fn d_step<T: Real>(
    cfg: &ModelConfig,
    nets: &Networks,
    p: &ParamMap<T>,
    fake_b: &Array4<T>,
    real_b: &Array4<T>,
) -> DStep<T> {
    let (n, _, h, w) = real_b.dim();
    let fake_win = act(to_windows(fake_b, cfg.d_window));
    let real_win = act(to_windows(real_b, cfg.d_window));
    let (lf, cf) = nets.d.forward(p, &fake_win);
    drop(fake_win);
    let (lr, cr) = nets.d.forward(p, &real_win);
    let loss_fake = f64_of(softplus_mean_forward(&lf, false));
    let loss_real = f64_of(softplus_mean_forward(&lr, true));

    let mut grads = nets.zeros::<T>("D.");
    let half: T = c(0.5);
    let df: Vec<T> = softplus_mean_backward(&lf, false)
        .into_iter()
        .map(|v| v * half)
        .collect();
    nets.d
        .backward(p, &cf, &df, &mut Backprop::grads(&mut grads), false);
    drop(cf);
    let dr: Vec<T> = softplus_mean_backward(&lr, true)
        .into_iter()
        .map(|v| v * half)
        .collect();
    nets.d
        .backward(p, &cr, &dr, &mut Backprop::grads(&mut grads), false);

    // R1: g = ∇_y ΣD(y); the penalty's weight gradient pairs D's backward signals (recorded
    // here) with the tangent of v = λ·g/N pushed forward through the same slopes.
    let mut signals = HashMap::new();
    let ones = vec![T::one(); lr.len()];
    let g_win = nets
        .d
        .backward(
            p,
            &cr,
            &ones,
            &mut Backprop {
                grads: None,
                record: Some(&mut signals),
            },
            true,
        )
        .unwrap();
    let sumsq = crate::ops::sumsq::sum_squares(g_win.as_standard_layout().as_slice().unwrap());
    let loss_r1 = cfg.lambda_r1 * 0.5 * sumsq / n as f64;
    let v = g_win.mapv(|x| x * c::<T>(cfg.lambda_r1 / n as f64));
    let mut grads_r1 = nets.zeros::<T>("D.");
    nets.d.tangent(
        p,
        &cr,
        &v,
        &mut R1Pairing {
            signals: &signals,
            grads: &mut grads_r1,
        },
    );
    for (name, g) in grads.iter_mut() {
        *g += &grads_r1[name];
    }
    DStep {
        d_fake_logits: lf,
        d_real_logits: lr,
        r1_input_grad: from_windows(&g_win, n, h, w),
        loss_fake,
        loss_real,
        loss_r1,
        grads,
        grads_r1,
    }
}

/// The G step's loss terms as gradients at G's output and at the query encoder's features.
pub struct GUpstream<T> {
    pub loss_gan: f64,
    pub loss_nce: f64,
    pub loss_nce_y: f64,
    pub loss_idt: f64,
    /// d(λ_GAN·G_GAN)/d fake_b, (N,3,H,W).
    pub d_gan: Array4<T>,
    /// d(λ_idt·idt)/d idt_b, (N,3,H,W).
    pub d_idt: Array4<T>,
    /// d(½(NCE+NCE_Y))/d(query features of layers 0, 2, 4) on cat(fake_b, idt_b).
    pub d_feat: [Array4<T>; 3],
    /// The query encoder's cache (for the backward from `d_feat`).
    pub enc_cache: EncCache<T>,
    /// F's gradient (of the NCE terms, the only ones F enters).
    pub grads_f: ParamMap<T>,
}

pub fn g_upstream<T: Real>(
    cfg: &ModelConfig,
    nets: &Networks,
    p: &ParamMap<T>,
    gf: &GForward<T>,
    inp: &StepInputs<T>,
) -> GUpstream<T> {
    g_upstream_keys_with(cfg, nets, p, p, gf, inp)
}

/// `g_upstream` with F's parameters for the key projections taken from `p_keys`: the keys are
/// detached after F, so finite differences of F's gradient must hold them fixed.
pub fn g_upstream_keys_with<T: Real>(
    cfg: &ModelConfig,
    nets: &Networks,
    p: &ParamMap<T>,
    p_keys: &ParamMap<T>,
    gf: &GForward<T>,
    inp: &StepInputs<T>,
) -> GUpstream<T> {
    let n = inp.real_a.shape()[0];
    let (_, _, h, w) = inp.real_a.dim();
    let fake_b = gf.fake.slice(s![0..n, .., .., ..]).to_owned();
    let idt_b = gf.fake.slice(s![n..2 * n, .., .., ..]).to_owned();

    // GAN (D frozen).
    let win = act(to_windows(&fake_b, cfg.d_window));
    let (lg, cg) = nets.d.forward(p, &win);
    drop(win);
    let loss_gan = cfg.lambda_gan * f64_of(softplus_mean_forward(&lg, true));
    let dl: Vec<T> = softplus_mean_backward(&lg, true)
        .into_iter()
        .map(|v| v * c::<T>(cfg.lambda_gan))
        .collect();
    let dwin = nets
        .d
        .backward(p, &cg, &dl, &mut Backprop::frozen(), true)
        .unwrap();
    drop(cg);
    let d_gan = from_windows(&dwin, n, h, w);

    // PatchNCE both ways: queries from the encoder on cat(fake_b, idt_b), keys from the forward
    // pass's encoder on cat(real_a, real_b) (the same network on the same images).
    let (qfeat, enc_cache) = nets.g.encode(p, &gf.fake);
    let mut d_feat: Vec<Array4<T>> = qfeat.iter().map(|f| Array4::zeros(f.raw_dim())).collect();
    let mut grads_f = nets.zeros::<T>("F.");
    let coef = 0.5 * cfg.lambda_nce / (NCE_LAYERS.len() * n) as f64;
    let mut nce = [0.0f64; 2];
    for (half, ids) in [inp.nce_ids_x, inp.nce_ids_y].iter().enumerate() {
        let r0 = half * n;
        for l in 0..NCE_LAYERS.len() {
            let k_rows = gather_position(&gf.keys[l], r0, n, ids[l]);
            let q_rows = gather_position(&qfeat[l], r0, n, ids[l]);
            let (k, _) = nets.f.forward(p_keys, l, &k_rows);
            let (q, qc) = nets.f.forward(p, l, &q_rows);
            let ce = patchnce_forward(&q, &k, cfg.nce_t);
            let mean_ce: f64 = ce.iter().map(|&v| f64_of(v)).sum::<f64>() / n as f64;
            nce[half] += mean_ce * cfg.lambda_nce / NCE_LAYERS.len() as f64;
            let dq = patchnce_backward(&q, &k, cfg.nce_t, &vec![c::<T>(coef); n]);
            let drows = nets.f.backward(p, l, &qc, &dq, Some(&mut grads_f));
            scatter_add_position(&mut d_feat[l], r0, ids[l], &drows);
        }
    }
    drop(qfeat);

    let loss_idt = cfg.lambda_idt * f64_of(l1_mean_forward(&idt_b, &inp.real_b));
    let d_idt = l1_mean_backward(&idt_b, &inp.real_b).mapv(|v| v * c::<T>(cfg.lambda_idt));
    let d_feat: [Array4<T>; 3] = d_feat.try_into().ok().unwrap();
    GUpstream {
        loss_gan,
        loss_nce: nce[0],
        loss_nce_y: nce[1],
        loss_idt,
        d_gan,
        d_idt,
        d_feat,
        enc_cache,
        grads_f,
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

/// G's gradient of the chosen terms: the upstream gradients summed at G's output, one backward.
pub fn g_backward<T: Real>(
    nets: &Networks,
    p: &ParamMap<T>,
    gf: &GForward<T>,
    up: &GUpstream<T>,
    terms: Terms,
) -> ParamMap<T> {
    let mut grads = nets.zeros::<T>("G.");
    let n = up.d_gan.shape()[0];
    let mut dfake = Array4::zeros(gf.fake.raw_dim());
    if terms.nce {
        let [d0, d2, d4] = &up.d_feat;
        dfake = nets.g.encoder_backward(
            p,
            &up.enc_cache,
            d2.clone(),
            d4.clone(),
            &mut Backprop::grads(&mut grads),
        );
        dfake += d0;
    }
    if terms.gan {
        let mut top = dfake.slice_mut(s![0..n, .., .., ..]);
        top += &up.d_gan;
    }
    if terms.idt {
        let mut bottom = dfake.slice_mut(s![n..2 * n, .., .., ..]);
        bottom += &up.d_idt;
    }
    nets.g
        .backward(p, &gf.cache, dfake, &mut Backprop::grads(&mut grads), false);
    grads
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
    for ids in [inp.nce_ids_x, inp.nce_ids_y] {
        for (l, &id) in ids.iter().enumerate() {
            let side = if NCE_LAYERS[l] == 0 { crop } else { crop / 2 };
            if id >= side * side {
                return Err(format!(
                    "NCE patch id {id} is outside layer {}'s {side}×{side} map",
                    NCE_LAYERS[l]
                ));
            }
        }
    }
    Ok(())
}
