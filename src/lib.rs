//! sincut: single-image contrastive unpaired translation (SinCUT) on a lean engine of its own.

pub mod backend;
pub mod cli;
pub mod config;
pub mod cuda;
pub mod data;
pub mod error;
pub mod eval;
pub mod fit;
pub mod golden;
pub mod image;
pub mod io;
pub mod lock;
pub mod memory;
pub mod nn;
pub mod ops;
pub mod parallel;
pub mod render;
pub mod report;
pub mod rng;
pub mod run;
pub mod tensor;
pub mod train;
