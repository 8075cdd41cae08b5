//! One fixture folder: loading and consistency checks (GOLDEN.md's format).

use crate::config::{ModelConfig, NCE_LAYERS};
use crate::error::{Error, Result};
use crate::io::TensorFile;
use crate::nn::ParamMap;
use crate::train::StepInputs;
use ndarray::{Array4, ArrayD, Ix4};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::compare::{FixtureReport, compare_maps};

/// Step tensors that are inputs, not quantities to compare.
const STEP_INPUTS: [&str; 5] = ["real_A", "real_B", "noise", "nce_ids_x", "nce_ids_y"];

/// One fixture folder, loaded and checked for consistency.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The folder's name (used in reports and under `--dump`).
    pub name: String,
    pub dir: PathBuf,
    pub config: ModelConfig,
    pub params: ParamMap<f32>,
    pub step: StepInputs<f32>,
    /// Every step quantity to compare: outputs, losses, gradients.
    pub step_expected: BTreeMap<String, ArrayD<f32>>,
    /// The inputs of iterations k0..k{K-1}.
    pub traj: Vec<StepInputs<f32>>,
    /// Every trajectory quantity to compare: `k<i>.loss.*`, `final.*`.
    pub traj_expected: BTreeMap<String, ArrayD<f32>>,
    /// `rounding.json`: relative float32 rounding per quantity (missing = 0).
    pub rounding: BTreeMap<String, f64>,
}

impl Fixture {
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::at(dir, "fixture folder not found"));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let (config, iters) = read_meta(&dir.join("meta.json"))?;
        let params = crate::io::load_params(dir.join("params.safetensors"))?;
        let rounding = read_rounding(&dir.join("rounding.json"))?;

        let step_path = dir.join("step.safetensors");
        let mut step_file = TensorFile::read(&step_path)?;
        let step = step_inputs(&step_file, "", &config).map_err(|m| Error::at(&step_path, m))?;
        step_file
            .floats
            .retain(|k, _| !STEP_INPUTS.contains(&k.as_str()));
        if step_file.floats.is_empty() {
            return Err(Error::at(&step_path, "no outputs to compare"));
        }

        let traj_path = dir.join("traj.safetensors");
        let mut traj_file = TensorFile::read(&traj_path)?;
        let k = (0..)
            .take_while(|i| traj_file.floats.contains_key(&format!("k{i}.real_A")))
            .count();
        if k == 0 {
            return Err(Error::at(&traj_path, "no iterations (k0.real_A missing)"));
        }
        if let Some(n) = iters
            && n != k
        {
            return Err(Error::at(
                &traj_path,
                format_args!("holds {k} iterations, meta.json says iters = {n}"),
            ));
        }
        let traj = (0..k)
            .map(|i| step_inputs(&traj_file, &format!("k{i}."), &config))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|m| Error::at(&traj_path, m))?;
        traj_file.floats.retain(|name, _| !is_traj_input(name));
        if !traj_file.floats.keys().any(|n| n.starts_with("final.")) {
            return Err(Error::at(&traj_path, "no final.* parameters"));
        }

        Ok(Fixture {
            name,
            dir: dir.to_path_buf(),
            config,
            params,
            step,
            step_expected: step_file.floats,
            traj,
            traj_expected: traj_file.floats,
            rounding,
        })
    }

    /// Compares computed quantities (step and trajectory together; their names are distinct)
    /// against everything the fixture holds.
    pub fn compare(&self, ours: &BTreeMap<String, ArrayD<f32>>) -> FixtureReport {
        let mut expected = self.step_expected.clone();
        expected.extend(self.traj_expected.clone());
        compare_maps(&self.name, &expected, ours, &self.rounding)
    }
}

/// `k<i>.real_A`, `k<i>.real_B`, `k<i>.noise`, `k<i>.nce_ids_*`.
fn is_traj_input(name: &str) -> bool {
    match split_iteration(name) {
        Some((_, rest)) => STEP_INPUTS.contains(&rest),
        None => false,
    }
}

/// `k12.loss.D` → (12, "loss.D").
pub(super) fn split_iteration(name: &str) -> Option<(usize, &str)> {
    let (head, rest) = name.split_once('.')?;
    let i = head.strip_prefix('k')?.parse().ok()?;
    Some((i, rest))
}

/// Reads the config from meta.json. Every [`ModelConfig`] field must be present (the struct's
/// serde defaults would otherwise silently replace a missing value); official options this
/// engine fixes must have the values it implements.
fn read_meta(path: &Path) -> Result<(ModelConfig, Option<usize>)> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::at(path, "file not found"),
        _ => Error::at(path, format_args!("cannot read: {e}")),
    })?;
    let meta: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::at(path, format_args!("not JSON: {e}")))?;
    let cfg_value = meta
        .get("config")
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::at(path, "no \"config\" object"))?;
    let wanted = serde_json::to_value(ModelConfig::default()).expect("config serialises");
    let obj = cfg_value.as_object().unwrap();
    let missing: Vec<&str> = wanted
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !obj.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::at(
            path,
            format_args!("config lacks {}", missing.join(", ")),
        ));
    }
    // Unknown keys (d_tiles_per_side, nce_layers, iters, …) are ignored by serde here.
    let config: ModelConfig = serde_json::from_value(cfg_value.clone())
        .map_err(|e| Error::at(path, format_args!("config is not valid: {e}")))?;
    config.validate().map_err(|m| Error::at(path, m))?;

    let fixed: [(&str, serde_json::Value); 6] = [
        ("d_tiles_per_side", config.d_tiles_per_side().into()),
        ("nce_layers", NCE_LAYERS.to_vec().into()),
        ("nce_idt", true.into()),
        ("num_patches", 1.into()),
        ("gan_mode", "nonsaturating".into()),
        ("nce_includes_all_negatives_from_minibatch", true.into()),
    ];
    for (key, want) in fixed {
        if let Some(got) = obj.get(key)
            && *got != want
        {
            return Err(Error::at(
                path,
                format_args!("config {key} = {got}, this engine implements {want}"),
            ));
        }
    }
    let iters = match obj.get("iters") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| Error::at(path, "config iters is not a count"))?
                as usize,
        ),
    };
    Ok((config, iters))
}

fn read_rounding(path: &Path) -> Result<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::at(path, "file not found"),
        _ => Error::at(path, format_args!("cannot read: {e}")),
    })?;
    let map: BTreeMap<String, f64> = serde_json::from_str(&text)
        .map_err(|e| Error::at(path, format_args!("not a JSON object of numbers: {e}")))?;
    if let Some((k, v)) = map.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::at(
            path,
            format_args!("rounding of {k} is {v}, expected a finite number ≥ 0"),
        ));
    }
    Ok(map)
}

/// The inputs of one step, `prefix` "" for step.safetensors or "k<i>." for an iteration,
/// with shapes checked against the config and patch ids against the NCE layer resolutions.
fn step_inputs(
    file: &TensorFile,
    prefix: &str,
    cfg: &ModelConfig,
) -> std::result::Result<StepInputs<f32>, String> {
    let (n, s) = (cfg.batch, cfg.crop);
    let image = |name: &str, shape: [usize; 4]| -> std::result::Result<Array4<f32>, String> {
        let full = format!("{prefix}{name}");
        let a = file
            .floats
            .get(&full)
            .ok_or_else(|| format!("input '{full}' is missing"))?;
        if a.shape() != shape {
            return Err(format!(
                "input '{full}' has shape {:?}, the config implies {shape:?}",
                a.shape()
            ));
        }
        Ok(a.clone().into_dimensionality::<Ix4>().unwrap())
    };
    // Resolution of each NCE layer's features: layer 0 is the input, layers 2 and 4 come after
    // the encoder's one downsampling ResBlock.
    let res = [s, s / 2, s / 2];
    // One patch per layer: the official SinCUT's num_patches.
    let ids = |name: &str| -> std::result::Result<crate::train::NcePositions, String> {
        let full = format!("{prefix}{name}");
        let a = file
            .ints
            .get(&full)
            .ok_or_else(|| format!("input '{full}' is missing (int64)"))?;
        if a.shape() != [3] {
            return Err(format!("'{full}' has shape {:?}, expected [3]", a.shape()));
        }
        let mut out = [0usize; 3];
        for (l, (&v, o)) in a.iter().zip(out.iter_mut()).enumerate() {
            let hw = res[l] * res[l];
            if v < 0 || v as usize >= hw {
                return Err(format!(
                    "'{full}'[{l}] = {v} is outside the {r}×{r} features of NCE layer {}",
                    NCE_LAYERS[l],
                    r = res[l]
                ));
            }
            *o = v as usize;
        }
        Ok(out.map(|id| vec![id]))
    };
    Ok(StepInputs {
        real_a: image("real_A", [n, 3, s, s])?,
        real_b: image("real_B", [n, 3, s, s])?,
        noise: image("noise", [2 * n, 1, s, s])?,
        nce_ids_x: ids("nce_ids_x")?,
        nce_ids_y: ids("nce_ids_y")?,
    })
}
