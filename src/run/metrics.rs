//! `metrics.jsonl`: one JSON object per line, written by `fit` and read back by the report.
//!
//! A training iteration gives a [`MetricsLine`]; every `eval_every` iterations a quality
//! evaluation gives an [`EvalLine`]. Reading is lenient, so that logs of older versions and
//! damaged lines still make a report: [`crate::eval::Metrics`] reads any figure that is
//! missing, null (serde_json writes a NaN as null) or not a number as NaN (see [`lenient`]).

use crate::eval::Metrics;
use crate::train::Losses;
use serde::{Deserialize, Serialize};

/// One training iteration: `iter` counts from 0; every loss term under its own name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    pub iter: u64,
    pub lr: f64,
    #[serde(flatten)]
    pub losses: Losses,
    pub it_per_s: f64,
    pub elapsed_s: f64,
}

/// The quality metrics of the preview translated after `iter` iterations.
///
/// Generic so that `fit` logs a borrowed `&Metrics` and the report reads an owned one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalLine<M = Metrics> {
    pub iter: u64,
    pub eval: M,
    /// Seconds the translation and the metrics took.
    #[serde(default = "lenient::missing", deserialize_with = "lenient::number")]
    pub eval_s: f64,
    /// The weights translated: "ema" (the moving average of G's) or "raw"; absent in logs
    /// from before the average (raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
}

/// Deserializers that never fail on a value of the wrong kind: a log line with one odd
/// figure keeps its other figures.
pub mod lenient {
    use crate::eval::Swd;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// The value of an absent figure.
    pub fn missing() -> f64 {
        f64::NAN
    }

    /// Absent `[L, a, b]` figures.
    pub fn missing_triple() -> [f64; 3] {
        [f64::NAN; 3]
    }

    /// An absent SWD: no levels, NaN figures.
    pub fn missing_swd() -> Swd {
        Swd {
            levels: Vec::new(),
            mean: f64::NAN,
            texture: f64::NAN,
        }
    }

    /// A finite number, else NaN.
    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(optional_number(d)?.unwrap_or(f64::NAN))
    }

    /// A finite number, else None.
    pub fn optional_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Value::deserialize(d)?.as_f64().filter(|x| x.is_finite()))
    }

    /// The numbers of an array (other entries left out); empty for anything but an array.
    pub fn numbers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
            _ => Vec::new(),
        })
    }

    /// An array holding exactly three numbers (other entries left out), else NaNs.
    pub fn triple<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; 3], D::Error> {
        let v = numbers(d)?;
        Ok(<[f64; 3]>::try_from(v).unwrap_or_else(|_| missing_triple()))
    }

    /// An SWD object read leniently; anything else is an absent SWD.
    pub fn swd<'de, D: Deserializer<'de>>(d: D) -> Result<Swd, D::Error> {
        let v = Value::deserialize(d)?;
        // A non-object would otherwise be tried as a sequence of fields.
        Ok(match v.is_object() {
            true => Swd::deserialize(v).unwrap_or_else(|_| missing_swd()),
            false => missing_swd(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `fit` writes read back as they were written.
    #[test]
    fn written_lines_read_back() {
        let line = MetricsLine {
            iter: 3,
            lr: 0.002,
            losses: Losses {
                d: 1.5,
                g: 2.5,
                ..Losses::default()
            },
            it_per_s: 4.0,
            elapsed_s: 0.75,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(serde_json::from_str::<MetricsLine>(&text).unwrap(), line);

        let m = crate::eval::evaluate_with(
            &ndarray::Array3::from_shape_fn((3, 24, 24), |(c, y, x)| {
                ((c + y * x) % 7) as f32 / 7.0 - 0.5
            }),
            &ndarray::Array3::from_elem((3, 24, 24), 0.1),
            &ndarray::Array3::from_shape_fn((3, 24, 24), |(c, y, _)| (c + y) as f32 / 30.0),
            &crate::eval::SwdOptions {
                patches: 64,
                directions: 8,
                seed: 1,
            },
        );
        let written = EvalLine {
            iter: 4,
            eval: &m,
            eval_s: 0.5,
            weights: Some("ema".into()),
        };
        let text = serde_json::to_string(&written).unwrap();
        let read: EvalLine = serde_json::from_str(&text).unwrap();
        // NaN (written as null) reads back as NaN, so compare the JSON.
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
        assert_eq!(read.eval.swd, m.swd);
    }

    #[test]
    fn odd_figures_read_as_missing() {
        let read: EvalLine = serde_json::from_str(
            r#"{"iter":2,"eval":{"swd":7,"ssim":"x","ssim_4x":null,"lab_w1":[1,"a",2,3]}}"#,
        )
        .unwrap();
        let e = &read.eval;
        assert!(e.swd.levels.is_empty() && e.swd.mean.is_nan() && e.swd.texture.is_nan());
        assert!(e.ssim.is_nan() && e.edge_correlation.is_nan() && e.lab_w1_sum.is_nan());
        assert_eq!(e.ssim_4x, None);
        assert_eq!(e.lab_w1, [1.0, 2.0, 3.0]);
        assert!(read.eval_s.is_nan());
    }
}
