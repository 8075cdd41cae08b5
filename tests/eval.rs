//! Translation-quality metrics and baselines (src/eval/) and the `sincut eval` command
//! (src/cli/eval.rs), on small generated pictures with few SWD patches so the tests stay fast.

use approx::assert_abs_diff_eq;
use ndarray::{Array2, Array3};
use sincut::eval::{
    SwdOptions, edge_correlation, evaluate_with, histogram_match, lab_to_srgb, luminance,
    picture_to_lab, quantile_sorted, reinhard_transfer, sliced_wasserstein, srgb_to_lab, ssim,
};
use sincut::image::{SaveOptions, load_rgb, save_rgb};
use std::path::PathBuf;
use std::process::Command;

const FAST: SwdOptions = SwdOptions {
    patches: 1024,
    directions: 64,
    seed: 7,
};

/// A colourful picture with smooth shading and fine texture, values inside [-0.85, 0.85].
fn picture(h: usize, w: usize, phase: f32) -> Array3<f32> {
    Array3::from_shape_fn((3, h, w), |(c, y, x)| {
        let (c, y, x) = (c as f32, y as f32, x as f32);
        0.6 * (x * 0.21 + c + phase).sin() * (y * 0.13 - c * 0.5).cos()
            + 0.25 * ((x + 2.0 * y) * 1.3 + 2.0 * c + phase).sin()
    })
}

/// A fixed noise pattern in [-1, 1] (a hash per sample, no RNG state to share).
fn noise(h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_fn((3, h, w), |(c, y, x)| {
        let mut z = (c * 1_000_003 + y * 1009 + x) as u64;
        z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^= z >> 29;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 32;
        (z % 20_001) as f32 / 10_000.0 - 1.0
    })
}

/// 3×3 box blur (edges replicated).
fn box_blur(img: &Array3<f32>) -> Array3<f32> {
    let (c, h, w) = img.dim();
    Array3::from_shape_fn((c, h, w), |(ch, y, x)| {
        let mut s = 0.0;
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let yy = (y as i64 + dy).clamp(0, h as i64 - 1) as usize;
                let xx = (x as i64 + dx).clamp(0, w as i64 - 1) as usize;
                s += img[[ch, yy, xx]];
            }
        }
        s / 9.0
    })
}

#[test]
fn swd_is_zero_for_the_same_picture_and_grows_with_noise() {
    let x = picture(64, 80, 0.0);
    let same = sliced_wasserstein(&x, &x, &FAST);
    assert_eq!(same.levels.len(), 3, "64 px -> 32 -> 16");
    assert!(same.levels.iter().all(|&v| v == 0.0), "{same:?}");
    assert_eq!(same.mean, 0.0);

    let n = noise(64, 80);
    let mut last = 0.0;
    for sigma in [0.02f32, 0.05, 0.1, 0.2, 0.4] {
        let noisy = &x + &(&n * sigma);
        let d = sliced_wasserstein(&x, &noisy, &FAST);
        assert!(d.mean > last, "sigma {sigma}: {} after {last}", d.mean);
        last = d.mean;
    }
    // Reproducible with one seed.
    let noisy = &x + &(&n * 0.1);
    assert_eq!(
        sliced_wasserstein(&x, &noisy, &FAST),
        sliced_wasserstein(&x, &noisy, &FAST)
    );
}

#[test]
fn swd_of_different_sizes_uses_the_smaller_pyramid() {
    let a = picture(40, 50, 0.0);
    let b = picture(70, 90, 0.3);
    let d = sliced_wasserstein(&a, &b, &FAST);
    assert_eq!(d.levels.len(), 2, "40 px -> 20; 10 would be under 16");
    assert!(d.mean > 0.0);
}

/// Gaussian blur of standard deviation `sigma` (taps to 3σ, edges replicated). Unlike a box
/// filter, its frequency response falls monotonically with σ at every frequency, so more blur
/// always removes more of the picture.
fn gaussian_blur(img: &Array3<f32>, sigma: f32) -> Array3<f32> {
    let r = (3.0 * sigma).ceil() as i64;
    let mut k: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let (c, h, w) = img.dim();
    let at = |i: i64, n: usize| i.clamp(0, n as i64 - 1) as usize;
    let horiz = Array3::from_shape_fn((c, h, w), |(ch, y, x)| {
        (-r..=r)
            .map(|d| k[(d + r) as usize] * img[[ch, y, at(x as i64 + d, w)]])
            .sum::<f32>()
    });
    Array3::from_shape_fn((c, h, w), |(ch, y, x)| {
        (-r..=r)
            .map(|d| k[(d + r) as usize] * horiz[[ch, at(y as i64 + d, h), x]])
            .sum::<f32>()
    })
}

#[test]
fn ssim_is_one_for_the_same_picture_and_drops_with_blur() {
    let x = picture(48, 56, 0.0);
    let lx = luminance(&x);
    assert_abs_diff_eq!(ssim(&lx, &lx).unwrap(), 1.0, epsilon = 1e-12);
    let mut last = 1.0;
    for sigma in [0.5f32, 1.0, 1.5, 2.0, 3.0] {
        let s = ssim(&lx, &luminance(&gaussian_blur(&x, sigma))).unwrap();
        assert!(s < last, "blur {sigma}: {s} after {last}");
        last = s;
    }
    assert!(ssim(&Array2::zeros((10, 30)), &Array2::zeros((10, 30))).is_none());
}

#[test]
fn edge_correlation_of_a_picture_with_itself_is_one() {
    let x = picture(40, 40, 0.5);
    assert_abs_diff_eq!(edge_correlation(&x, &x), 1.0, epsilon = 1e-12);
    let other = picture(40, 40, 2.0);
    assert!(edge_correlation(&x, &other) < 0.99);
}

#[test]
fn lab_of_known_colours() {
    let close = |a: [f64; 3], b: [f64; 3], tol: f64| {
        assert!(
            a.iter().zip(&b).all(|(x, y)| (x - y).abs() < tol),
            "{a:?} vs {b:?}"
        )
    };
    close(srgb_to_lab([1.0, 1.0, 1.0]), [100.0, 0.0, 0.0], 1e-6);
    close(srgb_to_lab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0], 1e-9);
    close(srgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], 0.01);
    close(srgb_to_lab([0.0, 1.0, 0.0]), [87.73, -86.18, 83.18], 0.01);
    close(srgb_to_lab([0.0, 0.0, 1.0]), [32.30, 79.19, -107.86], 0.01);
    // Round trip, through both branches of the transfer curves.
    for rgb in [[0.2, 0.5, 0.9], [0.01, 0.002, 0.03], [0.7, 0.7, 0.1]] {
        close(lab_to_srgb(srgb_to_lab(rgb)), rgb, 1e-9);
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
    )
}

#[test]
fn reinhard_gives_the_targets_lab_mean_and_std() {
    // Mid-tone pictures so that the transfer stays inside the sRGB cube (no clamping).
    let source = picture(30, 40, 0.0).mapv(|v| v * 0.4 - 0.1);
    let target = picture(36, 28, 1.0).mapv(|v| v * 0.3 + 0.15);
    let out = reinhard_transfer(&source, &target);
    assert_eq!(out.dim(), source.dim());
    assert!(
        out.iter().all(|v| v.abs() < 0.999),
        "transfer left the gamut"
    );
    let (lo, lt) = (picture_to_lab(&out), picture_to_lab(&target));
    for c in 0..3 {
        let (mo, so) = mean_std(&lo[c]);
        let (mt, st) = mean_std(&lt[c]);
        assert_abs_diff_eq!(mo, mt, epsilon = 1e-3); // channel means
        assert_abs_diff_eq!(so, st, epsilon = 1e-3); // channel standard deviations
    }
}

fn sorted_channel(img: &Array3<f32>, c: usize) -> Vec<f64> {
    let mut v: Vec<f64> = img
        .index_axis(ndarray::Axis(0), c)
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn histogram_matching_gives_the_targets_quantiles() {
    let source = picture(24, 30, 0.0);
    // Same pixel count: the output's values are exactly the target's, per channel.
    let target = picture(20, 36, 1.7).mapv(|v| v * 0.7 + 0.2);
    let out = histogram_match(&source, &target);
    for c in 0..3 {
        assert_eq!(sorted_channel(&out, c), sorted_channel(&target, c));
    }
    // The output keeps the source's ordering of pixels.
    let (s0, o0) = (source[[0, 3, 4]], out[[0, 3, 4]]);
    let (s1, o1) = (source[[0, 10, 20]], out[[0, 10, 20]]);
    assert_eq!(s0 < s1, o0 < o1);

    // Another size: every quantile lies within one step between neighbouring target values.
    let target = picture(50, 41, 0.9).mapv(|v| v * 0.5 - 0.2);
    let out = histogram_match(&source, &target);
    for c in 0..3 {
        let (so, st) = (sorted_channel(&out, c), sorted_channel(&target, c));
        let step = st.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        for k in 1..20 {
            let p = k as f64 / 20.0;
            let (a, b) = (quantile_sorted(&so, p), quantile_sorted(&st, p));
            // f32 storage of the output adds at most a few ulps.
            assert!((a - b).abs() <= step + 1e-6, "c{c} p{p}: {a} vs {b}");
        }
    }
}

#[test]
fn evaluate_the_source_against_itself() {
    let source = picture(64, 64, 0.0);
    let target = picture(48, 72, 1.0);
    let m = evaluate_with(&source, &source, &target, &FAST);
    assert_abs_diff_eq!(m.ssim, 1.0, epsilon = 1e-12);
    assert_abs_diff_eq!(m.ssim_4x.unwrap(), 1.0, epsilon = 1e-12);
    assert_abs_diff_eq!(m.edge_correlation, 1.0, epsilon = 1e-12);
    assert!(m.swd.mean > 0.0 && m.lab_w1_sum > 0.0);
    assert_abs_diff_eq!(m.lab_w1.iter().sum::<f64>(), m.lab_w1_sum, epsilon = 1e-12);
    // The texture figure leaves out the last level (the Gaussian residual).
    let n = m.swd.levels.len();
    assert!(n >= 2, "{n} levels");
    let bands = m.swd.levels[..n - 1].iter().sum::<f64>() / (n - 1) as f64;
    assert!((m.swd.texture - bands).abs() < 1e-9 * bands, "{:?}", m.swd);
    // A result of another size is compared with the source at the source's size.
    let bigger = sincut::image::resize_bilinear(&source, 96, 96);
    let m2 = evaluate_with(&bigger, &source, &target, &FAST);
    assert!(m2.ssim > 0.8 && m2.ssim < 1.0, "{}", m2.ssim);
    // Matching the target's colours brings the colour distance down.
    let hm = histogram_match(&source, &target);
    let m3 = evaluate_with(&hm, &source, &target, &FAST);
    assert!(m3.lab_w1_sum < m.lab_w1_sum);
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sincut-eval-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cli_prints_a_table_and_writes_json() {
    let dir = TempDir::new("cli");
    let (src, tgt, res) = (
        dir.0.join("source.png"),
        dir.0.join("target.png"),
        dir.0.join("result.png"),
    );
    let opts = SaveOptions::default();
    save_rgb(&src, &picture(48, 64, 0.0), &opts).unwrap();
    save_rgb(&tgt, &picture(40, 56, 1.3), &opts).unwrap();
    save_rgb(&res, &box_blur(&picture(48, 64, 0.2)), &opts).unwrap();
    let json = dir.0.join("m.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(["eval", "--output"])
        .arg(&res)
        .arg("--source")
        .arg(&src)
        .arg("--target")
        .arg(&tgt)
        .arg("--json")
        .arg(&json)
        .args(["--baselines", "--patches", "512", "--directions", "32"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (line, name) in lines[1..]
        .iter()
        .zip(["result", "source", "reinhard", "histogram"])
    {
        assert!(line.starts_with(name), "{line}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["swd_patches_per_level"], 512);
    assert_eq!(v["swd_directions"], 32);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1]["name"], "source");
    // The source against itself keeps all of its content.
    assert_eq!(rows[1]["metrics"]["ssim"].as_f64().unwrap(), 1.0);
    assert_eq!(
        rows[0]["metrics"]["swd"]["levels"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(rows[0]["metrics"]["lab_w1_sum"].as_f64().unwrap() > 0.0);

    // --save-baselines writes the two colour baselines, which score as in the table.
    let saved = dir.0.join("baselines");
    let out = Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(["eval", "--output"])
        .arg(&res)
        .arg("--source")
        .arg(&src)
        .arg("--target")
        .arg(&tgt)
        .arg("--save-baselines")
        .arg(&saved)
        .args(["--patches", "512", "--directions", "32"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reinhard = load_rgb(&saved.join("reinhard.png")).unwrap();
    // From the pictures as stored (8-bit), as the command reads them.
    let expected = reinhard_transfer(&load_rgb(&src).unwrap(), &load_rgb(&tgt).unwrap());
    assert_eq!(reinhard.dim(), expected.dim());
    let worst = reinhard
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b.clamp(-1.0, 1.0)).abs())
        .fold(0.0f32, f32::max);
    // 8-bit PNG: within half a grey level (2/255 in [-1, 1]) of the computed picture.
    assert!(worst <= 1.0 / 255.0 + 1e-6, "worst {worst}");
    assert!(saved.join("histogram.png").is_file());
    assert!(!saved.join("source.png").exists());
}

#[test]
fn cli_refuses_a_missing_file_in_one_line() {
    let dir = TempDir::new("missing");
    let src = dir.0.join("source.png");
    save_rgb(&src, &picture(32, 32, 0.0), &SaveOptions::default()).unwrap();
    let missing = dir.0.join("nope.png");
    let out = Command::new(env!("CARGO_BIN_EXE_sincut"))
        .args(["eval", "--output"])
        .arg(&missing)
        .arg("--source")
        .arg(&src)
        .arg("--target")
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nope.png"), "{err}");
}

/// Issue 13, item 4: an SWD too large for any machine is refused in one line with the figures,
/// before the pictures are read (it used to abort in the allocator with a backtrace).
#[test]
fn cli_refuses_an_swd_larger_than_memory() {
    let dir = TempDir::new("huge-swd");
    let src = dir.0.join("source.png");
    save_rgb(&src, &picture(32, 32, 0.0), &SaveOptions::default()).unwrap();
    for flags in [
        ["--patches", "100000000000"],
        ["--directions", "100000000000"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sincut"))
            .args(["eval", "--output"])
            .arg(&src)
            .arg("--source")
            .arg(&src)
            .arg("--target")
            .arg(&src)
            .args(flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("sincut: error: the SWD with --patches")
                && err.contains("GiB; this machine has"),
            "{err}"
        );
    }
}
