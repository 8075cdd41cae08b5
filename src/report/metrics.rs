//! Reading `metrics.jsonl` for the report, on the types `fit` writes it with
//! ([`crate::run::metrics`]).

use crate::run::metrics::EvalLine;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One training iteration's line: every numeric field but `iter` (loss terms, lr, timings).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossRecord {
    pub iter: u64,
    pub values: BTreeMap<String, f64>,
}

/// One quality evaluation (a line with an `eval` object); absent figures are `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalRecord {
    pub iter: u64,
    pub swd_mean: Option<f64>,
    /// Mean of the band-pass SWD levels (all but the coarsest).
    pub swd_texture: Option<f64>,
    pub ssim: Option<f64>,
    pub ssim_4x: Option<f64>,
    pub edge_correlation: Option<f64>,
    pub lab_w1_sum: Option<f64>,
    pub eval_s: Option<f64>,
}

/// `metrics.jsonl` read leniently, each kind sorted by iteration (a repeated iteration keeps
/// its last line); `skipped` counts lines that are not JSON objects with an `iter`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsLog {
    pub losses: Vec<LossRecord>,
    pub evals: Vec<EvalRecord>,
    /// `elapsed_s` of the loss lines in file order (for the wall time across resumes).
    pub elapsed: Vec<f64>,
    pub skipped: usize,
}

/// A figure as the report shows it: None when absent or not finite.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Mean of the band-pass SWD levels: every level but the last (the Gaussian residual).
pub fn texture_of_levels(levels: &[f64]) -> Option<f64> {
    (levels.len() >= 2)
        .then(|| levels[..levels.len() - 1].iter().sum::<f64>() / (levels.len() - 1) as f64)
}

fn eval_record(line: EvalLine) -> EvalRecord {
    let m = &line.eval;
    // Older lines have neither `swd.texture` nor `lab_w1_sum`: both follow from the rest.
    let lab_sum = finite(m.lab_w1_sum).or_else(|| finite(m.lab_w1.iter().sum()));
    EvalRecord {
        iter: line.iter,
        swd_mean: finite(m.swd.mean),
        swd_texture: finite(m.swd.texture).or_else(|| texture_of_levels(&m.swd.levels)),
        ssim: finite(m.ssim),
        ssim_4x: m.ssim_4x,
        edge_correlation: finite(m.edge_correlation),
        lab_w1_sum: lab_sum,
        eval_s: finite(line.eval_s),
    }
}

/// Parses `metrics.jsonl`: lines with an `eval` object are quality evaluations, other lines
/// with an `iter` are training iterations; anything else is skipped and counted.
pub fn parse_metrics(text: &str) -> MetricsLog {
    let mut log = MetricsLog::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            log.skipped += 1;
            continue;
        };
        let Some(iter) = v.get("iter").and_then(Value::as_u64) else {
            log.skipped += 1;
            continue;
        };
        if v.get("eval").is_some_and(Value::is_object) {
            // Read leniently (see `crate::eval::Metrics`): any `eval` object reads.
            match EvalLine::deserialize(&v) {
                Ok(line) => log.evals.push(eval_record(line)),
                Err(_) => log.skipped += 1,
            }
            continue;
        }
        // A training line (`crate::run::metrics::MetricsLine`): its numbers are kept by name,
        // so that the loss terms of older and later versions still plot.
        let Some(obj) = v.as_object() else {
            log.skipped += 1;
            continue;
        };
        let values: BTreeMap<String, f64> = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "iter")
            .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
            .collect();
        if let Some(&e) = values.get("elapsed_s") {
            log.elapsed.push(e);
        }
        log.losses.push(LossRecord { iter, values });
    }
    fn keep_last<T>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
        v.sort_by_key(&key); // stable: among equal iterations, file order
        let mut out: Vec<T> = Vec::with_capacity(v.len());
        for r in v.drain(..) {
            match out.last_mut() {
                Some(last) if key(last) == key(&r) => *last = r,
                _ => out.push(r),
            }
        }
        *v = out;
    }
    keep_last(&mut log.losses, |r| r.iter);
    keep_last(&mut log.evals, |r| r.iter);
    log
}

/// Training wall time across sessions: `elapsed_s` restarts at each resume, so the log is cut
/// where it decreases and the last value of each piece is summed. Returns (seconds, sessions).
pub fn wall_time(elapsed: &[f64]) -> (f64, usize) {
    let (mut total, mut sessions, mut last) = (0.0, 0, f64::NEG_INFINITY);
    for &e in elapsed.iter().filter(|e| e.is_finite()) {
        if e < last {
            total += last;
            sessions += 1;
        }
        last = e;
    }
    if last.is_finite() {
        total += last;
        sessions += 1;
    }
    (total, sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mixed_lines_leniently() {
        let text = r#"{"iter":0,"lr":0.002,"d":1.5,"g":2.0,"elapsed_s":1.0,"it_per_s":1.0}
{"iter":1,"lr":0.002,"d":1.4,"g":1.9,"elapsed_s":2.0,"new_field":"text"}
not json
{"no_iter":true}

{"iter":2,"eval":{"swd":{"levels":[3.0,5.0,10.0],"mean":6.0},"ssim":0.8,"ssim_4x":null,"edge_correlation":0.7,"lab_w1":[1.0,2.0,3.0]},"eval_s":1.5}
{"iter":1,"lr":0.002,"d":1.3,"g":1.8,"elapsed_s":0.5}
{"iter":2,"lr":0.001,"d":1.2,"g":1.7,"elapsed_s":1.5}
{"iter":4,"eval":{"swd":{"levels":[1.0,2.0],"mean":1.5,"texture":9.0},"ssim":0.9,"edge_correlation":0.6,"lab_w1_sum":4.0}}
"#;
        let log = parse_metrics(text);
        assert_eq!(log.skipped, 2);
        assert_eq!(
            log.losses.iter().map(|r| r.iter).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Iteration 1 was logged twice (a resume): the later line wins.
        assert_eq!(log.losses[1].values["d"], 1.3);
        assert!(!log.losses[1].values.contains_key("new_field"));
        assert_eq!(log.evals.len(), 2);
        let e = &log.evals[0];
        assert_eq!(e.iter, 2);
        assert_eq!(e.swd_mean, Some(6.0));
        assert_eq!(e.swd_texture, Some(4.0), "mean of all levels but the last");
        assert_eq!(e.ssim_4x, None);
        assert_eq!(e.lab_w1_sum, Some(6.0), "summed from lab_w1");
        assert_eq!(e.eval_s, Some(1.5));
        assert_eq!(log.evals[1].swd_texture, Some(9.0), "given texture wins");
        assert_eq!(log.evals[1].lab_w1_sum, Some(4.0));
        // Wall time: 1.0 → 2.0, restart at 0.5 → 1.5.
        assert_eq!(wall_time(&log.elapsed), (3.5, 2));
        assert_eq!(parse_metrics(""), MetricsLog::default());
    }
}
