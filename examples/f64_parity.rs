//! Sets sincut's float64 and float32 engines against the official code in float64, on one
//! fixture written by `scripts/official_fixture.py --f64` (its `step64.safetensors`).
//!
//! `cargo run --release --example f64_parity -- FIXTURE_DIR`
//!
//! Per quantity group it prints the worst relative distance r = ‖x − official f64‖ / ‖official
//! f64‖ of sincut f64, sincut f32 and the official f32 (the fixture): the first measures whether
//! the two implementations compute the same function (a few ulps of f64 if they do), the other
//! two how far float32 rounding moves each.

use ndarray::ArrayD;
use sincut::backend::cpu::CpuBackend;
use sincut::golden::Fixture;
use sincut::tensor::cast;
use sincut::train::StepInputs;
use sincut::train::step::replay_step;
use std::collections::BTreeMap;

fn read_f64(path: &std::path::Path) -> BTreeMap<String, ArrayD<f64>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F64)
        .map(|(name, t)| {
            let v: Vec<f64> = t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, ArrayD::from_shape_vec(t.shape().to_vec(), v).unwrap())
        })
        .collect()
}

fn rel(x: &ArrayD<f64>, y: &ArrayD<f64>) -> f64 {
    let d: f64 = x.iter().zip(y.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
    let n: f64 = y.iter().map(|b| b * b).sum();
    if n > 0.0 { (d / n).sqrt() } else { d.sqrt() }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: f64_parity FIXTURE_DIR");
    let fx = Fixture::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let off64 = read_f64(&std::path::Path::new(&dir).join("step64.safetensors"));
    let p64 = fx
        .params
        .iter()
        .map(|(k, v)| (k.clone(), cast::<f32, f64>(v)))
        .collect();
    let in64: StepInputs<f64> = fx.step.cast();
    let ours64 = replay_step(&CpuBackend::<f64>::new(), &fx.config, &p64, &in64).expect("f64 step");
    let ours32 =
        replay_step(&CpuBackend::<f32>::new(), &fx.config, &fx.params, &fx.step).expect("f32 step");
    let mut groups: BTreeMap<String, [(f64, String); 3]> = BTreeMap::new();
    for (name, want) in &off64 {
        let (Some(a), Some(b), Some(c)) = (
            ours64.get(name),
            ours32.get(name),
            fx.step_expected.get(name),
        ) else {
            continue;
        };
        let r = [
            rel(a, want),
            rel(&cast::<f32, f64>(b), want),
            rel(&cast::<f32, f64>(c), want),
        ];
        let group = name
            .rsplitn(2, '.')
            .last()
            .unwrap()
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        let e = groups.entry(group).or_insert_with(|| Default::default());
        for i in 0..3 {
            if r[i] >= e[i].0 {
                e[i] = (r[i], name.clone());
            }
        }
    }
    println!(
        "{:<16} {:>12} {:>12} {:>12}   (worst r against the official f64; quantity of the first)",
        "group", "sincut f64", "sincut f32", "official f32"
    );
    for (g, e) in &groups {
        println!(
            "{g:<16} {:>12.2e} {:>12.2e} {:>12.2e}   {}",
            e[0].0, e[1].0, e[2].0, e[0].1
        );
    }
}
