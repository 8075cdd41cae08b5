//! The curves: SVG line charts of the loss terms and the quality metrics, with smoothing,
//! decimation and round ticks.

use super::metrics::{EvalRecord, MetricsLog};
use super::page::escape;
use std::fmt::Write as _;

/// Most points drawn per curve (longer series are reduced to per-bucket extremes).
pub const MAX_CURVE_POINTS: usize = 1200;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::metrics::parse_metrics;

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
}
