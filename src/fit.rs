//! `sincut fit`: training on two pictures, with a run directory holding the configuration,
//! resumable checkpoints, a metrics log, snapshots and the final full-resolution result.
//!
//! Run directory:
//! - `run.json`: what was asked (pictures, model, schedule, seed); fixed for the run's life but
//!   for `device`, the backend of the latest start or resume;
//! - `checkpoint.safetensors`: parameters, Adam state, the moving average of G's weights when
//!   the run keeps one (`crate::train::ema`) and the iteration (written atomically);
//!   with the seed in `run.json` it is the whole training state: every iteration's randomness
//!   is derived from (seed, iteration), so a resumed run continues bit for bit;
//! - `metrics.jsonl`: one JSON object per iteration (every loss term, lr, iterations/s), and
//!   every `eval_every` iterations one with the quality metrics of a preview-size translation
//!   (`{"iter": N, "eval": {…}, "eval_s": …, "weights": "ema"|"raw"}`, `crate::eval::Metrics`;
//!   N counts iterations done);
//! - `snapshots/`: every `snapshot_every` iterations the source translated at preview size and
//!   a grid of crops (rows: input, output, target, identity);
//! - `result.png`: the source translated at full resolution when training ends.
//!
//! Snapshots, quality lines and `result.png` come from the moving average of G's weights when
//! the run keeps one, and from the raw weights with `--no-ema` (`RunConfig::pictures_from_ema`).

use crate::backend::device::{Device, OnBackend, Precision, open_backend};
use crate::backend::{Backend, Params};
use crate::config::ModelConfig;
use crate::data::Sampler;
use crate::error::{Error, Result};
use crate::image::{SaveOptions, load_rgb, resize_bilinear, save_rgb};
use crate::io::{AdamState, Checkpoint, load_checkpoint, save_checkpoint};
use crate::nn::Networks;
use crate::render::{RenderOptions, render, render_until};
use crate::run::metrics::{EvalLine, MetricsLine};
use crate::run::{
    OptionChange, ResumeOptions, RunConfig, checkpoint_path, load_run_config, lock_run_dir,
    result_path, resumed_config, run_json_path, write_json,
};
use crate::train::Losses;
use crate::train::TrainState;
use crate::train::ema::ema_beta;
use crate::train::step::{BackendInputs, BackendState, g_infer, train_iteration};
use ndarray::{Array3, Axis, concatenate, s};
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How much `fit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct FitOptions {
    pub run: RunConfig,
    pub out: PathBuf,
    /// Continue the run in `out` instead of starting one.
    pub resume: bool,
    pub device: Device,
    /// The matrix products' precision (`--precision`); None: `auto` for a new run, the run's
    /// own on resume.
    pub precision: Option<Precision>,
    pub verbosity: Verbosity,
    /// Stop after this iteration (exclusive) even if the run is longer (tests, benchmarks).
    pub stop_at: Option<u64>,
    /// Skip the final full-resolution render.
    pub no_final_render: bool,
    /// With `resume`: the options given again (see [`ResumeOptions`]); `run` is then unused.
    pub resume_with: ResumeOptions,
}

/// How a `fit` call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum FitOutcome {
    Finished {
        iteration: u64,
        result: Option<PathBuf>,
    },
    /// Stopped at `stop_at` or by Ctrl-C, with a checkpoint at `iteration`.
    Stopped { iteration: u64 },
}

/// The learning rate at `iteration`: constant for the first half, then linear decay to 0
/// (the official schedule of n_epochs constant + n_epochs_decay linear, per iteration).
pub fn lr_at(base: f64, iteration: u64, total: u64) -> f64 {
    let half = total / 2;
    if iteration < half {
        base
    } else {
        base * (total - iteration) as f64 / (total - half).max(1) as f64
    }
}

/// Set by the Ctrl-C handler; checked between iterations.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler once: the first Ctrl-C asks the loop to checkpoint and stop
/// after the current iteration; a second one exits at once (the last checkpoint is intact,
/// checkpoints being written atomically).
pub fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nsincut: interrupted again; exiting without a new checkpoint");
                std::process::exit(130);
            }
            eprintln!("\nsincut: interrupt: saving a checkpoint after this iteration (Ctrl-C again to quit now)");
        });
    });
}

fn adam_of(state: &TrainState<f32>) -> AdamState {
    let step = ["G", "D", "F"]
        .iter()
        .map(|n| (n.to_string(), state.step))
        .collect();
    AdamState {
        exp_avg: state.exp_avg.clone(),
        exp_avg_sq: state.exp_avg_sq.clone(),
        step,
    }
}

fn save_state(
    run_dir: &Path,
    cfg: &ModelConfig,
    state: &TrainState<f32>,
    iteration: u64,
) -> Result<()> {
    let ck = Checkpoint {
        config: cfg.clone(),
        iteration,
        params: state.params.clone(),
        adam: Some(adam_of(state)),
        ema: state.ema.clone(),
    };
    save_checkpoint(checkpoint_path(run_dir), &ck)
}

/// Loads a checkpoint for training or rendering, checking it belongs to this model.
pub fn load_model_checkpoint(path: &Path) -> Result<(Checkpoint, Networks)> {
    let ck = load_checkpoint(path)?;
    ck.config.validate().map_err(|m| Error::at(path, m))?;
    let nets = Networks::new(&ck.config);
    nets.check_params(&ck.params).map_err(|m| {
        Error::at(
            path,
            format_args!("checkpoint does not fit its own configuration: {m}"),
        )
    })?;
    // A NaN weight renders black and trains NaN without a word: refuse it where it is loaded
    // (render, info, resume), naming the first bad tensor.
    let moments = ck.adam.iter().flat_map(|a| {
        let m = a.exp_avg.iter().map(|(n, v)| (format!("adam.m.{n}"), v));
        m.chain(a.exp_avg_sq.iter().map(|(n, v)| (format!("adam.v.{n}"), v)))
    });
    let tensors = ck.params.iter().map(|(n, v)| (format!("param.{n}"), v));
    let ema = ck
        .ema
        .iter()
        .flatten()
        .map(|(n, v)| (format!("ema.{n}"), v));
    for (name, v) in tensors.chain(moments).chain(ema) {
        if let Some(x) = v.iter().find(|x| !x.is_finite()) {
            return Err(Error::at(
                path,
                format_args!(
                    "tensor '{name}' holds a non-finite value ({x}); the checkpoint cannot be used"
                ),
            ));
        }
    }
    Ok((ck, nets))
}

fn restore_state(path: &Path, run: &RunConfig) -> Result<(TrainState<f32>, u64)> {
    let (ck, _) = load_model_checkpoint(path)?;
    // The lr may change on resume; everything else in the model configuration may not.
    let same_model = ModelConfig {
        lr: run.model.lr,
        ..ck.config.clone()
    } == run.model;
    if !same_model {
        return Err(Error::at(
            path,
            "checkpoint was trained with another model configuration than run.json describes",
        ));
    }
    let adam = ck.adam.ok_or_else(|| {
        Error::at(
            path,
            "checkpoint has no optimizer state; it cannot resume training",
        )
    })?;
    // The average is kept from a run's start or not at all (its options are fixed).
    match (run.keeps_ema(), ck.ema.is_some()) {
        (true, false) => {
            return Err(Error::at(
                path,
                "run.json keeps a moving average of G (ema_half_life > 0) but the checkpoint holds none",
            ));
        }
        (false, true) => {
            return Err(Error::at(
                path,
                "the checkpoint holds a moving average of G but run.json keeps none (ema_half_life 0)",
            ));
        }
        _ => {}
    }
    let step = adam.step.values().copied().max().unwrap_or(0);
    let state = TrainState {
        params: ck.params,
        exp_avg: adam.exp_avg,
        exp_avg_sq: adam.exp_avg_sq,
        step,
        ema: ck.ema,
    };
    Ok((state, ck.iteration))
}

/// Reports progress: a bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    verbosity: Verbosity,
    plain_every: u64,
}

impl Progress {
    fn new(verbosity: Verbosity, start: u64, total: u64) -> Self {
        use std::io::IsTerminal;
        let bar = (verbosity == Verbosity::Normal && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {per_sec} eta {eta} {msg}",
                )
                .expect("static template"),
            );
            b.set_position(start);
            b
        });
        Progress {
            bar,
            verbosity,
            plain_every: (total / 100).clamp(1, 50),
        }
    }

    fn line(&self, msg: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn iteration(&self, it: u64, total: u64, l: &Losses, it_per_s: f64, eta_s: f64) {
        let msg = format!(
            "D {:.3} G {:.3} NCE {:.3} idt {:.3}",
            l.d,
            l.g,
            0.5 * (l.nce + l.nce_y),
            l.idt
        );
        if let Some(b) = &self.bar {
            b.set_position(it + 1);
            b.set_message(msg);
        } else if self.verbosity == Verbosity::Verbose
            || (self.verbosity == Verbosity::Normal
                && ((it + 1).is_multiple_of(self.plain_every) || it + 1 == total))
        {
            eprintln!(
                "iter {}/{total}  {msg}  {it_per_s:.3} it/s  eta {}",
                it + 1,
                fmt_secs(eta_s)
            );
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The preview-size copy of the source (long side `size`, even dimensions).
fn preview_of(src: &Array3<f32>, size: usize) -> Array3<f32> {
    let (_, h, w) = src.dim();
    let scale = (size as f64 / h.max(w) as f64).min(1.0);
    let even = |v: f64| ((v.round() as usize).max(2) / 2) * 2;
    resize_bilinear(src, even(w as f64 * scale), even(h as f64 * scale))
}

/// The preview translated in one piece (the preview is small; noise as the final render's).
fn translate_preview<B: Backend<Elem = f32>>(
    e: &B,
    nets: &Networks,
    p: &Params<B>,
    preview: &Array3<f32>,
    seed: u64,
) -> Result<Array3<f32>> {
    let tile = preview.dim().1.max(preview.dim().2);
    render(
        e,
        nets,
        p,
        preview,
        &RenderOptions { tile, seed },
        &mut |_, _| {},
    )
}

fn snapshot<B: Backend<Elem = f32>>(
    e: &B,
    run_dir: &Path,
    nets: &Networks,
    p: &Params<B>,
    translated: &Array3<f32>,
    inp: &crate::train::StepInputs<f32>,
    iteration: u64,
) -> Result<()> {
    let dir = run_dir.join("snapshots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::at(&dir, e))?;
    save_rgb(
        &dir.join(format!("iter{iteration:07}-preview.png")),
        translated,
        &SaveOptions::default(),
    )?;
    // Crops: columns are crops, rows input / output / target / identity.
    let k = inp.real_a.dim().0.min(4);
    let a = inp.real_a.slice(s![0..k, .., .., ..]).to_owned();
    let b = inp.real_b.slice(s![0..k, .., .., ..]).to_owned();
    let noise = inp.noise.slice(s![0..k, .., .., ..]).to_owned();
    let fa = g_infer(e, nets, p, &a, &noise)?;
    let fb = g_infer(e, nets, p, &b, &noise)?;
    let rows: Vec<Array3<f32>> = [&a, &fa, &b, &fb]
        .iter()
        .map(|t| {
            let cols: Vec<_> = (0..k).map(|i| t.index_axis(Axis(0), i)).collect();
            concatenate(Axis(2), &cols).unwrap()
        })
        .collect();
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let grid = concatenate(Axis(1), &views).unwrap();
    save_rgb(
        &dir.join(format!("iter{iteration:07}-crops.png")),
        &grid,
        &SaveOptions::default(),
    )
}

/// What the quality metrics compare a preview translation with.
struct EvalPictures {
    source: Array3<f32>,
    target: Array3<f32>,
}

impl EvalPictures {
    /// None when the previews are too small for the metrics (very elongated pictures).
    fn new(source_preview: &Array3<f32>, target: &Array3<f32>, size: usize) -> Option<Self> {
        let target = preview_of(target, size);
        let short = |a: &Array3<f32>| a.dim().1.min(a.dim().2);
        (short(source_preview) >= crate::eval::EVAL_MIN_SIDE
            && short(&target) >= crate::eval::EVAL_MIN_SIDE)
            .then(|| EvalPictures {
                source: source_preview.clone(),
                target,
            })
    }
}

/// Trains (or resumes) a run; see the module documentation for what it writes.
pub fn fit(opts: &FitOptions) -> Result<FitOutcome> {
    let run_dir = &opts.out;
    // One process at a time per run directory, from before anything is read or written to the
    // end (a new directory is locked as soon as it is created, below).
    let early_lock = if run_dir.is_dir() {
        Some(lock_run_dir(run_dir)?)
    } else {
        None
    };
    let mut resumed = None;
    let run = if opts.resume {
        let r = load_run_config(run_dir)?;
        if !checkpoint_path(run_dir).exists() {
            return Err(Error::at(
                run_dir,
                "has no checkpoint.safetensors to resume from",
            ));
        }
        // The options given again are checked against the checkpoint's iteration, which also
        // tells the iteration the changes take effect at.
        let (state, start) = restore_state(&checkpoint_path(run_dir), &r)?;
        let r = resumed_config(r, &opts.resume_with, start)?;
        resumed = Some((state, start));
        r
    } else {
        if checkpoint_path(run_dir).exists() {
            return Err(Error::at(
                run_dir,
                "already holds a run; continue it with --resume or choose another --out",
            ));
        }
        opts.run.clone()
    };
    run.validate()?;
    // Pictures first: bad input fails before anything is written.
    let source = load_rgb(&run.source)?;
    let target = load_rgb(&run.target)?;
    let preview = preview_of(&source, run.preview_size);
    let eval_pictures = if run.eval_every > 0 {
        EvalPictures::new(&preview, &target, run.preview_size)
    } else {
        None
    };
    let mut sampler = Sampler::new(source, target, run.model.crop, run.model.batch, run.seed)
        .map_err(Error::new)?
        .with_nce_patches(run.model.nce_patches);
    let nets = Networks::new(&run.model);
    // After the inputs are checked (their errors come first, alone), before anything is written.
    // Resume keeps the run's precision unless one is given.
    let precision = opts.precision.unwrap_or(match run.precision.as_deref() {
        Some("bf16") if opts.resume => Precision::Bf16,
        _ => Precision::Auto,
    });
    let backend = open_backend(opts.device, precision, opts.verbosity == Verbosity::Quiet)?;

    std::fs::create_dir_all(run_dir).map_err(|e| {
        Error::at(
            run_dir,
            format_args!("cannot create the run directory: {e}"),
        )
    })?;
    // A directory this run created is removed again if the run fails before its first
    // checkpoint: no empty or half-made run is left behind. Armed only once locked, so a
    // directory another fit created at the same moment is never touched.
    let mut new_dir = None;
    let _lock = match early_lock {
        Some(l) => l,
        None => {
            let l = lock_run_dir(run_dir)?;
            new_dir = Some(RemoveOnError(run_dir.clone()));
            // Another fit may have created the run between the check above and our lock.
            if checkpoint_path(run_dir).exists() {
                return Err(Error::at(
                    run_dir,
                    "already holds a run; continue it with --resume or choose another --out",
                ));
            }
            l
        }
    };
    if !opts.no_final_render {
        // Refused now rather than after the whole run (a directory named result.png, …).
        crate::image::check_output(&result_path(run_dir), &SaveOptions::default())?;
    }
    // Absolute picture paths, so that resume, render and report work from any directory
    // (the pictures loaded above, so they exist).
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut run = RunConfig {
        source: absolute(&run.source),
        target: absolute(&run.target),
        device: Some(backend.name()),
        ..run
    };
    // A precision changed on resume holds from the resumed iteration on, like lr.
    let now = backend.precision().to_string();
    if let (Some((_, at)), Some(was)) = (&resumed, &run.precision)
        && *was != now
    {
        run.changes.push(OptionChange {
            iter: *at,
            option: "precision".into(),
            from: serde_json::json!(was),
            to: serde_json::json!(now),
        });
    }
    run.precision = Some(now);
    let (state, start) = if let Some(restored) = resumed {
        write_json(&run_json_path(run_dir), &run)?;
        restored
    } else {
        write_json(&run_json_path(run_dir), &run)?;
        let mut rng = crate::data::stream(run.seed, 0, 0);
        let params = nets.init::<f32, _>(&mut rand::rngs::StdRng::from_rng(&mut rng));
        let mut st = TrainState::new(params);
        if run.keeps_ema() {
            st.ema = Some(crate::train::ema::ema_start(&st.params));
        }
        save_state(run_dir, &run.model, &st, 0)?;
        std::mem::forget(new_dir.take()); // the run exists now: keep it
        (st, 0)
    };
    backend.run(TrainingLoop {
        opts,
        run: &run,
        nets: &nets,
        sampler: &mut sampler,
        preview: &preview,
        eval_pictures: eval_pictures.as_ref(),
        state,
        start,
    })
}

/// The iterations of [`fit`] from `start` to the end or a stop, and the final render, on the
/// backend the run opened.
struct TrainingLoop<'a> {
    opts: &'a FitOptions,
    run: &'a RunConfig,
    nets: &'a Networks,
    sampler: &'a mut Sampler,
    preview: &'a Array3<f32>,
    eval_pictures: Option<&'a EvalPictures>,
    state: TrainState<f32>,
    start: u64,
}

impl OnBackend for TrainingLoop<'_> {
    type Output = FitOutcome;

    fn run<B: Backend<Elem = f32>>(self, e: &B) -> Result<FitOutcome> {
        let TrainingLoop {
            opts,
            run,
            nets,
            sampler,
            preview,
            eval_pictures,
            state,
            start,
        } = self;
        let run_dir = &opts.out;
        // Owned: a time budget re-estimates the iteration count as the run goes.
        let mut run = run.clone();
        let mut state = BackendState::upload(e, &state)?;
        let metrics_path = run_dir.join("metrics.jsonl");
        if opts.resume {
            drop_metrics_from(&metrics_path, start)?;
        }
        let mut metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|e| Error::at(&metrics_path, e))?;
        let end_of = |iters: u64| opts.stop_at.map_or(iters, |s| s.min(iters));
        // The weights of the run's pictures: the average unless --no-ema (or none is kept).
        let use_ema = run.pictures_from_ema();
        let progress = Progress::new(opts.verbosity, start, run.iters);
        if start > 0 {
            progress.line(&format!(
                "resuming {} at iteration {start}",
                run_dir.display()
            ));
        }
        install_interrupt_handler();
        let t0 = Instant::now();
        // End of this session's first iteration (warm-up excluded from the time budget's speed).
        let mut t1 = None;
        let mut last_saved = start;
        let mut it = start;
        while it < end_of(run.iters) {
            if INTERRUPTED.load(Ordering::SeqCst) {
                progress.finish();
                if last_saved != it {
                    save_state(run_dir, &run.model, &state.download(e, nets)?, it)?;
                }
                return Ok(FitOutcome::Stopped { iteration: it });
            }
            let inp = sampler.draw(it);
            let lr = lr_at(run.model.lr, it, run.iters);
            let inputs = BackendInputs::upload(e, &inp)?;
            let losses = train_iteration(e, &run.model, nets, &mut state, &inputs, lr)?;
            if !losses.is_finite() {
                progress.finish();
                let bad: Vec<&str> = losses
                    .named()
                    .iter()
                    .filter(|(_, v)| !v.is_finite())
                    .map(|(n, _)| *n)
                    .collect();
                return Err(Error::new(format!(
                    "training diverged at iteration {it}: loss {} is not finite; the checkpoint of iteration {last_saved} in {} is intact (resume it with a lower --lr)",
                    bad.join(", "),
                    run_dir.display()
                )));
            }
            if run.keeps_ema() {
                let beta = ema_beta(run.ema_half_life, run.ema_rampup, run.model.batch, it);
                state.update_ema(e, beta)?;
            }
            let elapsed = t0.elapsed().as_secs_f64();
            let done = (it + 1 - start) as f64;
            let it_per_s = done / elapsed;
            if it == start {
                t1 = Some(Instant::now());
            }
            if let Some(t) = run.time.as_mut().filter(|t| t.fixed_at.is_none()) {
                let s_per_iter = match t1 {
                    Some(t1) if it > start => t1.elapsed().as_secs_f64() / (it - start) as f64,
                    _ => elapsed / done,
                };
                run.iters = t.iters_for(s_per_iter, it);
                t.s_per_iter = Some(s_per_iter);
                // From the next iteration on the lr would decay: the count is final.
                if it + 1 >= run.iters / 2 {
                    t.fixed_at = Some(it + 1);
                    write_json(&run_json_path(run_dir), &run)?;
                    progress.line(&format!(
                        "--time: {} iterations at {s_per_iter:.2} s/iteration",
                        run.iters
                    ));
                }
            }
            let end = end_of(run.iters);
            let line = MetricsLine {
                iter: it,
                lr,
                losses,
                it_per_s,
                elapsed_s: elapsed,
            };
            writeln!(metrics, "{}", serde_json::to_string(&line).unwrap())
                .map_err(|e| Error::at(&metrics_path, e))?;
            progress.iteration(
                it,
                run.iters,
                &losses,
                it_per_s,
                (end - it - 1) as f64 / it_per_s,
            );
            let next = it + 1;
            if next % run.checkpoint_every == 0 || next == end {
                save_state(run_dir, &run.model, &state.download(e, nets)?, next)?;
                last_saved = next;
                if run.time.as_ref().is_some_and(|t| t.fixed_at.is_none()) {
                    // The estimate so far, for report and info (a resume re-estimates).
                    write_json(&run_json_path(run_dir), &run)?;
                }
            }
            let due = |every: u64| every > 0 && (next % every == 0 || next == run.iters);
            let eval_due = due(run.eval_every) && eval_pictures.is_some();
            if due(run.snapshot_every) || eval_due {
                let t_eval = Instant::now();
                let translated =
                    translate_preview(e, nets, state.picture_params(use_ema), preview, run.seed)?;
                if let (true, Some(pics)) = (eval_due, eval_pictures) {
                    let m = crate::eval::evaluate(&translated, &pics.source, &pics.target);
                    let line = EvalLine {
                        iter: next,
                        eval: &m,
                        eval_s: t_eval.elapsed().as_secs_f64(),
                        weights: Some(if use_ema { "ema" } else { "raw" }.into()),
                    };
                    writeln!(metrics, "{}", serde_json::to_string(&line).unwrap())
                        .map_err(|e| Error::at(&metrics_path, e))?;
                    progress.line(&format!(
                        "iter {next}: SWD {:.1} (texture {:.1})  SSIM {:.3}  Lab W1 {:.2}",
                        m.swd.mean, m.swd.texture, m.ssim, m.lab_w1_sum
                    ));
                }
                if due(run.snapshot_every) {
                    snapshot(
                        e,
                        run_dir,
                        nets,
                        state.picture_params(use_ema),
                        &translated,
                        &inp,
                        next,
                    )?;
                }
            }
            it = next;
        }
        progress.finish();
        if it < run.iters {
            return Ok(FitOutcome::Stopped { iteration: it });
        }
        let result = if opts.no_final_render {
            None
        } else {
            let out = result_path(run_dir);
            progress.line("rendering the full-resolution result");
            let img = render_until(
                e,
                nets,
                state.picture_params(use_ema),
                sampler.source_image(),
                &RenderOptions {
                    tile: run.tiles,
                    seed: run.seed,
                },
                &mut |_, _| {},
                &|| INTERRUPTED.load(Ordering::SeqCst),
            )?;
            // Ctrl-C: the checkpoint of the last iteration is saved; a resume renders.
            let Some(img) = img else {
                return Ok(FitOutcome::Stopped {
                    iteration: run.iters,
                });
            };
            save_rgb(&out, &img, &SaveOptions::default())?;
            Some(out)
        };
        if let Err(e) = crate::report::write_report(run_dir) {
            eprintln!("sincut: warning: no report.html: {e}");
        }
        Ok(FitOutcome::Finished {
            iteration: run.iters,
            result,
        })
    }
}

/// Removes a directory when dropped (see its use in [`fit`]; forgotten on success).
struct RemoveOnError(PathBuf);

impl Drop for RemoveOnError {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Keeps only the metrics lines of iterations before `start` (quality lines, which count
/// iterations done, up to `start`): a run stopped between a metrics line and the next checkpoint
/// redoes those iterations on resume, and must not log them twice.
fn drop_metrics_from(path: &Path, start: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                return false;
            };
            let done = v.get("iter").and_then(|i| i.as_u64());
            if v.get("eval").is_some() {
                done.is_some_and(|i| i <= start)
            } else {
                done.is_some_and(|i| i < start)
            }
        })
        .collect();
    if keep.len() == text.lines().count() {
        return Ok(());
    }
    let mut out = keep.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    crate::io::write_atomic(path, out.as_bytes())
}

/// A shared handle for tests that want to simulate Ctrl-C.
pub fn request_interrupt(on: bool) {
    INTERRUPTED.store(on, Ordering::SeqCst);
}
