//! libnvrtc found wherever CUDA 12 or 13 puts it, and cubin names that do not depend on the
//! machine. Each case runs `sincut doctor` in a clean environment with one NVRTC wheel from
//! PyPI (scripts/nvrtc-wheels.sh: CUDA 12.9 and 13.0, each in its own folder) laid out as a
//! toolkit, a Python on PATH, the loader path or an explicit `SINCUT_NVRTC`. This is also CI's
//! check that both CUDA versions compile every kernel for sm_90 without spills: 12.9 through
//! its explicit route here, 13.0 in the export test (twice); the other routes only find NVRTC
//! (`doctor --no-kernels`: a full compile takes about 20 s on CI's machine).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheels' folder, or None (skip; under CI=true a failure: .ci/run installs them).
fn wheels() -> Option<PathBuf> {
    let dir = std::env::var_os("SINCUT_NVRTC_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nvrtc-wheels"));
    let ok = dir
        .join("cu12/nvidia/cuda_nvrtc/lib/libnvrtc.so.12")
        .is_file()
        && dir.join("cu13/nvidia/cu13/lib/libnvrtc.so.13").is_file();
    if ok {
        return Some(dir);
    }
    let msg = format!(
        "NVRTC wheels not in {} (run scripts/nvrtc-wheels.sh)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sincut-nvrtc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `sincut doctor --arch sm_90 [args]` with only `env` set (plus an empty HOME and cache, so
/// no Python or cache of this machine's user takes part); (exit ok, stdout).
fn doctor(home: &Path, env: &[(&str, &Path)], args: &[&str]) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sincut"));
    c.env_clear()
        .env("HOME", home)
        .env("SINCUT_CACHE_DIR", home.join("cache"))
        .args(["doctor", "--arch", "sm_90"])
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("sincut runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn symlink_all(from_dir: &Path, to_dir: &Path) {
    std::fs::create_dir_all(to_dir).unwrap();
    for e in std::fs::read_dir(from_dir).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), to_dir.join(e.file_name())).unwrap();
    }
}

#[test]
fn each_cuda_version_is_found_by_every_route() {
    let Some(wheels) = wheels() else { return };
    // (wheel folder, its lib folder under nvidia/, version, file)
    let cases = [
        ("cu12", "cuda_nvrtc", "12.9", "libnvrtc.so.12"),
        ("cu13", "cu13", "13.0", "libnvrtc.so.13"),
    ];
    for (wheel, pkg, version, file) in cases {
        let nvidia = wheels.join(wheel).join("nvidia");
        let lib_dir = nvidia.join(pkg).join("lib");
        let root = tmpdir(wheel);
        // A venv whose python is on PATH (as /opt/torch/.venv on the GPU machine).
        let venv = root.join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python3"), b"").unwrap();
        let site = venv.join("lib/python3.12/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        std::os::unix::fs::symlink(&nvidia, site.join("nvidia")).unwrap();
        // A toolkit whose lib64 holds the same files.
        let toolkit = root.join("cuda");
        symlink_all(&lib_dir, &toolkit.join("lib64"));
        let explicit = lib_dir.join(file);
        let venv_bin = venv.join("bin");
        let routes: [(&str, Vec<(&str, &Path)>); 4] = [
            ("SINCUT_NVRTC", vec![("SINCUT_NVRTC", &explicit)]),
            ("python on PATH", vec![("PATH", &venv_bin)]),
            ("CUDA_PATH", vec![("CUDA_PATH", &toolkit)]),
            ("LD_LIBRARY_PATH", vec![("LD_LIBRARY_PATH", &lib_dir)]),
        ];
        for (route, env) in routes {
            // One full compile per version: 12.9's here, 13.0's in the export test.
            let compile = wheel == "cu12" && route == "SINCUT_NVRTC";
            let args: &[&str] = if compile { &[] } else { &["--no-kernels"] };
            let (ok, out) = doctor(&root, &env, args);
            let line = out
                .lines()
                .find(|l| l.starts_with("NVRTC:"))
                .unwrap_or("")
                .to_string();
            println!("{wheel} via {route}: {line}");
            assert!(
                line.starts_with(&format!("NVRTC: {version} from ")) && line.ends_with(file),
                "{wheel} via {route}: {out}"
            );
            assert!(ok, "{wheel} via {route}: doctor failed:\n{out}");
            if compile {
                let files = sincut::cuda::kernels::FILES.len();
                assert!(
                    out.contains(&format!(" kernels in {files} files: ok")),
                    "{out}"
                );
            } else {
                assert!(out.contains("not compiled (--no-kernels)"), "{out}");
            }
            if route == "SINCUT_NVRTC" {
                // The headers beside the wheel's libnvrtc are found too.
                assert!(
                    out.lines()
                        .any(|l| l.starts_with("CUDA headers: ") && l.contains(wheel)),
                    "{wheel} via {route}: {out}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn nothing_found_is_one_line_and_a_failure() {
    let root = tmpdir("none");
    let missing = root.join("nowhere/libnvrtc.so.13");
    let (ok, out) = doctor(&root, &[("SINCUT_NVRTC", &missing)], &[]);
    assert!(!ok, "{out}");
    let line = out.lines().find(|l| l.starts_with("NVRTC:")).unwrap();
    assert!(
        line.contains("SINCUT_NVRTC=") && line.contains("nowhere"),
        "{line}"
    );
    assert!(out.contains("prebuilt cubins: none"), "{out}");
    let _ = std::fs::remove_dir_all(&root);
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn exported_cubins_are_named_alike_whatever_the_header_folders_and_run_without_nvrtc() {
    let Some(wheels) = wheels() else { return };
    let nvrtc = wheels.join("cu13/nvidia/cu13/lib/libnvrtc.so.13");
    let root = tmpdir("export");
    let mut exports = Vec::new();
    for name in ["a", "b"] {
        let inc = root.join(format!("include-{name}"));
        std::fs::create_dir_all(&inc).unwrap();
        std::fs::write(inc.join("cuda_fp16.h"), b"").unwrap();
        let out_dir = root.join(format!("export-{name}"));
        let (ok, out) = doctor(
            &root,
            &[("SINCUT_NVRTC", &nvrtc), ("SINCUT_CUDA_INCLUDE", &inc)],
            &["--export", out_dir.to_str().unwrap()],
        );
        // Every kernel compiled by NVRTC 13.0 without spills.
        assert!(ok, "{out}");
        let files = sincut::cuda::kernels::FILES.len();
        assert!(
            out.contains(&format!(" kernels in {files} files: ok")),
            "{out}"
        );
        // The folder was really searched: the doctor lists it.
        assert!(
            out.contains(&format!("CUDA headers: {}", inc.display())),
            "{out}"
        );
        exports.push(listing(&out_dir));
    }
    assert_eq!(exports[0].len(), sincut::cuda::kernels::FILES.len());
    let names = |l: &[(String, Vec<u8>)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&exports[0]), names(&exports[1]));
    assert_eq!(exports[0], exports[1], "same names, same machine code");

    // Without NVRTC the doctor checks the exported folder instead (no GPU here: not loaded).
    let none = root.join("no-nvrtc.so");
    let export_a = root.join("export-a");
    let (ok, out) = doctor(
        &root,
        &[
            ("SINCUT_NVRTC", &none),
            ("SINCUT_PREBUILT_CUBINS", &export_a),
        ],
        &[],
    );
    assert!(ok, "{out}");
    let files = sincut::cuda::kernels::FILES.len();
    assert!(
        out.contains(&format!("({files} of {files} kernel files for sm_90")),
        "{out}"
    );
    // One file gone: named, and a failure.
    let gone = &exports[0][3].0;
    std::fs::remove_file(export_a.join(gone)).unwrap();
    let (ok, out) = doctor(
        &root,
        &[
            ("SINCUT_NVRTC", &none),
            ("SINCUT_PREBUILT_CUBINS", &export_a),
        ],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("{} of {files}", files - 1)) && out.contains("missing"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
