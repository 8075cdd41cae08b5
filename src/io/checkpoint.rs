//! Parameter files with official names, and training checkpoints.
//!
//! # Checkpoint format (version 1)
//!
//! One safetensors file, all tensors F32:
//! - `param.<name>`: every parameter, `<name>` as in [`ParamMap`] (`G.encoder.convs.1.0.weight`,
//!   `D.final_linear.0.weight`, `F.mlp_0.0.bias`, official state_dict names and shapes);
//! - `adam.m.<name>`, `adam.v.<name>`: Adam's `exp_avg` and `exp_avg_sq` for that parameter (same
//!   shape). Either every parameter has both, or there is no optimizer state at all (a
//!   checkpoint kept only for inference).
//! - `ema.<name>`: the moving average of G's weights (`crate::train::ema`) for every G
//!   parameter (`<name>` starts with `G.`; same shape), or for none: a run kept without an
//!   average (`fit --ema-half-life 0`, and every run before the average existed) has no
//!   `ema.*` tensors. `render` uses them when present (`--no-ema`: the `param.G.*`). Builds
//!   before the average refuse a checkpoint holding them ("unexpected tensor").
//!
//! and in the safetensors `__metadata__` (string → string):
//! - `format` = `sincut-checkpoint`, `version` = `1`;
//! - `config`: the [`ModelConfig`] as JSON;
//! - `iteration`: completed training iterations, decimal;
//! - `adam.step` (only with optimizer state): JSON object network → Adam step count, e.g.
//!   `{"D":1200,"F":1200,"G":1200}` (PyTorch keeps one count per parameter; within a network
//!   they are always equal in SinCUT, and D, G, F have separate optimizers).
//!
//! Writing is atomic, so an interrupted save leaves the previous checkpoint intact.

use super::tensors::TensorFile;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::nn::ParamMap;
use std::collections::BTreeMap;
use std::path::Path;

const FORMAT: &str = "sincut-checkpoint";
const VERSION: &str = "1";
const NETWORKS: [&str; 3] = ["G", "D", "F"];

/// Adam's state for every parameter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdamState {
    pub exp_avg: ParamMap<f32>,
    pub exp_avg_sq: ParamMap<f32>,
    /// Step count per network ("G", "D", "F").
    pub step: BTreeMap<String, u64>,
}

/// Everything needed to resume training (or, without `adam`, to run G).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub config: ModelConfig,
    pub iteration: u64,
    pub params: ParamMap<f32>,
    pub adam: Option<AdamState>,
    /// The moving average of G's weights (G parameter names), when the run keeps one.
    pub ema: Option<ParamMap<f32>>,
}

/// Saves a checkpoint atomically (format in the module documentation).
pub fn save_checkpoint(path: impl AsRef<Path>, ck: &Checkpoint) -> Result<()> {
    let path = path.as_ref();
    let mut file = TensorFile::default();
    for (name, a) in &ck.params {
        file.floats.insert(format!("param.{name}"), a.clone());
    }
    file.metadata.insert("format".into(), FORMAT.into());
    file.metadata.insert("version".into(), VERSION.into());
    let config = serde_json::to_string(&ck.config)
        .map_err(|e| Error::at(path, format_args!("cannot encode the config: {e}")))?;
    file.metadata.insert("config".into(), config);
    file.metadata
        .insert("iteration".into(), ck.iteration.to_string());
    if let Some(adam) = &ck.adam {
        check_adam(&ck.params, adam).map_err(|m| Error::at(path, m))?;
        for (name, a) in &adam.exp_avg {
            file.floats.insert(format!("adam.m.{name}"), a.clone());
        }
        for (name, a) in &adam.exp_avg_sq {
            file.floats.insert(format!("adam.v.{name}"), a.clone());
        }
        let step = serde_json::to_string(&adam.step).expect("a map of integers encodes");
        file.metadata.insert("adam.step".into(), step);
    }
    if let Some(ema) = &ck.ema {
        check_ema(&ck.params, ema).map_err(|m| Error::at(path, m))?;
        for (name, a) in ema {
            file.floats.insert(format!("ema.{name}"), a.clone());
        }
    }
    file.write(path)
}

/// Loads a checkpoint written by [`save_checkpoint`], checking it is complete and consistent.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let file = TensorFile::read(path)?;
    parse_checkpoint(file).map_err(|m| Error::at(path, m))
}

fn parse_checkpoint(file: TensorFile) -> std::result::Result<Checkpoint, String> {
    let meta = &file.metadata;
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "not a sincut checkpoint (metadata 'format' is {other:?}, not {FORMAT:?})"
            ));
        }
        None => return Err("not a sincut checkpoint (metadata 'format' is missing)".into()),
    }
    match meta.get("version").map(String::as_str) {
        Some(VERSION) => {}
        v => {
            return Err(format!(
                "unsupported checkpoint version {:?} (this build reads {VERSION})",
                v.unwrap_or("none")
            ));
        }
    }
    let config: ModelConfig = serde_json::from_str(
        meta.get("config")
            .ok_or("checkpoint metadata has no 'config'")?,
    )
    .map_err(|e| format!("checkpoint config is not valid: {e}"))?;
    let iteration: u64 = meta
        .get("iteration")
        .ok_or("checkpoint metadata has no 'iteration'")?
        .parse()
        .map_err(|_| "checkpoint 'iteration' is not a non-negative integer".to_string())?;
    if let Some((name, _)) = file.ints.iter().next() {
        return Err(format!(
            "unexpected integer tensor '{name}' in a checkpoint"
        ));
    }
    let mut params = ParamMap::new();
    let mut m = ParamMap::new();
    let mut v = ParamMap::new();
    let mut ema = ParamMap::new();
    for (name, a) in file.floats {
        if let Some(n) = name.strip_prefix("param.") {
            params.insert(n.to_string(), a);
        } else if let Some(n) = name.strip_prefix("adam.m.") {
            m.insert(n.to_string(), a);
        } else if let Some(n) = name.strip_prefix("adam.v.") {
            v.insert(n.to_string(), a);
        } else if let Some(n) = name.strip_prefix("ema.") {
            ema.insert(n.to_string(), a);
        } else {
            return Err(format!(
                "unexpected tensor '{name}' (expected param.*, adam.m.*, adam.v.*, ema.*)"
            ));
        }
    }
    if params.is_empty() {
        return Err("checkpoint holds no parameters".into());
    }
    let adam = match meta.get("adam.step") {
        None if m.is_empty() && v.is_empty() => None,
        None => return Err("checkpoint has Adam moments but no 'adam.step'".into()),
        Some(s) => {
            let step: BTreeMap<String, u64> = serde_json::from_str(s)
                .map_err(|e| format!("checkpoint 'adam.step' is not valid: {e}"))?;
            let adam = AdamState {
                exp_avg: m,
                exp_avg_sq: v,
                step,
            };
            check_adam(&params, &adam)?;
            Some(adam)
        }
    };
    let ema = if ema.is_empty() {
        None
    } else {
        check_ema(&params, &ema)?;
        Some(ema)
    };
    Ok(Checkpoint {
        config,
        iteration,
        params,
        adam,
        ema,
    })
}

/// The average covers every G parameter with its shape, and nothing else.
fn check_ema(params: &ParamMap<f32>, ema: &ParamMap<f32>) -> std::result::Result<(), String> {
    for (name, p) in params.iter().filter(|(n, _)| n.starts_with("G.")) {
        match ema.get(name) {
            None => return Err(format!("parameter '{name}' has no ema.{name} average")),
            Some(a) if a.shape() != p.shape() => {
                return Err(format!(
                    "ema.{name} has shape {:?}, the parameter {:?}",
                    a.shape(),
                    p.shape()
                ));
            }
            Some(_) => {}
        }
    }
    match ema
        .keys()
        .find(|n| !n.starts_with("G.") || !params.contains_key(*n))
    {
        Some(name) => Err(format!("ema.{name} is not a parameter of G")),
        None => Ok(()),
    }
}

/// Every parameter has both moments with its shape, and every network a step count.
fn check_adam(params: &ParamMap<f32>, adam: &AdamState) -> std::result::Result<(), String> {
    for (what, moments) in [("adam.m", &adam.exp_avg), ("adam.v", &adam.exp_avg_sq)] {
        for (name, p) in params {
            match moments.get(name) {
                None => return Err(format!("parameter '{name}' has no {what} moment")),
                Some(a) if a.shape() != p.shape() => {
                    return Err(format!(
                        "{what}.{name} has shape {:?}, the parameter {:?}",
                        a.shape(),
                        p.shape()
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(name) = moments.keys().find(|n| !params.contains_key(*n)) {
            return Err(format!("{what}.{name} has no parameter"));
        }
    }
    for name in params.keys() {
        let net = name.split('.').next().unwrap_or("");
        if !adam.step.contains_key(net) {
            return Err(format!("'adam.step' has no count for network '{net}'"));
        }
    }
    Ok(())
}

/// Normalises an official parameter name to `<net>.<state_dict name>`.
///
/// Official checkpoints trained with DataParallel carry `module.`: either at the start
/// (`module.encoder…` in a per-network file) or after the network prefix (`G.module.encoder…`).
/// `net` is the network a per-network file belongs to; names that already start with `G.`, `D.`
/// or `F.` keep their own.
pub fn normalise_param_name(name: &str, net: Option<&str>) -> std::result::Result<String, String> {
    let rest = name.strip_prefix("module.").unwrap_or(name);
    let (own, rest) = match rest.split_once('.') {
        Some((n, r)) if NETWORKS.contains(&n) => (Some(n), r),
        _ => (None, rest),
    };
    let rest = rest.strip_prefix("module.").unwrap_or(rest);
    let net = match (own, net) {
        (Some(o), Some(n)) if o != n => {
            return Err(format!(
                "parameter '{name}' belongs to network {o}, expected {n}"
            ));
        }
        (Some(o), _) => o,
        (None, Some(n)) => n,
        (None, None) => {
            return Err(format!(
                "parameter '{name}' does not say its network (G., D. or F.); name the file *_net_G.safetensors (or D, F)"
            ));
        }
    };
    if rest.is_empty() {
        return Err(format!("parameter name '{name}' is empty after its prefix"));
    }
    Ok(format!("{net}.{rest}"))
}

/// Loads parameters from a safetensors file in any of the accepted layouts:
/// a sincut checkpoint (its `param.*`); one file for all networks (`G.…`, `D.…`, `F.…`, with or
/// without `module.`); or one official network file named like `latest_net_G.safetensors`
/// (names without the network prefix). Buffers (blur `kernel`s) are dropped: the engine builds
/// them itself.
pub fn load_params(path: impl AsRef<Path>) -> Result<ParamMap<f32>> {
    let path = path.as_ref();
    let file = TensorFile::read(path)?;
    if file.metadata.get("format").map(String::as_str) == Some(FORMAT) {
        return parse_checkpoint(file)
            .map(|c| c.params)
            .map_err(|m| Error::at(path, m));
    }
    let net = network_from_file_name(path);
    collect_params(file, net.as_deref()).map_err(|m| Error::at(path, m))
}

/// Loads one network's parameters from a per-network file (names with or without `<net>.` or
/// `module.`), returning them under `<net>.<name>`.
pub fn load_network_params(path: impl AsRef<Path>, net: &str) -> Result<ParamMap<f32>> {
    let path = path.as_ref();
    if !NETWORKS.contains(&net) {
        return Err(Error::at(
            path,
            format_args!("unknown network '{net}' (G, D or F)"),
        ));
    }
    let file = TensorFile::read(path)?;
    collect_params(file, Some(net)).map_err(|m| Error::at(path, m))
}

fn collect_params(
    file: TensorFile,
    net: Option<&str>,
) -> std::result::Result<ParamMap<f32>, String> {
    let mut out = ParamMap::new();
    for (name, a) in file.floats {
        if name.rsplit('.').next() == Some("kernel") {
            continue;
        }
        let norm = normalise_param_name(&name, net)?;
        if out.insert(norm.clone(), a).is_some() {
            return Err(format!(
                "parameter '{norm}' appears twice (with and without 'module.'?)"
            ));
        }
    }
    if out.is_empty() {
        return Err("no parameters in file".into());
    }
    Ok(out)
}

/// Official files are saved as `<epoch>_net_<G|D|F>.pth`; keep that convention for safetensors.
fn network_from_file_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let net = stem.rsplit_once("net_")?.1;
    NETWORKS.contains(&net).then(|| net.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sincut-ck-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn arr(shape: &[usize], seed: f32) -> ArrayD<f32> {
        let n: usize = shape.iter().product();
        ArrayD::from_shape_vec(
            IxDyn(shape),
            (0..n).map(|i| seed + i as f32 * 0.25).collect(),
        )
        .unwrap()
    }

    fn sample() -> Checkpoint {
        let mut params = ParamMap::new();
        params.insert("G.encoder.convs.1.0.weight".into(), arr(&[4, 3, 1, 1], 1.0));
        params.insert("D.final_linear.1.bias".into(), arr(&[1], -2.0));
        params.insert("F.mlp_0.0.weight".into(), arr(&[8, 3], 0.5));
        let mut adam = AdamState::default();
        for (n, p) in &params {
            adam.exp_avg.insert(n.clone(), p.mapv(|x| x * 0.1));
            adam.exp_avg_sq.insert(n.clone(), p.mapv(|x| x * x));
        }
        for net in ["G", "D", "F"] {
            adam.step.insert(net.into(), 17);
        }
        Checkpoint {
            config: ModelConfig {
                crop: 64,
                batch: 2,
                ngf: 4,
                ndf: 2,
                ..Default::default()
            },
            iteration: 17,
            ema: Some(
                crate::train::ema::ema_start(&params)
                    .into_iter()
                    .map(|(k, v)| (k, v.mapv(|x| x * 0.5 - 1.0)))
                    .collect(),
            ),
            params,
            adam: Some(adam),
        }
    }

    #[test]
    fn checkpoint_round_trip() {
        let dir = tmpdir("rt");
        let p = dir.join("ck.safetensors");
        let ck = sample();
        save_checkpoint(&p, &ck).unwrap();
        assert_eq!(load_checkpoint(&p).unwrap(), ck);
        // load_params accepts a checkpoint too.
        assert_eq!(load_params(&p).unwrap(), ck.params);
        // Without optimizer state.
        let light = Checkpoint {
            adam: None,
            ..ck.clone()
        };
        save_checkpoint(&p, &light).unwrap();
        assert_eq!(load_checkpoint(&p).unwrap(), light);
        // Without the average of G (the format of runs without one, and of older runs).
        let plain = Checkpoint {
            ema: None,
            ..ck.clone()
        };
        save_checkpoint(&p, &plain).unwrap();
        let back = load_checkpoint(&p).unwrap();
        assert_eq!(back, plain);
        assert!(back.ema.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The average is stored as `ema.<G name>` F32 tensors, and checked for completeness and
    /// shapes when written and when read.
    #[test]
    fn ema_is_stored_complete_and_checked() {
        let dir = tmpdir("ema");
        let p = dir.join("ck.safetensors");
        let ck = sample();
        save_checkpoint(&p, &ck).unwrap();
        let file = TensorFile::read(&p).unwrap();
        let names: Vec<&String> = file
            .floats
            .keys()
            .filter(|k| k.starts_with("ema."))
            .collect();
        assert_eq!(names, ["ema.G.encoder.convs.1.0.weight"]);
        let back = load_checkpoint(&p).unwrap();
        assert_eq!(back.ema, ck.ema);
        assert_ne!(
            back.ema.as_ref().unwrap()["G.encoder.convs.1.0.weight"],
            back.params["G.encoder.convs.1.0.weight"]
        );

        // Written incomplete, with a wrong shape or for a non-G parameter: refused.
        let mut extra = ck.clone();
        let ema = extra.ema.as_mut().unwrap();
        ema.insert("D.final_linear.1.bias".into(), arr(&[1], 0.0));
        let e = save_checkpoint(&p, &extra).unwrap_err().to_string();
        assert!(
            e.contains("ema.D.final_linear.1.bias is not a parameter of G"),
            "{e}"
        );
        let mut shape = ck.clone();
        shape
            .ema
            .as_mut()
            .unwrap()
            .insert("G.encoder.convs.1.0.weight".into(), arr(&[4, 3], 0.0));
        let e = save_checkpoint(&p, &shape).unwrap_err().to_string();
        assert!(e.contains("has shape [4, 3]"), "{e}");

        // Read from a file missing one G average: refused.
        save_checkpoint(&p, &ck).unwrap();
        let mut file = TensorFile::read(&p).unwrap();
        for n in ["param", "adam.m", "adam.v"] {
            file.floats
                .insert(format!("{n}.G.decoder.x"), arr(&[2], 0.0));
        }
        file.write(&p).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(
            e.contains("'G.decoder.x' has no ema.G.decoder.x average"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_checkpoint_is_a_clear_error() {
        let dir = tmpdir("trunc");
        let p = dir.join("ck.safetensors");
        save_checkpoint(&p, &sample()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(
            e.contains("ck.safetensors") && e.contains("truncated"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inconsistent_checkpoint_is_rejected() {
        let mut ck = sample();
        ck.adam
            .as_mut()
            .unwrap()
            .exp_avg
            .remove("D.final_linear.1.bias");
        let dir = tmpdir("bad");
        let e = save_checkpoint(dir.join("x.safetensors"), &ck).unwrap_err();
        assert!(e.to_string().contains("no adam.m moment"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn official_names_are_normalised() {
        let n = |s: &str, net| normalise_param_name(s, net);
        assert_eq!(
            n("G.module.encoder.convs.1.0.weight", None).unwrap(),
            "G.encoder.convs.1.0.weight"
        );
        assert_eq!(
            n("module.encoder.convs.1.0.weight", Some("G")).unwrap(),
            "G.encoder.convs.1.0.weight"
        );
        assert_eq!(n("module.G.encoder.x", None).unwrap(), "G.encoder.x");
        assert_eq!(
            n("D.final_linear.0.weight", None).unwrap(),
            "D.final_linear.0.weight"
        );
        assert_eq!(n("mlp_0.0.bias", Some("F")).unwrap(), "F.mlp_0.0.bias");
        assert!(n("encoder.convs.1.0.weight", None).is_err());
        assert!(n("D.x", Some("G")).is_err());

        let dir = tmpdir("names");
        let mut m = BTreeMap::new();
        m.insert(
            "module.encoder.convs.1.0.weight".to_string(),
            arr(&[2], 0.0),
        );
        m.insert(
            "module.encoder.convs.2.conv2.0.kernel".to_string(),
            arr(&[4, 4], 0.0),
        );
        let p = dir.join("latest_net_G.safetensors");
        crate::io::save_tensors(&p, &m, None).unwrap();
        let got = load_params(&p).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            vec!["G.encoder.convs.1.0.weight"]
        );
        let q = dir.join("weights.safetensors");
        crate::io::save_tensors(&q, &m, None).unwrap();
        assert!(load_params(&q).unwrap_err().to_string().contains("network"));
        assert_eq!(load_network_params(&q, "G").unwrap(), got);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
