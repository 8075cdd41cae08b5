//! The page: a header, then one section per part of the run (inputs, result next to the
//! baselines, curves, snapshots, timings, configuration), each written by its own function.

use super::charts::{chart_svg, charts};
use super::metrics::{MetricsLog, parse_metrics, texture_of_levels, wall_time};
use crate::error::{Error, Result};
use crate::eval::{EVAL_MIN_SIDE, Metrics, evaluate, histogram_match, reinhard_transfer};
use crate::image::{load_rgb, resize_bilinear};
use crate::run::{metrics_path, result_path};
use ndarray::Array3;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Longest side of an embedded picture.
pub const THUMB_MAX: usize = 768;
/// Most snapshots shown (evenly spaced, the last one always among them).
pub const MAX_SNAPSHOTS: usize = 50;
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

/// A snapshot file set: (iteration, preview, crops).
type Snapshot = (u64, Option<PathBuf>, Option<PathBuf>);

/// What the sections are drawn from: run.json's figures, the metrics log, the inputs and the
/// snapshots, each read once.
struct Page<'a> {
    run_dir: &'a Path,
    run: &'a Value,
    source: &'a Path,
    target: &'a Path,
    preview_size: usize,
    device: String,
    preset: &'a str,
    planned: Option<u64>,
    log: MetricsLog,
    done: u64,
    src_name: String,
    tgt_name: String,
    src: std::result::Result<Array3<f32>, String>,
    tgt: std::result::Result<Array3<f32>, String>,
    snapshots: Vec<Snapshot>,
}

/// The whole page of a run whose run.json is `run` (read as JSON, so that runs of any version
/// show) with its pictures at `source` and `target`.
pub fn render_page(run_dir: &Path, run: &Value, source: &Path, target: &Path) -> String {
    let preview_size = run
        .get("preview_size")
        .and_then(Value::as_u64)
        .map_or(512, |v| v.clamp(16, 4096) as usize);
    let device = run
        .get("device")
        .and_then(Value::as_str)
        .unwrap_or("cpu")
        .to_string();
    // The matrix products' precision (run.json of runs before it existed: f32).
    let device = match run.get("precision").and_then(Value::as_str) {
        Some(p) => format!("{device}, {p} matrix products"),
        None => device,
    };
    let preset = run
        .get("preset")
        .and_then(Value::as_str)
        .unwrap_or("custom");
    let planned = run.get("iters").and_then(Value::as_u64);
    let log = std::fs::read_to_string(metrics_path(run_dir))
        .map(|t| parse_metrics(&t))
        .unwrap_or_default();
    let done = log.losses.last().map_or(0, |r| r.iter + 1);
    let (src_name, tgt_name) = (file_name(source), file_name(target));
    let page = Page {
        run_dir,
        run,
        source,
        target,
        preview_size,
        device,
        preset,
        planned,
        log,
        done,
        src_name,
        tgt_name,
        src: load_input(run_dir, source),
        tgt: load_input(run_dir, target),
        snapshots: list_snapshots(&run_dir.join("snapshots")),
    };
    let mut b = String::with_capacity(1 << 20);
    for section in [
        page.header(),
        page.inputs(),
        page.result(),
        page.curves(),
        page.snapshots(),
        page.timings(),
        page.configuration(),
    ] {
        b.push_str(&section);
    }
    let _ = write!(
        b,
        "<footer>Written by sincut {}. Self-contained: pictures are embedded, curves are inline SVG.</footer>\n</main></body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    b
}

impl Page<'_> {
    /// The document head and the title: the pair, the run, how far it got.
    fn header(&self) -> String {
        let Page {
            run_dir,
            device,
            preset,
            planned,
            done,
            src_name,
            tgt_name,
            ..
        } = self;
        let mut b = String::new();
        let _ = write!(
            b,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>sincut: {} → {}</title><style>{STYLE}</style></head><body><main>\n",
            escape(src_name),
            escape(tgt_name)
        );
        let _ = writeln!(
            b,
            "<header><h1>{} → {}</h1><p class=\"sub\">SinCUT run <code>{}</code> · preset {} · device {} · {} of {} iterations</p></header>",
            escape(src_name),
            escape(tgt_name),
            escape(&run_dir.display().to_string()),
            escape(preset),
            escape(device),
            done,
            planned.map_or("?".into(), |p| p.to_string())
        );
        b
    }

    /// The source and target pictures.
    fn inputs(&self) -> String {
        let Page {
            source,
            target,
            src,
            tgt,
            ..
        } = self;
        let mut b = String::new();
        b.push_str("<section id=\"inputs\"><h2>Inputs</h2><div class=\"grid wide\">\n");
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
        b
    }

    /// The result (or the latest snapshot) next to the colour baselines, with their metrics
    /// when the run logged quality evaluations.
    fn result(&self) -> String {
        let Page {
            run_dir,
            run,
            log,
            src,
            tgt,
            snapshots,
            ..
        } = self;
        let preview_size = self.preview_size;
        // Which of G's weights the pictures come from (run.json of runs before the average
        // existed: the raw ones).
        let keeps_ema = run
            .get("ema_half_life")
            .and_then(Value::as_f64)
            .is_some_and(|h| h > 0.0);
        let no_ema = run.get("no_ema").and_then(Value::as_bool).unwrap_or(false);
        let weights = if keeps_ema && !no_ema {
            "EMA weights"
        } else {
            "raw weights"
        };
        let mut b = String::new();
        let result_path = result_path(run_dir);
        let (result, result_caption) = match load_rgb(&result_path) {
            Ok(img) => {
                let (_, h, w) = img.dim();
                // Only shown and measured at preview size: no need to keep the full picture.
                let img = fit_within(&img, THUMB_MAX.max(preview_size));
                (
                    Some(img),
                    format!("<b>SinCUT result</b> (result.png, {w}×{h}, {weights})"),
                )
            }
            Err(_) => match snapshots
                .iter()
                .rev()
                .find_map(|(i, p, _)| Some((*i, load_rgb(p.as_ref()?).ok()?)))
            {
                Some((i, img)) => (
                    Some(img),
                    format!(
                        "<b>SinCUT, latest snapshot</b> (iteration {i}, {weights}; no result.png yet)"
                    ),
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
        b
    }

    /// The loss and metric curves.
    fn curves(&self) -> String {
        let Page { log, .. } = self;
        let mut b = String::new();
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
            for c in charts(log) {
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
        b
    }

    /// The snapshot previews over time and the latest training crops.
    fn snapshots(&self) -> String {
        let Page { snapshots, .. } = self;
        let mut b = String::new();
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
        b
    }

    /// Timings and device.
    fn timings(&self) -> String {
        let Page {
            device,
            planned,
            log,
            done,
            ..
        } = self;
        let mut b = String::new();
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
        b
    }

    /// run.json, flattened.
    fn configuration(&self) -> String {
        let Page { run, .. } = self;
        let mut b = String::new();
        let mut rows = Vec::new();
        flatten("", run, &mut rows);
        b.push_str("<section id=\"config\"><h2>Configuration (run.json)</h2><table class=\"kv\">");
        for (k, v) in &rows {
            let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
        }
        b.push_str("</table></section>\n");
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn spread_keeps_first_and_last() {
        assert_eq!(spread(3, 50), [0, 1, 2]);
        let s = spread(100, 5);
        assert_eq!(s, [0, 24, 49, 74, 99]);
        assert_eq!(spread(10, 1), [9]);
    }
}
