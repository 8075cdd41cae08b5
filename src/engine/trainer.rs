//! The one place `fit` and `render` choose between the CPU reference (`crate::train`,
//! `crate::render` on `crate::nn`) and the device engine.

use super::cuda::CudaEngine;
use super::step::{EngineInputs, EngineState, g_infer, train_iteration};
use super::{Engine, Params, upload_params};
use crate::config::ModelConfig;
use crate::device::Backend;
use crate::io::Result;
use crate::nn::{Networks, ParamMap};
use crate::render::{RenderOptions, render, render_with};
use crate::train::step::Losses;
use crate::train::{StepInputs, TrainState};
use ndarray::Array3;
use std::borrow::Cow;

/// The training state where the iterations run.
pub enum Trainer {
    Cpu(TrainState<f32>),
    Cuda {
        engine: Box<CudaEngine>,
        state: EngineState<CudaEngine>,
    },
}

impl Trainer {
    /// Puts `state` on `backend` (an upload for a GPU).
    pub fn new(backend: Backend, state: TrainState<f32>) -> Result<Trainer> {
        Ok(match backend {
            Backend::Cpu => Trainer::Cpu(state),
            Backend::Cuda(engine) => {
                let state = EngineState::upload(&*engine, &state)?;
                Trainer::Cuda { engine, state }
            }
        })
    }

    /// One official iteration; the crops and noise are uploaded once.
    pub fn iteration(
        &mut self,
        cfg: &ModelConfig,
        nets: &Networks,
        inp: &StepInputs<f32>,
        lr: f64,
    ) -> Result<Losses> {
        match self {
            Trainer::Cpu(state) => Ok(crate::train::train_iteration(cfg, nets, state, inp, lr)),
            Trainer::Cuda { engine, state } => {
                let e = &**engine;
                let inp = EngineInputs::upload(e, inp)?;
                train_iteration(e, cfg, nets, state, &inp, lr)
            }
        }
    }

    /// The state on the host (downloaded from a GPU): checkpoints, snapshots.
    pub fn host_state(&self, nets: &Networks) -> Result<Cow<'_, TrainState<f32>>> {
        match self {
            Trainer::Cpu(state) => Ok(Cow::Borrowed(state)),
            Trainer::Cuda { engine, state } => Ok(Cow::Owned(state.download(&**engine, nets)?)),
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
            Trainer::Cuda { engine, state } => {
                render_engine(&**engine, nets, &state.params, img, opts, progress)
            }
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
    }
}
