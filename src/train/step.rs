//! The SinCUT step and iteration on a [`Backend`], in the official order:
//! G forward on cat(x, y); D loss with R1 and its gradients; G + F loss (GAN, PatchNCE both
//! ways, identity) and its gradients; Adam. Loss values stay on the backend until the iteration
//! ends and are then read in one go (one synchronisation per iteration on a GPU).

use super::{Losses, Terms};
use crate::backend::{Backend, Params, download_params, upload_params};
use crate::config::{ModelConfig, NCE_LAYERS};
use crate::error::{Error, Result};
use crate::nn::discriminator::{d_backward, d_forward, d_tangent};
use crate::nn::generator::{self, EncCache, GenCache, g_encode, g_encoder_backward};
use crate::nn::layers::{Act, Backprop, R1Pairing};
use crate::nn::projector::{f_backward, f_forward};
use crate::nn::{Networks, ParamMap};
use crate::ops::adam::AdamConfig;
use crate::tensor::{Real, c};
use crate::train::{NcePositions, StepInputs, TrainState};
use ndarray::{Array4, ArrayD, Axis, IxDyn, concatenate};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// One step's randomness on the backend: x = cat(real_a, real_b) (2N,3,H,W), the decoder noise
/// (2N,1,H,W), and the NCE patch positions.
pub struct BackendInputs<B: Backend> {
    pub x: Act<B>,
    pub real_b: B::Tensor,
    pub noise: Act<B>,
    pub nce_ids_x: NcePositions,
    pub nce_ids_y: NcePositions,
}

impl<B: Backend> BackendInputs<B> {
    /// Uploads a step's inputs (two uploads: the crops concatenated, and the noise).
    pub fn upload(e: &B, inp: &StepInputs<B::Elem>) -> Result<Self> {
        let n = inp.real_a.dim().0;
        let x = concatenate(Axis(0), &[inp.real_a.view(), inp.real_b.view()])
            .map_err(|err| Error::new(format!("crops do not concatenate: {err}")))?;
        let x = e.upload(&x)?;
        let real_b = e.batch_slice(&x, n, n)?;
        Ok(BackendInputs {
            x: Rc::new(x),
            real_b,
            noise: Rc::new(e.upload(&inp.noise)?),
            nce_ids_x: inp.nce_ids_x.clone(),
            nce_ids_y: inp.nce_ids_y.clone(),
        })
    }
}

/// G's forward on cat(real_a, real_b).
pub struct GForward<B: Backend> {
    /// cat(fake_b, idt_b), (2N,3,H,W).
    pub fake: Act<B>,
    /// Encoder features of layers 0, 2, 4 on cat(real_a, real_b): the NCE keys.
    pub keys: [Act<B>; 3],
    pub cache: GenCache<B>,
}

pub fn g_forward<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    inp: &BackendInputs<B>,
) -> Result<GForward<B>> {
    let (fake, keys, cache) = generator::g_forward(e, &nets.g, p, &inp.x, Some(&inp.noise))?;
    Ok(GForward { fake, keys, cache })
}

/// The D step's results; the losses are scalar tensors.
pub struct DStep<B: Backend> {
    pub d_fake_logits: B::Tensor,
    pub d_real_logits: B::Tensor,
    pub r1_input_grad: B::Tensor,
    pub loss_fake: B::Tensor,
    pub loss_real: B::Tensor,
    /// Σ (∇_y ΣD(y))², the R1 penalty before its factor λ/(2N).
    pub r1_sumsq: B::Tensor,
    /// Gradient of the whole D loss (R1 included).
    pub grads: Params<B>,
    /// Gradient of the R1 term alone.
    pub grads_r1: Params<B>,
}

/// Zero gradients for every parameter of `p` starting with `prefix` that `grads` lacks (Adam
/// updates every parameter of a network, also one whose gradient is zero).
fn complete<B: Backend>(
    e: &B,
    p: &Params<B>,
    prefix: &str,
    mut grads: Params<B>,
) -> Result<Params<B>> {
    for (name, t) in p.iter().filter(|(k, _)| k.starts_with(prefix)) {
        if !grads.contains_key(name) {
            grads.insert(name.clone(), e.zeros(e.shape(t))?);
        }
    }
    Ok(grads)
}

/// A vector (n, 1, 1, 1) of one value (small: one per window or per patch).
fn filled<B: Backend>(e: &B, n: usize, v: f64) -> Result<B::Tensor> {
    e.upload(&Array4::from_elem((n, 1, 1, 1), c(v)))
}

/// D loss = ½(mean softplus(D(fake_b)) + mean softplus(−D(real_b))) + R1, and its gradients.
pub fn d_step<B: Backend>(
    e: &B,
    cfg: &ModelConfig,
    nets: &Networks,
    p: &Params<B>,
    fake_b: &B::Tensor,
    real_b: &B::Tensor,
) -> Result<DStep<B>> {
    let [n, _, h, w] = e.shape(real_b);
    let fake_win = Rc::new(e.to_windows(fake_b, cfg.d_window)?);
    let real_win = Rc::new(e.to_windows(real_b, cfg.d_window)?);
    let (lf, cf) = d_forward(e, &nets.d, p, &fake_win)?;
    drop(fake_win);
    let (lr, cr) = d_forward(e, &nets.d, p, &real_win)?;
    let loss_fake = e.softplus_mean(&lf, false)?;
    let loss_real = e.softplus_mean(&lr, true)?;

    let mut grads = Params::<B>::new();
    let df = e.scale(&e.softplus_mean_backward(&lf, false)?, 0.5)?;
    d_backward(
        e,
        &nets.d,
        p,
        &cf,
        df,
        &mut Backprop::grads(&mut grads),
        false,
    )?;
    drop(cf);
    let dr = e.scale(&e.softplus_mean_backward(&lr, true)?, 0.5)?;
    d_backward(
        e,
        &nets.d,
        p,
        &cr,
        dr,
        &mut Backprop::grads(&mut grads),
        false,
    )?;

    // R1: g = ∇_y ΣD(y); the penalty's weight gradient pairs D's backward signals (recorded
    // here) with the tangent of v = λ·g/N pushed forward through the same slopes.
    let mut signals = HashMap::new();
    let ones = filled(e, e.shape(&lr)[0], 1.0)?;
    let g_win = d_backward(
        e,
        &nets.d,
        p,
        &cr,
        ones,
        &mut Backprop {
            grads: None,
            record: Some(&mut signals),
        },
        true,
    )?
    .ok_or_else(|| Error::new("D backward returned no input gradient"))?;
    let r1_sumsq = e.sum_squares(&g_win)?;
    let v = e.scale(&g_win, cfg.lambda_r1 / n as f64)?;
    let mut grads_r1 = Params::<B>::new();
    d_tangent(
        e,
        &nets.d,
        p,
        &cr,
        &v,
        &mut R1Pairing {
            signals: &signals,
            grads: &mut grads_r1,
        },
    )?;
    drop(signals);
    let grads = complete(e, p, "D.", grads)?;
    let grads_r1 = complete(e, p, "D.", grads_r1)?;
    let mut grads = grads;
    for (name, g) in grads.iter_mut() {
        e.add_into(g, 0, &grads_r1[name])?;
    }
    Ok(DStep {
        d_fake_logits: lf,
        d_real_logits: lr,
        r1_input_grad: e.from_windows(&g_win, n, h, w)?,
        loss_fake,
        loss_real,
        r1_sumsq,
        grads,
        grads_r1,
    })
}

/// The G step's loss terms as gradients at G's output and at the query encoder's features.
pub struct GUpstream<B: Backend> {
    /// mean softplus(−D(fake_b)) (before λ_GAN).
    pub loss_gan: B::Tensor,
    /// Per NCE direction (x→fake, y→idt) and layer: the per-patch cross-entropies.
    pub nce_ce: [[B::Tensor; 3]; 2],
    /// mean |idt_b − real_b| (before λ_idt).
    pub loss_idt: B::Tensor,
    pub d_gan: B::Tensor,
    pub d_idt: B::Tensor,
    pub d_feat: [B::Tensor; 3],
    pub enc_cache: EncCache<B>,
    pub grads_f: Params<B>,
}

pub fn g_upstream<B: Backend>(
    e: &B,
    cfg: &ModelConfig,
    nets: &Networks,
    p: &Params<B>,
    gf: &GForward<B>,
    inp: &BackendInputs<B>,
) -> Result<GUpstream<B>> {
    g_upstream_keys_with(e, cfg, nets, p, p, gf, inp)
}

/// [`g_upstream`] with the keys projected by F under `key_params`: the keys are detached in the
/// official PatchNCE loss, so a finite-difference check perturbs `p` alone.
pub fn g_upstream_keys_with<B: Backend>(
    e: &B,
    cfg: &ModelConfig,
    nets: &Networks,
    p: &Params<B>,
    key_params: &Params<B>,
    gf: &GForward<B>,
    inp: &BackendInputs<B>,
) -> Result<GUpstream<B>> {
    let [n, _, h, w] = e.shape(&inp.real_b);
    let fake_b = e.batch_slice(&gf.fake, 0, n)?;
    let idt_b = e.batch_slice(&gf.fake, n, n)?;

    // GAN (D frozen).
    let win = Rc::new(e.to_windows(&fake_b, cfg.d_window)?);
    let (lg, cg) = d_forward(e, &nets.d, p, &win)?;
    drop(win);
    drop(fake_b);
    let loss_gan = e.softplus_mean(&lg, true)?;
    let dl = e.scale(&e.softplus_mean_backward(&lg, true)?, cfg.lambda_gan)?;
    let dwin = d_backward(e, &nets.d, p, &cg, dl, &mut Backprop::frozen(), true)?
        .ok_or_else(|| Error::new("D backward returned no input gradient"))?;
    drop(cg);
    let d_gan = e.from_windows(&dwin, n, h, w)?;
    drop(dwin);

    // PatchNCE both ways: queries from the encoder on cat(fake_b, idt_b), keys from the forward
    // pass's encoder on cat(real_a, real_b) (the same network on the same images).
    let (qfeat, enc_cache) = g_encode(e, &nets.g, p, &gf.fake)?;
    let mut d_feat = Vec::with_capacity(3);
    for f in &qfeat {
        d_feat.push(e.zeros(e.shape(f))?);
    }
    let mut grads_f = Params::<B>::new();
    let mut nce_ce: Vec<[B::Tensor; 3]> = Vec::with_capacity(2);
    for (half, ids) in [&inp.nce_ids_x, &inp.nce_ids_y].into_iter().enumerate() {
        let r0 = half * n;
        let mut ces = Vec::with_capacity(3);
        for l in 0..NCE_LAYERS.len() {
            // Each layer's loss is the mean over its n·patches rows.
            let rows = n * ids[l].len();
            let dloss = filled(
                e,
                rows,
                0.5 * cfg.lambda_nce / (NCE_LAYERS.len() * rows) as f64,
            )?;
            let k_rows = e.gather_positions(&gf.keys[l], r0, n, &ids[l])?;
            let q_rows = e.gather_positions(&qfeat[l], r0, n, &ids[l])?;
            let (k, _) = f_forward(e, &nets.f, key_params, l, k_rows)?;
            let (q, qc) = f_forward(e, &nets.f, p, l, q_rows)?;
            ces.push(e.patchnce(&q, &k, cfg.nce_t)?);
            let dq = e.patchnce_backward(&q, &k, cfg.nce_t, &dloss)?;
            let drows = f_backward(e, p, l, &qc, &dq, Some(&mut grads_f))?;
            e.scatter_add_positions(&mut d_feat[l], r0, &ids[l], &drows)?;
        }
        nce_ce.push(ces.try_into().map_err(|_| Error::new("three NCE layers"))?);
    }
    drop(qfeat);

    let loss_idt = e.l1_mean(&idt_b, &inp.real_b)?;
    let d_idt = e.scale(&e.l1_mean_backward(&idt_b, &inp.real_b)?, cfg.lambda_idt)?;
    let grads_f = complete(e, p, "F.", grads_f)?;
    let err = || Error::new("three NCE layers");
    Ok(GUpstream {
        loss_gan,
        nce_ce: nce_ce.try_into().map_err(|_| err())?,
        loss_idt,
        d_gan,
        d_idt,
        d_feat: d_feat.try_into().map_err(|_| err())?,
        enc_cache,
        grads_f,
    })
}

/// G's gradient of the chosen terms: the upstream gradients summed at G's output (NCE, then
/// GAN, then identity), one backward.
pub fn g_backward<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    gf: &GForward<B>,
    up: &GUpstream<B>,
    terms: Terms,
) -> Result<Params<B>> {
    let mut grads = Params::<B>::new();
    let n = e.shape(&up.d_gan)[0];
    let mut dfake = if terms.nce {
        let [d0, d2, d4] = &up.d_feat;
        let mut d = g_encoder_backward(
            e,
            &nets.g,
            p,
            &up.enc_cache,
            d2,
            e.copy(d4)?,
            &mut Backprop::grads(&mut grads),
        )?;
        e.add_into(&mut d, 0, d0)?;
        d
    } else {
        e.zeros(e.shape(&gf.fake))?
    };
    if terms.gan {
        e.add_into(&mut dfake, 0, &up.d_gan)?;
    }
    if terms.idt {
        // The second half of the batch: its flat elements start after the first N images.
        let offset = e.shape(&up.d_idt).iter().product::<usize>();
        assert_eq!(e.shape(&up.d_idt)[0], n);
        e.add_into(&mut dfake, offset, &up.d_idt)?;
    }
    generator::g_backward(
        e,
        &nets.g,
        p,
        &gf.cache,
        dfake,
        &mut Backprop::grads(&mut grads),
        false,
    )?;
    complete(e, p, "G.", grads)
}

/// Loss tensors of one iteration, read on the host when it ends.
struct PendingLosses<B: Backend> {
    fake: B::Tensor,
    real: B::Tensor,
    r1_sumsq: B::Tensor,
    gan: B::Tensor,
    nce_ce: [[B::Tensor; 3]; 2],
    idt: B::Tensor,
}

impl<B: Backend> PendingLosses<B> {
    fn new(ds: &mut DStep<B>, up: &mut GUpstream<B>, e: &B) -> Result<Self> {
        // Moved out of the step results (they are dropped before the losses are read).
        let z = || e.zeros([1, 1, 1, 1]);
        let take = |t: &mut B::Tensor| -> Result<B::Tensor> { Ok(std::mem::replace(t, z()?)) };
        let mut nce = Vec::with_capacity(2);
        for half in up.nce_ce.iter_mut() {
            let mut v = Vec::with_capacity(3);
            for t in half.iter_mut() {
                v.push(take(t)?);
            }
            nce.push(v.try_into().map_err(|_| Error::new("three NCE layers"))?);
        }
        Ok(PendingLosses {
            fake: take(&mut ds.loss_fake)?,
            real: take(&mut ds.loss_real)?,
            r1_sumsq: take(&mut ds.r1_sumsq)?,
            gan: take(&mut up.loss_gan)?,
            nce_ce: nce
                .try_into()
                .map_err(|_| Error::new("two NCE directions"))?,
            idt: take(&mut up.loss_idt)?,
        })
    }

    /// The losses with the configuration's weights, combined in f64 from the backend's
    /// values.
    fn read(&self, e: &B, cfg: &ModelConfig, n: usize) -> Result<Losses> {
        let loss_fake = read_scalar(e, &self.fake)?;
        let loss_real = read_scalar(e, &self.real)?;
        let loss_r1 = cfg.lambda_r1 * 0.5 * read_scalar(e, &self.r1_sumsq)? / n as f64;
        let loss_gan = cfg.lambda_gan * read_scalar(e, &self.gan)?;
        let nce = [
            nce_loss(e, cfg, &self.nce_ce[0])?,
            nce_loss(e, cfg, &self.nce_ce[1])?,
        ];
        let loss_idt = cfg.lambda_idt * read_scalar(e, &self.idt)?;
        Ok(Losses {
            d_fake: loss_fake,
            d_real: loss_real,
            d_r1: loss_r1,
            d: 0.5 * (loss_fake + loss_real) + loss_r1,
            g_gan: loss_gan,
            nce: nce[0],
            nce_y: nce[1],
            idt: loss_idt,
            g: loss_gan + 0.5 * (nce[0] + nce[1]) + loss_idt,
        })
    }
}

/// One direction's PatchNCE loss from its per-layer, per-patch cross-entropies: λ_NCE times
/// the mean over layers of the mean over patches.
pub fn nce_loss<B: Backend>(e: &B, cfg: &ModelConfig, ces: &[B::Tensor; 3]) -> Result<f64> {
    let mut loss = 0.0;
    for ce in ces {
        let v = e.read(ce)?;
        let mean_ce: f64 = v.iter().sum::<f64>() / v.len() as f64;
        loss += mean_ce * cfg.lambda_nce / NCE_LAYERS.len() as f64;
    }
    Ok(loss)
}

/// The value of a scalar tensor (a loss).
pub fn read_scalar<B: Backend>(e: &B, t: &B::Tensor) -> Result<f64> {
    e.read(t)?
        .first()
        .copied()
        .ok_or_else(|| Error::new("an empty loss tensor"))
}

/// Parameters and the Adam moments of all three optimizers on a backend (one step count: they
/// step together): `train::TrainState` on the backend.
pub struct BackendState<B: Backend> {
    pub params: Params<B>,
    pub exp_avg: Params<B>,
    pub exp_avg_sq: Params<B>,
    /// Completed Adam steps.
    pub step: u64,
    /// The moving average of G's weights, when the run keeps one (`super::ema`).
    pub ema: Option<Params<B>>,
}

impl<B: Backend> BackendState<B> {
    /// Uploads a host training state.
    pub fn upload(e: &B, st: &TrainState<B::Elem>) -> Result<Self> {
        Ok(BackendState {
            params: upload_params(e, &st.params)?,
            exp_avg: upload_params(e, &st.exp_avg)?,
            exp_avg_sq: upload_params(e, &st.exp_avg_sq)?,
            step: st.step,
            ema: st.ema.as_ref().map(|m| upload_params(e, m)).transpose()?,
        })
    }

    /// Downloads it (checkpoints), in the official shapes.
    pub fn download(&self, e: &B, nets: &Networks) -> Result<TrainState<B::Elem>> {
        Ok(TrainState {
            params: download_params(e, nets, &self.params)?,
            exp_avg: download_params(e, nets, &self.exp_avg)?,
            exp_avg_sq: download_params(e, nets, &self.exp_avg_sq)?,
            step: self.step,
            ema: self
                .ema
                .as_ref()
                .map(|m| download_params(e, nets, m))
                .transpose()?,
        })
    }

    /// The EMA update after an iteration (`super::ema::ema_update`); nothing without an EMA.
    pub fn update_ema(&mut self, e: &B, beta: f64) -> Result<()> {
        match &mut self.ema {
            Some(ema) => super::ema::ema_update(e, ema, &self.params, beta),
            None => Ok(()),
        }
    }

    /// The weights pictures are made with: the EMA when asked for and kept, else the raw ones.
    pub fn picture_params(&self, use_ema: bool) -> &Params<B> {
        match (&self.ema, use_ema) {
            (Some(ema), true) => ema,
            _ => &self.params,
        }
    }

    fn adam(
        &mut self,
        e: &B,
        grads: &Params<B>,
        step: u64,
        lr: f64,
        cfg: &AdamConfig,
    ) -> Result<()> {
        for (name, g) in grads {
            let missing = || Error::new(format!("gradient of an unknown parameter {name}"));
            let p = self.params.get_mut(name).ok_or_else(missing)?;
            let m = self.exp_avg.get_mut(name).ok_or_else(missing)?;
            let v = self.exp_avg_sq.get_mut(name).ok_or_else(missing)?;
            e.adam(p, g, m, v, step, lr, cfg)?;
        }
        Ok(())
    }
}

/// One official iteration: forward, D step (Adam on D), then G
/// and F steps (Adam) against the updated D. Returns the losses.
pub fn train_iteration<B: Backend>(
    e: &B,
    cfg: &ModelConfig,
    nets: &Networks,
    state: &mut BackendState<B>,
    inp: &BackendInputs<B>,
    lr: f64,
) -> Result<Losses> {
    let adam = AdamConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.adam_eps,
    };
    let n = e.shape(&inp.real_b)[0];
    let step = state.step + 1;
    let gf = g_forward(e, nets, &state.params, inp)?;
    let fake_b = e.batch_slice(&gf.fake, 0, n)?;
    let mut ds = d_step(e, cfg, nets, &state.params, &fake_b, &inp.real_b)?;
    drop(fake_b);
    state.adam(e, &ds.grads, step, lr, &adam)?;
    let mut up = g_upstream(e, cfg, nets, &state.params, &gf, inp)?;
    let grads_g = g_backward(e, nets, &state.params, &gf, &up, Terms::ALL)?;
    drop(gf);
    state.adam(e, &grads_g, step, lr, &adam)?;
    state.adam(e, &up.grads_f, step, lr, &adam)?;
    state.step = step;
    let pending = PendingLosses::new(&mut ds, &mut up, e)?;
    drop((ds, up, grads_g));
    pending.read(e, cfg, n)
}

fn scalar<T: Real>(v: f64) -> ArrayD<T> {
    ArrayD::from_elem(IxDyn(&[1]), c(v))
}

/// One step without a parameter update, every quantity under its golden-fixture name:
/// `fake`, `d_real`, `d_fake`, `r1.input_grad`, `loss.*` (shape (1,)), `grad.D.*`, `grad.G.*`,
/// `grad.F.*`, `grad_r1.D.*`, `grad_gan.G.*`, `grad_nce.G.*`, `grad_nce.F.*`, `grad_idt.G.*`.
pub fn replay_step<B: Backend>(
    e: &B,
    cfg: &ModelConfig,
    params: &ParamMap<B::Elem>,
    inputs: &StepInputs<B::Elem>,
) -> Result<BTreeMap<String, ArrayD<B::Elem>>> {
    let nets = Networks::new(cfg);
    let p = upload_params(e, params)?;
    let inp = BackendInputs::upload(e, inputs)?;
    let n = cfg.batch;
    let mut out = BTreeMap::new();
    let gf = g_forward(e, &nets, &p, &inp)?;
    let fake_b = e.batch_slice(&gf.fake, 0, n)?;
    let mut ds = d_step(e, cfg, &nets, &p, &fake_b, &inp.real_b)?;
    let mut up = g_upstream(e, cfg, &nets, &p, &gf, &inp)?;
    let col = |t: &B::Tensor| -> Result<ArrayD<B::Elem>> {
        let v = e.download(t)?.into_raw_vec_and_offset().0;
        Ok(ArrayD::from_shape_vec(IxDyn(&[v.len(), 1]), v).expect("column"))
    };
    out.insert("fake".into(), e.download(&gf.fake)?.into_dyn());
    out.insert("d_real".into(), col(&ds.d_real_logits)?);
    out.insert("d_fake".into(), col(&ds.d_fake_logits)?);
    out.insert(
        "r1.input_grad".into(),
        e.download(&ds.r1_input_grad)?.into_dyn(),
    );
    let mut put = |prefix: &str, m: &Params<B>| -> Result<()> {
        for (k, v) in download_params(e, &nets, m)? {
            out.insert(format!("{prefix}.{k}"), v);
        }
        Ok(())
    };
    put("grad", &ds.grads)?;
    put("grad_r1", &ds.grads_r1)?;
    put("grad", &g_backward(e, &nets, &p, &gf, &up, Terms::ALL)?)?;
    put("grad", &up.grads_f)?;
    put("grad_nce", &up.grads_f)?;
    for (prefix, terms) in [
        ("grad_gan", Terms::GAN),
        ("grad_nce", Terms::NCE),
        ("grad_idt", Terms::IDT),
    ] {
        put(prefix, &g_backward(e, &nets, &p, &gf, &up, terms)?)?;
    }
    let losses = PendingLosses::new(&mut ds, &mut up, e)?.read(e, cfg, n)?;
    for (name, v) in losses.named() {
        // The official compute_G_loss() leaves self.loss_G = G_GAN + ½(NCE + NCE_Y) and
        // returns that plus the identity term; only optimize_parameters() then stores the
        // returned total in loss_G. A step without an update reads the former (the fixtures'
        // step.loss.G), an iteration the latter (traj k<i>.loss.G, and `Losses::g`).
        let v = if name == "G" {
            losses.g_gan + 0.5 * (losses.nce + losses.nce_y)
        } else {
            v
        };
        out.insert(format!("loss.{name}"), scalar(v));
    }
    Ok(out)
}

/// K official iterations (D step + Adam, then G and F steps + Adam) from `params` at the
/// configuration's learning rate: `k<i>.loss.*` for each iteration and `final.<param name>`.
pub fn replay_trajectory<B: Backend>(
    e: &B,
    cfg: &ModelConfig,
    params: &ParamMap<B::Elem>,
    iters: &[StepInputs<B::Elem>],
) -> Result<BTreeMap<String, ArrayD<B::Elem>>> {
    let nets = Networks::new(cfg);
    let mut state = BackendState::upload(e, &TrainState::new(params.clone()))?;
    let mut out = BTreeMap::new();
    for (i, inp) in iters.iter().enumerate() {
        let inp = BackendInputs::upload(e, inp)?;
        let losses = train_iteration(e, cfg, &nets, &mut state, &inp, cfg.lr)?;
        for (name, v) in losses.named() {
            out.insert(format!("k{i}.loss.{name}"), scalar(v));
        }
    }
    for (k, v) in download_params(e, &nets, &state.params)? {
        out.insert(format!("final.{k}"), v);
    }
    Ok(out)
}

/// G on one batch of images (N,3,H,W) with noise (N,1,H,W), on the backend: the render's and
/// the snapshots' inference.
pub fn g_infer<B: Backend>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    x: &Array4<B::Elem>,
    noise: &Array4<B::Elem>,
) -> Result<Array4<B::Elem>> {
    let x = Rc::new(e.upload(x)?);
    let noise = Rc::new(e.upload(noise)?);
    let y = generator::g_infer(e, &nets.g, p, &x, Some(&noise))?;
    e.download(&y)
}
