//! `report.html` end to end: a tiny real run through the binary, `sincut report`, static
//! checks of self-containment, then the page loaded in headless Chromium, which must decode
//! every picture and find a drawn line in every curve panel. A deliberately broken copy must
//! be caught, so the check is known to be able to fail.
//!
//! Without Chromium the browser part is skipped (printed), except under CI=true where it fails.

use serde_json::Value;
use sincut::image::{SaveOptions, save_rgb};
use sincut::report::write_report;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::picture;

fn tmpdir(name: &str) -> common::TmpDir {
    common::tmpdir("report", name)
}

fn sincut(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(args)
        .output()
        .unwrap()
}

/// A finished tiny run: 6 iterations, snapshots at 2, 4 and 6.
fn tiny_run(dir: &Path) -> PathBuf {
    let (a, b) = (dir.join("painting.png"), dir.join("photo.png"));
    save_rgb(&a, &picture(90, 70, 0.0), &SaveOptions::default()).unwrap();
    save_rgb(&b, &picture(80, 84, 1.3), &SaveOptions::default()).unwrap();
    let run = dir.join("run");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = sincut(&[
        "fit",
        &s(&a),
        &s(&b),
        "--out",
        &s(&run),
        "--crop",
        "32",
        "--batch",
        "2",
        "--ngf",
        "1",
        "--ndf",
        "1",
        "--d-window",
        "16",
        "--iters",
        "6",
        "--snapshot-every",
        "2",
        "--preview-size",
        "48",
        "--tiles",
        "48",
        "--device",
        "cpu",
        "-q",
    ]);
    assert!(
        o.status.success(),
        "fit failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    run
}

/// Appends quality-evaluation lines (the format `fit` logs them in) unless the run has some.
fn ensure_eval_lines(run: &Path) -> usize {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let existing = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("eval").is_some())
        .count();
    if existing > 0 {
        return existing;
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    for (k, it) in [2u64, 4, 6].iter().enumerate() {
        let k = k as f64;
        writeln!(
            f,
            r#"{{"iter":{it},"eval":{{"swd":{{"levels":[{},{},{}],"mean":{},"texture":{}}},"ssim":{},"ssim_4x":null,"edge_correlation":{},"lab_w1":[1.0,2.0,{}],"lab_w1_sum":{}}},"eval_s":0.25}}"#,
            40.0 - k,
            30.0 - k,
            20.0 - k,
            30.0 - k,
            35.0 - k,
            0.5 + 0.1 * k,
            0.4 + 0.05 * k,
            3.0 - k,
            6.0 - k
        )
        .unwrap();
    }
    3
}

/// The `src` values of every `<img>` (and anything else with a src attribute).
fn srcs(html: &str) -> Vec<&str> {
    html.match_indices("src=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

fn chromium() -> Option<PathBuf> {
    // SINCUT_CHROMIUM names another browser binary (a missing one counts as not installed).
    if let Some(p) = std::env::var_os("SINCUT_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Checks the loaded page: every picture decoded, every curve panel with drawn lines. The
/// verdict goes into an element that `--dump-dom` prints.
const CHECK_SCRIPT: &str = r#"<pre id="sincut-verdict">pending</pre><script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const kinds = {};
  const broken = [];
  for (const i of imgs) {
    const k = i.dataset.kind || '?';
    kinds[k] = (kinds[k] || 0) + 1;
    if (!(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)) broken.push(i.alt);
  }
  const curves = [...document.querySelectorAll('svg.curve')];
  const names = [];
  const empty = [];
  for (const s of curves) {
    names.push(s.dataset.name);
    const paths = [...s.querySelectorAll('path.series')];
    const drawn = paths.filter(p => (p.getAttribute('d') || '').length > 2 && p.getTotalLength() > 0);
    const blank = paths.filter(p => (p.getAttribute('d') || '').trim() === '');
    if (drawn.length === 0 || blank.length > 0) empty.push(s.dataset.name);
  }
  document.getElementById('sincut-verdict').textContent =
    'VERDICT' + JSON.stringify({images: imgs.length, kinds, broken, curves: curves.length, names, empty}) + 'END';
});
</script>"#;

/// Loads `html` (a copy with the check script) in headless Chromium and returns the verdict.
fn browser_verdict(exe: &Path, html: &str, work: &Path, name: &str) -> Value {
    // The page forbids scripts; the copy allows inline ones, and only those.
    let csp = "default-src 'none';";
    assert!(html.contains(csp), "the page should carry its CSP");
    let page = html
        .replacen(csp, "default-src 'none'; script-src 'unsafe-inline';", 1)
        .replacen("</body>", &format!("{CHECK_SCRIPT}</body>"), 1);
    let file = work.join(format!("{name}.html"));
    std::fs::write(&file, page).unwrap();
    let profile = work.join(format!("{name}-profile"));
    let mut child = Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--virtual-time-budget=5000")
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (Some(a), Some(b)) = (stdout.find("VERDICT"), stdout.find("END</pre>")) else {
        panic!(
            "no verdict from chromium ({status}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let json = stdout[a + "VERDICT".len()..b]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("bad verdict {json}: {e}"))
}

fn kind(v: &Value, k: &str) -> u64 {
    v["kinds"][k].as_u64().unwrap_or(0)
}

#[test]
fn report_is_self_contained_and_every_picture_and_curve_shows() {
    let dir = tmpdir("full");
    let run = tiny_run(&dir);
    // `fit` wrote one at its end.
    assert!(run.join("report.html").is_file(), "fit writes report.html");
    let evals = ensure_eval_lines(&run);
    assert!(evals > 0);

    let o = sincut(&["report", run.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let printed = String::from_utf8(o.stdout).unwrap();
    assert_eq!(printed.trim(), run.join("report.html").to_str().unwrap());
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();

    // Self-contained: nothing to fetch, no scripts.
    assert!(!html.contains("http://"));
    assert!(!html.contains("https://"));
    assert!(!html.contains("<script"), "the page needs no JavaScript");
    assert!(!html.contains("<link"), "no external stylesheets");
    assert!(!html.contains("href="), "no links to follow");
    assert!(
        html.match_indices("url(")
            .all(|(i, _)| html[i..].starts_with("url(#")),
        "url() only for in-page references"
    );
    let snapshots = std::fs::read_dir(run.join("snapshots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-preview.png")
        })
        .count();
    assert_eq!(snapshots, 3);
    let all_src = srcs(&html);
    for s in &all_src {
        assert!(s.starts_with("data:image/jpeg;base64,"), "src {s:.60}");
    }
    // 2 inputs + 3 snapshots + 1 crop grid + result + 3 baselines.
    let expected_images = 2 + snapshots + 1 + 1 + 3;
    assert_eq!(all_src.len(), expected_images);
    for needle in [
        "Inputs",
        "Result next to the baselines",
        "Snapshots over time",
        "Timings and device",
        "Configuration (run.json)",
        "painting.png",
        "photo.png",
        "iteration 6",
        "<table class=\"metrics\"",
        "model.crop",
    ] {
        assert!(html.contains(needle), "missing {needle:?}");
    }
    assert_eq!(html.matches("<svg class=\"curve\"").count(), 5);
    assert!(
        html.len() < 3 << 20,
        "report of a tiny run is {} bytes",
        html.len()
    );

    // In a browser.
    let Some(exe) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "chromium is not installed (CI=true): install Debian's `chromium` package to check report.html in a browser"
            );
        }
        println!("skipped: chromium not installed");
        return;
    };
    let v = browser_verdict(&exe, &html, &dir, "ok");
    assert_eq!(v["images"].as_u64(), Some(expected_images as u64), "{v}");
    assert_eq!(v["broken"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(kind(&v, "snapshot"), snapshots as u64, "{v}");
    assert_eq!(kind(&v, "input-source"), 1, "{v}");
    assert_eq!(kind(&v, "input-target"), 1, "{v}");
    assert_eq!(kind(&v, "result"), 1, "{v}");
    assert_eq!(kind(&v, "crops"), 1, "{v}");
    for b in ["source", "reinhard", "histogram"] {
        assert_eq!(kind(&v, &format!("baseline-{b}")), 1, "{v}");
    }
    assert_eq!(v["curves"].as_u64(), Some(5), "{v}");
    let names: Vec<&str> = v["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "loss-d",
            "loss-g",
            "metric-swd",
            "metric-content",
            "metric-colour"
        ]
    );
    assert_eq!(v["empty"].as_array().unwrap().len(), 0, "{v}");

    // The check can fail: a picture with damaged data, and a curve with its line removed.
    let i = html.find("data:image/jpeg;base64,").unwrap() + "data:image/jpeg;base64,".len();
    let mut bad = html.clone();
    bad.replace_range(i..i + 64, &"A".repeat(16));
    let v = browser_verdict(&exe, &bad, &dir, "bad-image");
    assert_eq!(v["broken"].as_array().unwrap().len(), 1, "{v}");
    let j = html.find("class=\"series\"").unwrap();
    let d = j + html[j..].find(" d=\"").unwrap() + " d=\"".len();
    let end = d + html[d..].find('"').unwrap();
    let mut bad = html.clone();
    bad.replace_range(d..end, "");
    let v = browser_verdict(&exe, &bad, &dir, "bad-curve");
    assert_eq!(v["broken"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["empty"].as_array().unwrap().len(), 1, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_survives_missing_pictures_and_metrics() {
    let dir = tmpdir("sparse");
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("snapshots")).unwrap();
    std::fs::write(
        run.join("run.json"),
        r#"{"source":"/nonexistent/a.jpg","target":"/nonexistent/b.jpg","model":{"crop":32},"iters":10,"preview_size":32,"device":"cuda (test)","future_field":[1,2]}"#,
    )
    .unwrap();
    save_rgb(
        &run.join("snapshots/iter0000005-preview.png"),
        &picture(32, 24, 0.5),
        &SaveOptions::default(),
    )
    .unwrap();
    std::fs::write(run.join("snapshots/iter0000010-preview.png"), b"not a png").unwrap();
    let path = write_report(&run).unwrap();
    let html = std::fs::read_to_string(path).unwrap();
    assert!(html.contains("picture not available"));
    assert!(html.contains("metrics.jsonl is empty or absent"));
    assert!(html.contains("unreadable snapshot"));
    assert!(
        html.contains("SinCUT, latest snapshot"),
        "falls back to the snapshot"
    );
    assert!(html.contains("cuda (test)"));
    assert!(html.contains("future_field"));
    assert_eq!(
        srcs(&html).len(),
        2,
        "the snapshot twice: as itself and as the result"
    );
    assert_eq!(html.matches("<svg").count(), 0);

    // Only eval lines and junk: no loss curves but metric ones, and a note.
    std::fs::write(
        run.join("metrics.jsonl"),
        "garbage\n{\"iter\":5,\"eval\":{\"swd\":{\"levels\":[2.0,1.0],\"mean\":1.5},\"ssim\":0.5,\"edge_correlation\":0.4,\"lab_w1_sum\":3.0}}\n",
    )
    .unwrap();
    let html = std::fs::read_to_string(write_report(&run).unwrap()).unwrap();
    assert_eq!(html.matches("<svg class=\"curve\"").count(), 3);
    assert!(html.contains("could not be read"));
}

#[test]
fn report_errors_are_one_line() {
    let dir = tmpdir("errors");
    let o = sincut(&["report", dir.join("missing").to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no such run directory"), "{err}");

    let o = sincut(&["report", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a sincut run directory"), "{err}");

    std::fs::write(dir.join("run.json"), "{\"something\": \"else\"}").unwrap();
    let o = sincut(&["report", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("not a sincut run description"), "{err}");
    assert!(!dir.join("report.html").exists());
}
