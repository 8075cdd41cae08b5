//! The one place `fit` and `render` choose between the CPU reference (`crate::train`,
//! `crate::render` on `crate::nn`) and the device engine.

use super::cpu::CpuEngine;
use super::cuda::CudaEngine;
use super::step::{EngineInputs, EngineState, g_infer, train_iteration};
use super::{Engine, Params, upload_params};
use crate::config::ModelConfig;
use crate::device::Backend;
use crate::error::Result;
use crate::nn::{Networks, ParamMap};
use crate::render::{RenderOptions, render, render_with};
use crate::train::step::Losses;
use crate::train::{StepInputs, TrainState};
use ndarray::Array3;
use std::borrow::Cow;

/// The training state where the iterations run.
pub enum Trainer {
    Cpu(TrainState<f32>),
    Cuda(OnEngine<CudaEngine>),
    /// `--device cpu-engine`: the GPU path's code on the CPU.
    CpuEngine(OnEngine<CpuEngine>),
}

/// An engine and the training state on it.
pub struct OnEngine<E: Engine> {
    pub engine: Box<E>,
    pub state: EngineState<E>,
}

impl<E: Engine> OnEngine<E> {
    fn new(engine: Box<E>, state: &TrainState<f32>) -> Result<Self> {
        let state = EngineState::upload(&*engine, state)?;
        Ok(OnEngine { engine, state })
    }

    /// One iteration; the crops and noise are uploaded once.
    fn iteration(
        &mut self,
        cfg: &ModelConfig,
        nets: &Networks,
        inp: &StepInputs<f32>,
        lr: f64,
    ) -> Result<Losses> {
        let e = &*self.engine;
        let inp = EngineInputs::upload(e, inp)?;
        train_iteration(e, cfg, nets, &mut self.state, &inp, lr)
    }
}

impl Trainer {
    /// Puts `state` on `backend` (an upload for the device engine).
    pub fn new(backend: Backend, state: TrainState<f32>) -> Result<Trainer> {
        Ok(match backend {
            Backend::Cpu => Trainer::Cpu(state),
            Backend::Cuda(engine) => Trainer::Cuda(OnEngine::new(engine, &state)?),
            Backend::CpuEngine => Trainer::CpuEngine(OnEngine::new(Box::new(CpuEngine), &state)?),
        })
    }

    /// One official iteration.
    pub fn iteration(
        &mut self,
        cfg: &ModelConfig,
        nets: &Networks,
        inp: &StepInputs<f32>,
        lr: f64,
    ) -> Result<Losses> {
        match self {
            Trainer::Cpu(state) => Ok(crate::train::train_iteration(cfg, nets, state, inp, lr)),
            Trainer::Cuda(t) => t.iteration(cfg, nets, inp, lr),
            Trainer::CpuEngine(t) => t.iteration(cfg, nets, inp, lr),
        }
    }

    /// The state on the host (downloaded from the engine): checkpoints, snapshots.
    pub fn host_state(&self, nets: &Networks) -> Result<Cow<'_, TrainState<f32>>> {
        match self {
            Trainer::Cpu(state) => Ok(Cow::Borrowed(state)),
            Trainer::Cuda(t) => Ok(Cow::Owned(t.state.download(&*t.engine, nets)?)),
            Trainer::CpuEngine(t) => Ok(Cow::Owned(t.state.download(&*t.engine, nets)?)),
        }
    }

    /// Translates `img` tile by tile with the current parameters, on this trainer's device.
    pub fn render(
        &self,
        nets: &Networks,
        img: &Array3<f32>,
        opts: &RenderOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Array3<f32>> {
        match self {
            Trainer::Cpu(state) => Ok(render(&nets.g, &state.params, img, opts, progress)),
            Trainer::Cuda(t) => {
                render_engine(&*t.engine, nets, &t.state.params, img, opts, progress)
            }
            Trainer::CpuEngine(t) => {
                render_engine(&*t.engine, nets, &t.state.params, img, opts, progress)
            }
        }
    }
}

impl Trainer {
    /// [`Trainer::render`] that gives up between two tiles once `stop()` says so (then None):
    /// Ctrl-C during fit's final render stops it instead of rendering to the end.
    pub fn render_until(
        &self,
        nets: &Networks,
        img: &Array3<f32>,
        opts: &RenderOptions,
        progress: &mut dyn FnMut(usize, usize),
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Array3<f32>>> {
        let stopped = std::cell::Cell::new(false);
        let check = || {
            if stop() {
                stopped.set(true);
                return Err(crate::error::Error::new("stopped"));
            }
            Ok(())
        };
        let out = match self {
            Trainer::Cpu(state) => {
                let mut cpu = crate::render::cpu_runner(&nets.g, &state.params);
                render_with(&nets.g, img, opts, progress, &mut |x, noise| {
                    check()?;
                    Ok(cpu(x, noise).unwrap_or_else(|e| match e {}))
                })
            }
            Trainer::Cuda(t) => render_with(&nets.g, img, opts, progress, &mut |x, noise| {
                check()?;
                g_infer(&*t.engine, nets, &t.state.params, x, noise)
            }),
            Trainer::CpuEngine(t) => render_with(&nets.g, img, opts, progress, &mut |x, noise| {
                check()?;
                g_infer(&*t.engine, nets, &t.state.params, x, noise)
            }),
        };
        match out {
            Err(_) if stopped.get() => Ok(None),
            other => other.map(Some),
        }
    }
}

/// The tiled render of `crate::render` (same tiles, windows and noise) with G run on an engine.
pub fn render_engine<E: Engine>(
    e: &E,
    nets: &Networks,
    p: &Params<E>,
    img: &Array3<f32>,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Array3<f32>> {
    render_with(&nets.g, img, opts, progress, &mut |x, noise| {
        g_infer(e, nets, p, x, noise)
    })
}

/// `sincut render`'s work on `backend`.
pub fn render_on(
    backend: &Backend,
    nets: &Networks,
    params: &ParamMap<f32>,
    img: &Array3<f32>,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Array3<f32>> {
    match backend {
        Backend::Cpu => Ok(render(&nets.g, params, img, opts, progress)),
        Backend::Cuda(engine) => {
            let p = upload_params(&**engine, params)?;
            render_engine(&**engine, nets, &p, img, opts, progress)
        }
        Backend::CpuEngine => {
            let p = upload_params(&CpuEngine, params)?;
            render_engine(&CpuEngine, nets, &p, img, opts, progress)
        }
    }
}
