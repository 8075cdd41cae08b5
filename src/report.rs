//! `report.html`: one self-contained page per run directory (`sincut report RUN_DIR`, and at
//! the end of `sincut fit`).
//!
//! The page shows the inputs, the final result next to the colour baselines (the source
//! itself, Reinhard transfer, histogram matching; with a metrics table when the run logged
//! quality evaluations), loss and metric curves, the snapshots over time, timings, the device
//! and the configuration. Pictures are embedded as base64 JPEG data URIs and curves as inline
//! SVG drawn here; the page loads nothing else (its Content-Security-Policy forbids it) and
//! needs no JavaScript, so it opens from disk anywhere.
//!
//! Everything is read leniently: a missing picture, a damaged snapshot, an empty or partly
//! unreadable `metrics.jsonl` or fields added by later versions give a note, not a failure.
//! Only a directory that is not a run (no readable `run.json`) is an error.

use crate::error::{Error, Result};
use crate::eval::{EVAL_MIN_SIDE, Metrics, evaluate, histogram_match, reinhard_transfer};
use crate::image::{load_rgb, resize_bilinear};
use crate::io::write_atomic;
use ndarray::Array3;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Longest side of an embedded picture.
pub const THUMB_MAX: usize = 768;
/// Most snapshots shown (evenly spaced, the last one always among them).
pub const MAX_SNAPSHOTS: usize = 50;
/// Most points drawn per curve (longer series are reduced to per-bucket extremes).
pub const MAX_CURVE_POINTS: usize = 1200;
const JPEG_QUALITY: u8 = 85;
/// The page may load nothing from anywhere: pictures are data URIs, styles inline.
const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

// ---------------------------------------------------------------------------------------------
// HTML text

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pictures

/// Shrinks a picture so that its long side is at most `max` (never enlarges).
fn fit_within(img: &Array3<f32>, max: usize) -> Array3<f32> {
    let (_, h, w) = img.dim();
    if h.max(w) <= max {
        return img.clone();
    }
    let scale = max as f64 / h.max(w) as f64;
    let side = |v: usize| ((v as f64 * scale).round() as usize).max(1);
    resize_bilinear(img, side(w), side(h))
}

/// The preview-size copy of a picture, as `fit` makes it (long side `size`, even sides).
fn preview_of(img: &Array3<f32>, size: usize) -> Array3<f32> {
    let (_, h, w) = img.dim();
    let scale = (size as f64 / h.max(w) as f64).min(1.0);
    let even = |v: f64| ((v.round() as usize).max(2) / 2) * 2;
    resize_bilinear(img, even(w as f64 * scale), even(h as f64 * scale))
}

/// A (3, H, W) [-1, 1] picture as a JPEG data URI, shrunk to [`THUMB_MAX`].
fn data_uri(img: &Array3<f32>) -> Result<String> {
    let img = fit_within(img, THUMB_MAX);
    let (_, h, w) = img.dim();
    let mut rgb = Vec::with_capacity(3 * h * w);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let v = img[[c, y, x]];
                let v = if v.is_nan() { -1.0 } else { v.clamp(-1.0, 1.0) };
                rgb.push(((v + 1.0) * 127.5).round() as u8);
            }
        }
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode(&rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::new(format!("cannot encode a JPEG thumbnail: {e}")))?;
    use base64::Engine as _;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&jpeg)
    ))
}

/// One embedded picture (`kind` names its role for readers and tests).
fn figure(img: &Array3<f32>, kind: &str, alt: &str, caption: &str) -> String {
    let (_, h, w) = img.dim();
    match data_uri(img) {
        Ok(uri) => format!(
            "<figure><img src=\"{uri}\" data-kind=\"{kind}\" alt=\"{}\" width=\"{}\" height=\"{}\"><figcaption>{caption}</figcaption></figure>\n",
            escape(alt),
            fit_within_dims(w, h).0,
            fit_within_dims(w, h).1,
        ),
        Err(e) => format!(
            "<figure><p class=\"note\">{}</p><figcaption>{caption}</figcaption></figure>\n",
            escape(&e.to_string())
        ),
    }
}

fn fit_within_dims(w: usize, h: usize) -> (usize, usize) {
    if h.max(w) <= THUMB_MAX {
        return (w, h);
    }
    let scale = THUMB_MAX as f64 / h.max(w) as f64;
    let side = |v: usize| ((v as f64 * scale).round() as usize).max(1);
    (side(w), side(h))
}

fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>\n", escape(text))
}

// ---------------------------------------------------------------------------------------------
// metrics.jsonl

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

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// Mean of the band-pass SWD levels: every level but the last (the Gaussian residual).
pub fn texture_of_levels(levels: &[f64]) -> Option<f64> {
    (levels.len() >= 2)
        .then(|| levels[..levels.len() - 1].iter().sum::<f64>() / (levels.len() - 1) as f64)
}

fn eval_record(iter: u64, line: &Value, e: &Value) -> EvalRecord {
    let swd = e.get("swd");
    let levels: Vec<f64> = swd
        .and_then(|s| s.get("levels"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let lab_sum = num(e.get("lab_w1_sum")).or_else(|| {
        let a = e.get("lab_w1")?.as_array()?;
        let v: Vec<f64> = a.iter().filter_map(Value::as_f64).collect();
        (v.len() == 3).then(|| v.iter().sum())
    });
    EvalRecord {
        iter,
        swd_mean: num(swd.and_then(|s| s.get("mean"))),
        swd_texture: num(swd.and_then(|s| s.get("texture"))).or_else(|| texture_of_levels(&levels)),
        ssim: num(e.get("ssim")),
        ssim_4x: num(e.get("ssim_4x")),
        edge_correlation: num(e.get("edge_correlation")),
        lab_w1_sum: lab_sum,
        eval_s: num(line.get("eval_s")),
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
        if let Some(e) = v.get("eval").filter(|e| e.is_object()) {
            log.evals.push(eval_record(iter, &v, e));
            continue;
        }
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

// ---------------------------------------------------------------------------------------------
// Curves

/// Centred moving average over `window` values (odd or even; half-width `window / 2`),
/// skipping non-finite values; the window shrinks at the ends. NaN where it holds none.
pub fn moving_average(v: &[f64], window: usize) -> Vec<f64> {
    let half = window / 2;
    let mut sum = vec![0.0; v.len() + 1];
    let mut cnt = vec![0usize; v.len() + 1];
    for (i, &x) in v.iter().enumerate() {
        let ok = x.is_finite();
        sum[i + 1] = sum[i] + if ok { x } else { 0.0 };
        cnt[i + 1] = cnt[i] + usize::from(ok);
    }
    (0..v.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(v.len()));
            let n = cnt[b] - cnt[a];
            if n == 0 {
                f64::NAN
            } else {
                (sum[b] - sum[a]) / n as f64
            }
        })
        .collect()
}

/// The smoothing window for `n` points: about 1/50 of the series, at least 1 (no smoothing).
pub fn smoothing_window(n: usize) -> usize {
    (n / 50).clamp(1, 2001) | 1
}

/// Reduces a series to at most about `max` points: per bucket of consecutive points, the
/// lowest and the highest (in order), so spikes stay visible. First and last points are kept.
pub fn decimate(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max.max(4) {
        return points.to_vec();
    }
    let buckets = (max / 2).max(2);
    let mut out = Vec::with_capacity(2 * buckets + 2);
    out.push(points[0]);
    let n = points.len();
    for b in 0..buckets {
        let (lo, hi) = (1 + b * (n - 2) / buckets, 1 + (b + 1) * (n - 2) / buckets);
        let slice = &points[lo..hi];
        let finite = || slice.iter().enumerate().filter(|(_, p)| p.1.is_finite());
        let (Some(mn), Some(mx)) = (
            finite().min_by(|a, b| a.1.1.total_cmp(&b.1.1)),
            finite().max_by(|a, b| a.1.1.total_cmp(&b.1.1)),
        ) else {
            continue;
        };
        let (first, second) = if mn.0 <= mx.0 { (mn, mx) } else { (mx, mn) };
        out.push(*first.1);
        if second.0 != first.0 {
            out.push(*second.1);
        }
    }
    out.push(points[n - 1]);
    out
}

/// SVG path data through the points mapped by `to_px`; a non-finite point ends the current
/// piece. Empty when no point is finite.
pub fn svg_path(points: &[(f64, f64)], to_px: impl Fn(f64, f64) -> (f64, f64)) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for &(x, y) in points {
        if !(x.is_finite() && y.is_finite()) {
            pen_down = false;
            continue;
        }
        let (px, py) = to_px(x, y);
        let _ = write!(d, "{}{px:.1},{py:.1}", if pen_down { 'L' } else { 'M' });
        pen_down = true;
    }
    d
}

/// Round tick positions covering [lo, hi] (about `target` of them, steps 1, 2 or 5 × 10^k),
/// with the axis range widened to whole steps: (ticks, step).
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    (ticks, step)
}

/// A tick label with as many decimals as the step needs; on axes stepping by thousands
/// (millions) the values read 20k (3M).
pub fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    for (div, suffix) in [(1e6, "M"), (1e3, "k")] {
        if v != 0.0 && step >= div * (1.0 - 1e-9) {
            return format!("{}{suffix}", tick_label(v / div, step / div));
        }
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// One line of a chart: `smooth` is drawn solid, `raw` (if any) as a faint line beneath.
pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub smooth: Vec<(f64, f64)>,
    pub raw: Vec<(f64, f64)>,
}

/// A line chart: y range from the smoothed lines and the raw lines' 1st–99th percentiles
/// (outliers are clipped, not allowed to flatten everything else).
pub struct Chart {
    /// Identifier, unique in the page (clip path id, `data-name`).
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const PALETTE: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];
const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The chart as an inline `<svg class="curve">`: axes, ticks, grid, labels, legend, lines.
pub fn chart_svg(c: &Chart) -> String {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all = || {
        c.series
            .iter()
            .flat_map(|s| s.smooth.iter().chain(&s.raw))
            .filter(finite)
    };
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in all() {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
    }
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in &c.series {
        for p in s.smooth.iter().filter(finite) {
            y0 = y0.min(p.1);
            y1 = y1.max(p.1);
        }
        let mut raw: Vec<f64> = s.raw.iter().filter(finite).map(|p| p.1).collect();
        if !raw.is_empty() {
            raw.sort_by(f64::total_cmp);
            y0 = y0.min(percentile(&raw, 0.01));
            y1 = y1.max(percentile(&raw, 0.99));
        }
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x0 + 1.0);
    }
    if y1 <= y0 {
        let pad = (y0.abs() * 0.1).max(1e-3);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let pad = (y1 - y0) * 0.04;
    let (yt, ystep) = nice_ticks(y0 - pad, y1 + pad, 5);
    let (ya, yb) = (yt[0], *yt.last().unwrap());
    let (xt, xstep) = nice_ticks(x0, x1, 6);
    let (px0, px1, py0, py1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let sx = |x: f64| px0 + (x - x0) / (x1 - x0) * (px1 - px0);
    let sy = |y: f64| py1 - (y - ya) / (yb - ya) * (py1 - py0);
    let id = escape(&c.name);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"curve\" data-name=\"{id}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        escape(&c.title)
    );
    let _ = write!(
        s,
        "<defs><clipPath id=\"clip-{id}\"><rect x=\"{px0}\" y=\"{py0}\" width=\"{}\" height=\"{}\"/></clipPath></defs>",
        px1 - px0,
        py1 - py0
    );
    // Grid and ticks.
    s.push_str("<g class=\"axis\">");
    for &t in &yt {
        let y = sy(t);
        let _ = write!(
            s,
            "<line x1=\"{px0}\" x2=\"{px1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"gridline\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            px0 - 6.0,
            y + 4.0,
            tick_label(t, ystep)
        );
    }
    for &t in xt.iter().filter(|&&t| t >= x0 - 1e-9 && t <= x1 + 1e-9) {
        let x = sx(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{py1}\" y2=\"{}\" class=\"tick\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            py1 + 5.0,
            py1 + 18.0,
            tick_label(t, xstep)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{px0}\" y=\"{py0}\" width=\"{}\" height=\"{}\" class=\"frame\"/>",
        px1 - px0,
        py1 - py0
    );
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"label\">{}</text>",
        (px0 + px1) / 2.0,
        H - 8.0,
        escape(&c.x_label)
    );
    let _ = write!(
        s,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"label\">{}</text>",
        (py0 + py1) / 2.0,
        escape(&c.y_label)
    );
    s.push_str("</g>");
    // Lines.
    let _ = write!(s, "<g clip-path=\"url(#clip-{id})\">");
    for ser in &c.series {
        let raw = svg_path(&decimate(&ser.raw, MAX_CURVE_POINTS), |x, y| (sx(x), sy(y)));
        if !raw.is_empty() {
            let _ = write!(
                s,
                "<path class=\"raw\" d=\"{raw}\" stroke=\"{}\" fill=\"none\" stroke-opacity=\"0.22\" stroke-width=\"1\"/>",
                ser.color
            );
        }
    }
    for ser in &c.series {
        let pts = decimate(&ser.smooth, MAX_CURVE_POINTS);
        let d = svg_path(&pts, |x, y| (sx(x), sy(y)));
        let _ = write!(
            s,
            "<path class=\"series\" data-label=\"{}\" d=\"{d}\" stroke=\"{}\" fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\"/>",
            escape(&ser.label),
            ser.color
        );
        // Sparse series (evaluations) also get markers, so single points show.
        if pts.len() <= 60 {
            for &(x, y) in pts.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.6\" fill=\"{}\"/>",
                    sx(x),
                    sy(y),
                    ser.color
                );
            }
        }
    }
    s.push_str("</g>");
    // Legend, along the top.
    let mut lx = px0;
    for ser in &c.series {
        let _ = write!(
            s,
            "<g class=\"legend\"><line x1=\"{lx:.1}\" x2=\"{:.1}\" y1=\"16\" y2=\"16\" stroke=\"{}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"20\">{}</text></g>",
            lx + 18.0,
            ser.color,
            lx + 23.0,
            escape(&ser.label)
        );
        lx += 36.0 + 6.6 * ser.label.chars().count() as f64;
    }
    s.push_str("</svg>\n");
    s
}

/// A chart of loss terms `keys` (those present in the log), smoothed with the raw beneath.
fn loss_chart(log: &MetricsLog, name: &str, title: &str, keys: &[(&str, &str)]) -> Option<Chart> {
    let window = smoothing_window(log.losses.len());
    let mut series = Vec::new();
    for (i, (key, label)) in keys.iter().enumerate() {
        let raw: Vec<(f64, f64)> = log
            .losses
            .iter()
            .map(|r| {
                (
                    r.iter as f64,
                    r.values.get(*key).copied().unwrap_or(f64::NAN),
                )
            })
            .collect();
        if raw.iter().all(|p| !p.1.is_finite()) {
            continue;
        }
        let ys: Vec<f64> = raw.iter().map(|p| p.1).collect();
        let smooth = raw
            .iter()
            .zip(moving_average(&ys, window))
            .map(|(p, y)| (p.0, y))
            .collect();
        series.push(Series {
            label: (*label).to_string(),
            color: PALETTE[i % PALETTE.len()],
            smooth,
            raw: if window > 1 { raw } else { Vec::new() },
        });
    }
    (!series.is_empty()).then(|| Chart {
        name: name.into(),
        title: if window > 1 {
            format!("{title} (moving average over {window} iterations; raw values faint)")
        } else {
            title.into()
        },
        x_label: "iteration".into(),
        y_label: "loss".into(),
        series,
    })
}

type EvalField = fn(&EvalRecord) -> Option<f64>;

fn eval_chart(
    log: &MetricsLog,
    name: &str,
    title: &str,
    y_label: &str,
    fields: &[(&str, EvalField)],
) -> Option<Chart> {
    let mut series = Vec::new();
    for (i, (label, get)) in fields.iter().enumerate() {
        let pts: Vec<(f64, f64)> = log
            .evals
            .iter()
            .filter_map(|r| Some((r.iter as f64, get(r)?)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        series.push(Series {
            label: (*label).to_string(),
            color: PALETTE[i % PALETTE.len()],
            smooth: pts,
            raw: Vec::new(),
        });
    }
    (!series.is_empty()).then(|| Chart {
        name: name.into(),
        title: title.into(),
        x_label: "iteration".into(),
        y_label: y_label.into(),
        series,
    })
}

/// Every curve panel the log allows: D and G losses, then style, content and colour metrics.
pub fn charts(log: &MetricsLog) -> Vec<Chart> {
    let d_terms = [
        ("d", "D total"),
        ("d_real", "D real"),
        ("d_fake", "D fake"),
        ("d_r1", "R1 penalty"),
    ];
    let g_terms = [
        ("g", "G total"),
        ("g_gan", "G GAN"),
        ("nce", "NCE (X)"),
        ("nce_y", "NCE (Y)"),
        ("idt", "identity"),
    ];
    let out = [
        loss_chart(log, "loss-d", "Discriminator losses", &d_terms),
        loss_chart(log, "loss-g", "Generator losses", &g_terms),
        eval_chart(
            log,
            "metric-swd",
            "Style distance to the target: patch SWD ×10³ (lower is closer)",
            "SWD ×10³",
            &[
                ("SWD mean", |r| r.swd_mean),
                ("SWD texture", |r| r.swd_texture),
            ],
        ),
        eval_chart(
            log,
            "metric-content",
            "Content kept from the source (higher keeps more)",
            "similarity",
            &[
                ("SSIM", |r| r.ssim),
                ("SSIM ¼", |r| r.ssim_4x),
                ("edge correlation", |r| r.edge_correlation),
            ],
        ),
        eval_chart(
            log,
            "metric-colour",
            "Colour distance to the target: Lab W1, L + a + b (lower is closer)",
            "Lab W1",
            &[("Lab W1 sum", |r| r.lab_w1_sum)],
        ),
    ];
    out.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------------------------
// The run directory

/// Snapshot files by iteration: (iteration, preview, crops).
fn list_snapshots(dir: &Path) -> Vec<(u64, Option<PathBuf>, Option<PathBuf>)> {
    let mut by_iter: BTreeMap<u64, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("iter") else {
            continue;
        };
        let (num, kind) = match rest.split_once('-') {
            Some(p) => p,
            None => continue,
        };
        let Ok(it) = num.parse::<u64>() else { continue };
        let slot = by_iter.entry(it).or_default();
        match kind {
            "preview.png" => slot.0 = Some(e.path()),
            "crops.png" => slot.1 = Some(e.path()),
            _ => {}
        }
    }
    by_iter.into_iter().map(|(i, (p, c))| (i, p, c)).collect()
}

/// At most `max` of `n` indices, evenly spaced, first and last included.
pub fn spread(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max <= 1 {
        return vec![n - 1];
    }
    let mut v: Vec<usize> = (0..max).map(|k| k * (n - 1) / (max - 1)).collect();
    v.dedup();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// run.json flattened to (dotted key, value text) rows.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        Value::String(s) => out.push((prefix.into(), s.clone())),
        Value::Null => out.push((prefix.into(), "—".into())),
        other => out.push((prefix.into(), other.to_string())),
    }
}

fn fmt_duration(s: f64) -> String {
    if !s.is_finite() {
        return "—".into();
    }
    let r = s.round() as u64;
    if r < 60 {
        format!("{s:.1} s")
    } else {
        format!("{}:{:02}:{:02}", r / 3600, r / 60 % 60, r % 60)
    }
}

fn fmt_metric(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "—".into(),
    }
}

/// The metrics table of the result and the baselines; the best value per column in bold.
fn metrics_table(rows: &[(&str, Metrics)]) -> String {
    type Col = (&'static str, bool, usize, fn(&Metrics) -> Option<f64>);
    let cols: [Col; 6] = [
        ("SWD ×10³ ↓", false, 2, |m| Some(m.swd.mean)),
        ("SWD texture ↓", false, 2, |m| {
            texture_of_levels(&m.swd.levels)
        }),
        ("SSIM ↑", true, 3, |m| Some(m.ssim)),
        ("SSIM ¼ ↑", true, 3, |m| m.ssim_4x),
        ("edge r ↑", true, 3, |m| Some(m.edge_correlation)),
        ("Lab W1 ↓", false, 2, |m| Some(m.lab_w1_sum)),
    ];
    let mut s = String::from("<table class=\"metrics\"><thead><tr><th></th>");
    for c in &cols {
        let _ = write!(s, "<th>{}</th>", c.0);
    }
    s.push_str("</tr></thead><tbody>");
    let best: Vec<Option<f64>> = cols
        .iter()
        .map(|(_, higher, _, get)| {
            let vals = rows
                .iter()
                .filter_map(|r| get(&r.1))
                .filter(|v| v.is_finite());
            if *higher {
                vals.reduce(f64::max)
            } else {
                vals.reduce(f64::min)
            }
        })
        .collect();
    for (name, m) in rows {
        let _ = write!(s, "<tr><th>{}</th>", escape(name));
        for (c, b) in cols.iter().zip(&best) {
            let v = (c.3)(m);
            let text = fmt_metric(v, c.2);
            if v.is_some() && v == *b {
                let _ = write!(s, "<td><b>{text}</b></td>");
            } else {
                let _ = write!(s, "<td>{text}</td>");
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>\n");
    s
}

const STYLE: &str = "
:root{--fg:#1d232a;--muted:#5b6570;--line:#d9dee3;--bg:#fafbfc;--accent:#1f77b4}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 12px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.sub{color:var(--muted);margin:0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:14px}
.grid.wide{grid-template-columns:repeat(auto-fill,minmax(340px,1fr))}
.grid.snaps{grid-template-columns:repeat(auto-fill,minmax(170px,1fr))}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px}
figure img{display:block;width:100%;height:auto;border-radius:3px;image-rendering:auto}
figcaption{font-size:13px;color:var(--muted);margin-top:6px}
figcaption b{color:var(--fg)}
.natural{margin-top:14px}
.natural figure{display:inline-block;max-width:100%}
.natural img{width:auto;max-width:100%;min-width:256px;image-rendering:pixelated}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px}
.chart{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.chart h3{font-size:14px;font-weight:600;margin:0 0 4px}
svg.curve{width:100%;height:auto;display:block;font-size:11px;fill:var(--muted)}
svg.curve .gridline{stroke:#eceff2;stroke-width:1}
svg.curve .tick{stroke:#9aa3ab}
svg.curve .frame{fill:none;stroke:#9aa3ab}
svg.curve .label{font-size:12px;fill:var(--fg)}
svg.curve .legend text{fill:var(--fg)}
table{border-collapse:collapse;background:#fff;font-size:14px}
th,td{padding:5px 12px;border-bottom:1px solid var(--line);text-align:left}
td{font-variant-numeric:tabular-nums}
table.metrics td{text-align:right}
table.kv th{font-weight:500;color:var(--muted)}
.note{color:#8a5a00;background:#fff8e6;border:1px solid #f1dba5;border-radius:5px;padding:8px 12px}
footer{margin-top:40px;color:var(--muted);font-size:12px}
";

/// Where an input recorded in run.json is now: as recorded (absolute, or relative to the
/// current directory), else a relative path is tried against the run directory's ancestors
/// (`fit` records paths relative to where it ran, usually two levels above `runs/<name>`).
pub fn locate_input(run_dir: &Path, recorded: &Path) -> Option<PathBuf> {
    let p = recorded;
    if recorded.as_os_str().is_empty() {
        return None;
    }
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    if p.is_absolute() {
        return None;
    }
    let base = std::fs::canonicalize(run_dir).ok()?;
    base.ancestors().map(|a| a.join(p)).find(|c| c.is_file())
}

/// A loaded input, or why it is missing.
fn load_input(run_dir: &Path, recorded: &Path) -> std::result::Result<Array3<f32>, String> {
    if recorded.as_os_str().is_empty() {
        return Err("no path recorded in run.json".into());
    }
    match locate_input(run_dir, recorded) {
        Some(p) => load_rgb(&p).map_err(|e| e.to_string()),
        None => Err(format!("{}: not found", recorded.display())),
    }
}

/// Writes `run_dir/report.html` (atomically) and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    if !run_dir.is_dir() {
        return Err(Error::at(run_dir, "no such run directory"));
    }
    let run_json = run_dir.join("run.json");
    if !run_json.is_file() {
        return Err(Error::at(
            run_dir,
            "not a sincut run directory (no run.json)",
        ));
    }
    let text = std::fs::read_to_string(&run_json).map_err(|e| Error::at(&run_json, e))?;
    let run: Value = serde_json::from_str(&text)
        .map_err(|e| Error::at(&run_json, format_args!("not a sincut run description: {e}")))?;
    let (Some(source), Some(target)) = (
        run.get("source")
            .and_then(crate::fit::path_json::from_value),
        run.get("target")
            .and_then(crate::fit::path_json::from_value),
    ) else {
        return Err(Error::at(
            &run_json,
            "not a sincut run description (no source and target)",
        ));
    };
    let html = render_page(run_dir, &run, &source, &target);
    let out = run_dir.join("report.html");
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

fn render_page(run_dir: &Path, run: &Value, source: &Path, target: &Path) -> String {
    let preview_size = run
        .get("preview_size")
        .and_then(Value::as_u64)
        .map_or(512, |v| v.clamp(16, 4096) as usize);
    let device = run
        .get("device")
        .and_then(Value::as_str)
        .unwrap_or("cpu")
        .to_string();
    let preset = run
        .get("preset")
        .and_then(Value::as_str)
        .unwrap_or("custom");
    let planned = run.get("iters").and_then(Value::as_u64);
    let metrics_path = run_dir.join("metrics.jsonl");
    let log = std::fs::read_to_string(&metrics_path)
        .map(|t| parse_metrics(&t))
        .unwrap_or_default();
    let done = log.losses.last().map_or(0, |r| r.iter + 1);
    let (src_name, tgt_name) = (file_name(source), file_name(target));

    let mut b = String::with_capacity(1 << 20);
    let _ = write!(
        b,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>sincut: {} → {}</title><style>{STYLE}</style></head><body><main>\n",
        escape(&src_name),
        escape(&tgt_name)
    );
    let _ = writeln!(
        b,
        "<header><h1>{} → {}</h1><p class=\"sub\">SinCUT run <code>{}</code> · preset {} · device {} · {} of {} iterations</p></header>",
        escape(&src_name),
        escape(&tgt_name),
        escape(&run_dir.display().to_string()),
        escape(preset),
        escape(&device),
        done,
        planned.map_or("?".into(), |p| p.to_string())
    );

    // Inputs.
    b.push_str("<section id=\"inputs\"><h2>Inputs</h2><div class=\"grid wide\">\n");
    let src = load_input(run_dir, source);
    let tgt = load_input(run_dir, target);
    for (role, path, img, kind) in [
        ("Source", source, &src, "input-source"),
        ("Target", target, &tgt, "input-target"),
    ] {
        match img {
            Ok(img) => {
                let (_, h, w) = img.dim();
                b.push_str(&figure(
                    img,
                    kind,
                    &format!("{role}: {}", file_name(path)),
                    &format!("<b>{role}</b> {} · {w}×{h}", escape(&file_name(path))),
                ));
            }
            Err(e) => {
                let _ = writeln!(
                    b,
                    "<figure>{}<figcaption><b>{role}</b> {}</figcaption></figure>",
                    note(&format!("picture not available: {e}")),
                    escape(&path.display().to_string())
                );
            }
        }
    }
    b.push_str("</div></section>\n");

    // Result and baselines.
    let snapshots = list_snapshots(&run_dir.join("snapshots"));
    let result_path = run_dir.join("result.png");
    let (result, result_caption) = match load_rgb(&result_path) {
        Ok(img) => {
            let (_, h, w) = img.dim();
            // Only shown and measured at preview size: no need to keep the full picture.
            let img = fit_within(&img, THUMB_MAX.max(preview_size));
            (
                Some(img),
                format!("<b>SinCUT result</b> (result.png, {w}×{h})"),
            )
        }
        Err(_) => match snapshots
            .iter()
            .rev()
            .find_map(|(i, p, _)| Some((*i, load_rgb(p.as_ref()?).ok()?)))
        {
            Some((i, img)) => (
                Some(img),
                format!("<b>SinCUT, latest snapshot</b> (iteration {i}; no result.png yet)"),
            ),
            None => (None, String::new()),
        },
    };
    b.push_str("<section id=\"result\"><h2>Result next to the baselines</h2>\n");
    let previews = match (&src, &tgt) {
        (Ok(s), Ok(t)) => Some((preview_of(s, preview_size), preview_of(t, preview_size))),
        _ => None,
    };
    let mut pictures: Vec<(&str, &str, Array3<f32>, String)> = Vec::new();
    if let Some(r) = &result {
        pictures.push(("result", "SinCUT", r.clone(), result_caption));
    }
    if let Some((sp, tp)) = &previews {
        pictures.push((
            "baseline-source",
            "source",
            sp.clone(),
            "<b>Source</b> (unchanged)".into(),
        ));
        pictures.push((
            "baseline-reinhard",
            "Reinhard",
            reinhard_transfer(sp, tp),
            "<b>Reinhard</b> colour transfer (Lab mean and deviation)".into(),
        ));
        pictures.push((
            "baseline-histogram",
            "histogram",
            histogram_match(sp, tp),
            "<b>Histogram matching</b> (per RGB channel)".into(),
        ));
    }
    if result.is_none() {
        b.push_str(&note(
            "No result yet: neither result.png nor a snapshot preview in this run.",
        ));
    }
    if previews.is_none() {
        b.push_str(&note(
            "The baselines need the source and target pictures, which are not available.",
        ));
    }
    if !pictures.is_empty() {
        b.push_str("<div class=\"grid\">\n");
        for (kind, name, img, caption) in &pictures {
            b.push_str(&figure(img, kind, name, caption));
        }
        b.push_str("</div>\n");
    }
    if !log.evals.is_empty() {
        let small = |a: &Array3<f32>| a.dim().1.min(a.dim().2) < EVAL_MIN_SIDE;
        match &previews {
            Some((sp, tp)) if small(sp) || small(tp) => b.push_str(&note(&format!(
                "The previews are too small to measure (under {EVAL_MIN_SIDE} px a side)."
            ))),
            Some((sp, tp)) => {
                // All at preview size, as the evaluations during training.
                let rows: Vec<(&str, Metrics)> = std::thread::scope(|scope| {
                    let handles: Vec<_> = pictures
                        .iter()
                        .map(|(_, name, img, _)| {
                            let img = if img.dim() == sp.dim() {
                                img.clone()
                            } else {
                                resize_bilinear(img, sp.dim().2, sp.dim().1)
                            };
                            (*name, scope.spawn(move || evaluate(&img, sp, tp)))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .filter_map(|(n, h)| Some((n, h.join().ok()?)))
                        .collect()
                });
                let _ = writeln!(
                    b,
                    "<h3>Metrics at preview size ({}×{})</h3>",
                    sp.dim().2,
                    sp.dim().1
                );
                b.push_str(&metrics_table(&rows));
            }
            None => b.push_str(&note(
                "Metrics of the result and baselines need the source and target pictures.",
            )),
        }
    }
    b.push_str("</section>\n");

    // Curves.
    b.push_str("<section id=\"curves\"><h2>Curves</h2>\n");
    if log.losses.is_empty() && log.evals.is_empty() {
        b.push_str(&note(
            "metrics.jsonl is empty or absent: no curves to draw.",
        ));
    } else {
        if log.evals.is_empty() {
            b.push_str(&note(
                "No quality evaluations were logged in this run: loss curves only.",
            ));
        }
        if log.skipped > 0 {
            b.push_str(&note(&format!(
                "{} line(s) of metrics.jsonl could not be read and were left out.",
                log.skipped
            )));
        }
        b.push_str("<div class=\"charts\">\n");
        for c in charts(&log) {
            let _ = writeln!(
                b,
                "<div class=\"chart\"><h3>{}</h3>{}</div>",
                escape(&c.title),
                chart_svg(&c)
            );
        }
        b.push_str("</div>\n");
    }
    b.push_str("</section>\n");

    // Snapshots.
    b.push_str("<section id=\"snapshots\"><h2>Snapshots over time</h2>\n");
    let previews_list: Vec<(u64, &PathBuf)> = snapshots
        .iter()
        .filter_map(|(i, p, _)| Some((*i, p.as_ref()?)))
        .collect();
    if previews_list.is_empty() {
        b.push_str(&note("No snapshots in this run."));
    } else {
        let shown = spread(previews_list.len(), MAX_SNAPSHOTS);
        if shown.len() < previews_list.len() {
            b.push_str(&format!(
                "<p class=\"sub\">{} of {} snapshots, evenly spaced.</p>\n",
                shown.len(),
                previews_list.len()
            ));
        }
        b.push_str("<div class=\"grid snaps\">\n");
        for k in shown {
            let (it, path) = previews_list[k];
            let caption = format!("iteration {it}");
            match load_rgb(path) {
                Ok(img) => b.push_str(&figure(&img, "snapshot", &caption, &caption)),
                Err(e) => {
                    let _ = writeln!(
                        b,
                        "<figure>{}<figcaption>{caption}</figcaption></figure>",
                        note(&format!("unreadable snapshot: {e}"))
                    );
                }
            }
        }
        b.push_str("</div>\n");
    }
    if let Some((it, crops)) = snapshots
        .iter()
        .rev()
        .find_map(|(i, _, c)| Some((*i, c.as_ref()?)))
        && let Ok(img) = load_rgb(crops)
    {
        b.push_str("<div class=\"natural\">\n");
        b.push_str(&figure(
            &img,
            "crops",
            &format!("training crops at iteration {it}"),
            &format!(
                "<b>Training crops at iteration {it}</b>: rows are input, output, target, identity"
            ),
        ));
        b.push_str("</div>\n");
    }
    b.push_str("</section>\n");

    // Timings and device.
    let (wall, sessions) = wall_time(&log.elapsed);
    let trained = log.losses.len();
    let mut kv: Vec<(String, String)> = vec![
        ("device".into(), device.clone()),
        (
            "iterations done".into(),
            format!(
                "{done} of {}",
                planned.map_or("?".into(), |p| p.to_string())
            ),
        ),
        ("training wall time".into(), fmt_duration(wall)),
        (
            "mean speed".into(),
            if wall > 0.0 && trained > 0 {
                format!("{:.3} it/s", trained as f64 / wall)
            } else {
                "—".into()
            },
        ),
        ("sessions (start + resumes)".into(), sessions.to_string()),
    ];
    if let Some(last) = log.losses.last().and_then(|r| r.values.get("it_per_s")) {
        kv.push((
            "speed of the last session".into(),
            format!("{last:.3} it/s"),
        ));
    }
    if !log.evals.is_empty() {
        let eval_s: f64 = log.evals.iter().filter_map(|r| r.eval_s).sum();
        kv.push((
            "quality evaluations".into(),
            format!("{} ({} in all)", log.evals.len(), fmt_duration(eval_s)),
        ));
    }
    b.push_str("<section id=\"timings\"><h2>Timings and device</h2><table class=\"kv\">");
    for (k, v) in &kv {
        let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    b.push_str("</table></section>\n");

    // Configuration.
    let mut rows = Vec::new();
    flatten("", run, &mut rows);
    b.push_str("<section id=\"config\"><h2>Configuration (run.json)</h2><table class=\"kv\">");
    for (k, v) in &rows {
        let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    b.push_str("</table></section>\n");
    let _ = write!(
        b,
        "<footer>Written by sincut {}. Self-contained: pictures are embedded, curves are inline SVG.</footer>\n</main></body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn svg_path_breaks_on_gaps() {
        let pts = [
            (0.0, 0.0),
            (1.0, 2.0),
            (2.0, f64::NAN),
            (3.0, 1.0),
            (4.0, 0.5),
        ];
        let d = svg_path(&pts, |x, y| (10.0 * x, 100.0 - 10.0 * y));
        assert_eq!(d, "M0.0,100.0L10.0,80.0M30.0,90.0L40.0,95.0");
        assert_eq!(svg_path(&[(0.0, f64::NAN)], |x, y| (x, y)), "");
        assert_eq!(svg_path(&[], |x, y| (x, y)), "");
    }

    #[test]
    fn moving_average_is_centred_and_skips_gaps() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(moving_average(&v, 1), v.to_vec());
        assert_eq!(moving_average(&v, 3), vec![1.5, 2.0, 3.0, 4.0, 4.5]);
        let g = moving_average(&[1.0, f64::NAN, 3.0], 3);
        assert_eq!(g, vec![1.0, 2.0, 3.0]);
        assert!(moving_average(&[f64::NAN], 5)[0].is_nan());
        assert!(moving_average(&[], 5).is_empty());
        assert_eq!(smoothing_window(10), 1);
        assert_eq!(smoothing_window(1000) % 2, 1);
    }

    #[test]
    fn decimate_keeps_ends_and_extremes() {
        let pts: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (i as f64, if i == 5_000 { 100.0 } else { (i % 7) as f64 }))
            .collect();
        let d = decimate(&pts, 200);
        assert!(d.len() <= 204, "{}", d.len());
        assert_eq!(d[0], pts[0]);
        assert_eq!(*d.last().unwrap(), pts[9_999]);
        assert!(d.contains(&(5_000.0, 100.0)), "the spike survives");
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "x stays in order");
        assert_eq!(decimate(&pts[..50], 200).len(), 50);
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (t, step) = nice_ticks(0.13, 0.87, 5);
        assert_eq!(step, 0.2);
        assert!(t[0] <= 0.13 && *t.last().unwrap() >= 0.87);
        let (t, step) = nice_ticks(0.0, 100_000.0, 6);
        assert_eq!(step, 20_000.0);
        assert_eq!(tick_label(t[1], step), "20k");
        assert_eq!(tick_label(0.4000000001, 0.2), "0.4");
        assert_eq!(tick_label(1500.0, 500.0), "1500");
        assert_eq!(tick_label(0.0, 20_000.0), "0");
        assert_eq!(tick_label(3e6, 1e6), "3M");
        assert_eq!(tick_label(0.75, 0.05), "0.75");
        assert_eq!(tick_label(-1e-17, 0.1), "0.0");
        let (t, _) = nice_ticks(3.0, 3.0, 5);
        assert!(t.len() >= 2);
    }

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

    #[test]
    fn charts_follow_the_log() {
        let mut text = String::new();
        for i in 0..300 {
            let _ = writeln!(
                text,
                r#"{{"iter":{i},"d":{},"d_real":0.5,"g":2.0,"nce":1.0}}"#,
                1.0 + (i % 5) as f64
            );
        }
        let log = parse_metrics(&text);
        let cs = charts(&log);
        assert_eq!(
            cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["loss-d", "loss-g"]
        );
        assert_eq!(cs[0].series.len(), 2);
        let svg = chart_svg(&cs[0]);
        assert!(svg.starts_with("<svg class=\"curve\""));
        assert_eq!(svg.matches("class=\"series\"").count(), 2);
        assert_eq!(svg.matches("class=\"raw\"").count(), 2);
        assert!(!svg.contains("d=\"\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        text.push_str(r#"{"iter":100,"eval":{"swd":{"levels":[2.0,1.0],"mean":1.5},"ssim":0.5,"edge_correlation":0.4,"lab_w1_sum":3.0}}"#);
        assert_eq!(charts(&parse_metrics(&text)).len(), 5);
    }

    #[test]
    fn spread_keeps_first_and_last() {
        assert_eq!(spread(3, 50), [0, 1, 2]);
        let s = spread(100, 5);
        assert_eq!(s, [0, 24, 49, 74, 99]);
        assert_eq!(spread(10, 1), [9]);
    }
}
