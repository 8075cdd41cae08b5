//! Run-time compilation with NVRTC: compile options, header search, the on-disk cache of
//! compiled cubins and the parsing of ptxas' per-kernel report. Finding and opening libnvrtc
//! itself is `super::libnvrtc`.

use super::error::CudaError;
use super::kernels;
use super::libnvrtc::{self, SearchEnv};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The process's libnvrtc, or why there is none.
fn nvrtc() -> Result<&'static libnvrtc::Nvrtc, CudaError> {
    libnvrtc::global().map_err(CudaError::NvrtcMissing)
}

/// Whether libnvrtc can be loaded; Err says why not.
pub fn nvrtc_available() -> Result<(), CudaError> {
    nvrtc().map(|_| ())
}

/// NVRTC's version (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    nvrtc().map(|n| n.version)
}

/// Path of a loaded shared library whose file name starts with `prefix` (from /proc/self/maps).
pub fn loaded_library(prefix: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(prefix) && !f.contains("builtins"))
        })
}

/// The libnvrtc file this process opened (None when there is none).
pub fn nvrtc_library() -> Option<PathBuf> {
    nvrtc().ok().map(|n| n.path.clone())
}

fn has_cuda_headers(dir: &Path) -> bool {
    dir.join("cuda_fp16.h").is_file()
}

/// Directories holding NVRTC's headers (cuda_fp16.h, cuda_bf16.h, ...), in search order:
/// $SINCUT_CUDA_INCLUDE (colon-separated), the toolkits' include/ ($CUDA_PATH, $CUDA_HOME,
/// /usr/local/cuda), the pip folder beside the loaded libnvrtc (CUDA 13: `nvidia/cu13/include`;
/// CUDA 12: `nvidia/cuda_runtime/include`), then the same in the Python package folders
/// libnvrtc is searched in. Only directories that contain cuda_fp16.h are returned (the
/// kernels include no header today).
pub fn include_dirs() -> Vec<PathBuf> {
    let env = SearchEnv::from_env();
    let mut cand: Vec<PathBuf> = Vec::new();
    if let Ok(v) = std::env::var("SINCUT_CUDA_INCLUDE") {
        cand.extend(std::env::split_paths(&v));
    }
    cand.extend(env.toolkits.iter().map(|t| t.join("include")));
    // .../nvidia/cu13/lib/libnvrtc.so.13 → .../nvidia/cu13/include;
    // .../nvidia/cuda_nvrtc/lib/libnvrtc.so.12 → .../nvidia/cuda_runtime/include
    if let Some(lib) = nvrtc_library()
        && let Some(pkg) = lib.parent().and_then(Path::parent)
    {
        cand.push(pkg.join("include"));
        if let Some(nvidia) = pkg.parent() {
            cand.push(nvidia.join("cuda_runtime/include"));
        }
    }
    for site in libnvrtc::python_site_dirs(&env) {
        cand.push(site.join("nvidia/cu13/include"));
        cand.push(site.join("nvidia/cuda_runtime/include"));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for c in cand {
        if has_cuda_headers(&c) && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The options that determine the machine code for `arch` (e.g. "sm_90"); ptxas reports
/// registers, shared memory and spills (`-v`). A spill is not an error here: it only slows a
/// kernel, so a user's run goes on (with a notice) and `sincut doctor` / CI fail on it.
pub fn options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--ptxas-options=-v".to_string(),
    ]
}

/// [`options`] plus the header folders of this machine, which do not enter the cache key (the
/// headers that matter come with NVRTC, whose version does).
fn compile_options(arch: &str) -> Vec<String> {
    let mut o = options(arch);
    o.extend(
        include_dirs()
            .iter()
            .map(|d| format!("--include-path={}", d.display())),
    );
    o
}

/// The result of compiling one kernel file.
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// Compiles one kernel file for `arch` to a cubin (SASS for that exact architecture: loading
/// it needs no PTX JIT, and it does not depend on the driver accepting NVRTC's PTX version).
pub fn compile(file: &str, arch: &str) -> Result<Compiled, CudaError> {
    let nvrtc = nvrtc()?;
    let src = kernels::program(file)
        .ok_or_else(|| CudaError::Shape(format!("no kernel file named {file}")))?;
    let csrc = CString::new(src).map_err(|_| CudaError::Shape(format!("{file}: NUL in source")))?;
    let cname = CString::new(file).map_err(|_| CudaError::Shape(format!("{file}: NUL in name")))?;
    let out = nvrtc.compile(&csrc, &cname, &compile_options(arch));
    match (out.cubin, out.error) {
        (Some(cubin), None) => Ok(Compiled {
            cubin,
            log: out.log,
        }),
        (_, error) => Err(CudaError::Compile {
            file: file.to_string(),
            log: if out.log.trim().is_empty() {
                error.unwrap_or_default()
            } else {
                out.log
            },
        }),
    }
}

/// 128-bit FNV-1a: a stable hash (std's hasher is not guaranteed stable across releases).
fn fnv128(parts: &[&[u8]]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    const P: u128 = 0x0000000001000000000000000000013B;
    for p in parts {
        for &b in *p {
            h ^= b as u128;
            h = h.wrapping_mul(P);
        }
        // Separator so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(P);
    }
    h
}

/// The cache directory: $SINCUT_CACHE_DIR, else $XDG_CACHE_HOME/sincut, else ~/.cache/sincut.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SINCUT_CACHE_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("sincut"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sincut"))
}

/// The cache file for (program text, [`options`], arch, NVRTC version): what determines the
/// machine code, and nothing of where this machine keeps its headers.
pub fn cache_path(file: &str, arch: &str) -> Option<PathBuf> {
    let src = kernels::program(file)?;
    let opts = options(arch).join("\u{1}");
    let ver = nvrtc_version()
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_default();
    let key = fnv128(&[
        src.as_bytes(),
        opts.as_bytes(),
        arch.as_bytes(),
        ver.as_bytes(),
    ]);
    let stem = file.trim_end_matches(".cu");
    Some(cache_dir()?.join(format!("{stem}-{arch}-{key:032x}.cubin")))
}

/// Writes `data` to `path` atomically: a uniquely named temporary file in the same directory,
/// then rename (atomic on POSIX), so concurrent runs never read a half-written file.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".{}.{}.{nanos}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A cubin for `file` on `arch`, from the disk cache when present, else compiled and stored;
/// without NVRTC, the exported one of $SINCUT_PREBUILT_CUBINS. A cache that cannot be read or
/// written is not an error (only slower).
pub fn cubin_cached(file: &str, arch: &str) -> Result<Vec<u8>, CudaError> {
    match cached_or_compiled(file, arch) {
        // A GPU machine without NVRTC can still run cubins compiled elsewhere.
        Err(e @ CudaError::NvrtcMissing(_)) => prebuilt_cubin(file, arch).ok_or(e),
        r => r,
    }
}

fn cached_or_compiled(file: &str, arch: &str) -> Result<Vec<u8>, CudaError> {
    if let Some(p) = cache_path(file, arch)
        && let Ok(bytes) = std::fs::read(p)
        && bytes.starts_with(b"\x7fELF")
    {
        return Ok(bytes);
    }
    let c = compile(file, arch)?;
    // A spill slows a kernel but does not make it wrong: say so once, go on.
    for r in parse_ptxas_log(file, &c.log).iter().filter(|r| !r.ok()) {
        eprintln!(
            "note: kernel {} ({file}) spills registers on {arch} ({} B stored, {} B loaded): \
             it runs, slower; `sincut doctor` reports every kernel",
            r.kernel, r.spill_stores, r.spill_loads
        );
    }
    store(file, arch, &c.cubin);
    Ok(c.cubin)
}

/// Puts a freshly compiled cubin in the disk cache (best effort).
fn store(file: &str, arch: &str, cubin: &[u8]) {
    if let Some(p) = cache_path(file, arch) {
        let _ = write_atomic(&p, cubin);
    }
}

/// Environment variable naming a folder of cubins exported by `sincut doctor --export`.
pub const PREBUILT_ENV: &str = "SINCUT_PREBUILT_CUBINS";

/// The exported cubin's file name: keyed by program text, [`options`] and arch (not the NVRTC
/// version, which a machine without NVRTC cannot know), so it is the same on every machine.
pub fn prebuilt_name(file: &str, arch: &str) -> Option<String> {
    let src = kernels::program(file)?;
    let opts = options(arch).join("\u{1}");
    let key = fnv128(&[src.as_bytes(), opts.as_bytes(), arch.as_bytes()]);
    Some(format!(
        "{}-{arch}-{key:032x}.cubin",
        file.trim_end_matches(".cu")
    ))
}

/// The cubin for `file` on `arch` in the exported folder `dir`, if there is one.
pub fn prebuilt_cubin_in(dir: &Path, file: &str, arch: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(dir.join(prebuilt_name(file, arch)?)).ok()?;
    bytes.starts_with(b"\x7fELF").then_some(bytes)
}

fn prebuilt_cubin(file: &str, arch: &str) -> Option<Vec<u8>> {
    let dir = PathBuf::from(std::env::var_os(PREBUILT_ENV)?);
    prebuilt_cubin_in(&dir, file, arch)
}

/// Every kernel file's cubin for `arch` (from the cache, else compiled) into `dir`, under its
/// prebuilt name.
pub fn export_prebuilt(dir: &Path, arch: &str) -> Result<usize, CudaError> {
    std::fs::create_dir_all(dir).map_err(|e| CudaError::Io(format!("{}: {e}", dir.display())))?;
    let mut n = 0;
    for file in kernels::FILES.iter().map(|(f, _)| *f) {
        let cubin = cached_or_compiled(file, arch)?;
        let name = prebuilt_name(file, arch).expect("embedded kernel file");
        write_atomic(&dir.join(name), &cubin)
            .map_err(|e| CudaError::Io(format!("{}: {e}", dir.display())))?;
        n += 1;
    }
    Ok(n)
}

/// ptxas' figures for one kernel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelReport {
    pub file: String,
    /// The kernel's name; "*" when the whole file failed to compile.
    pub kernel: String,
    pub registers: u32,
    pub smem_bytes: u32,
    pub stack_bytes: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
    /// The NVRTC log when the file did not compile.
    pub error: Option<String>,
    /// The file compiled but NVRTC's log named no kernel (kernel "*"): with a driver present,
    /// NVRTC 13 takes the SASS from the driver's compute cache, and a cache hit runs no ptxas.
    pub no_ptxas_report: bool,
}

/// Disables the CUDA driver's compute cache, whose hits leave NVRTC's log without ptxas'
/// figures (sincut loads only cubins, which that cache never serves).
pub const COMPUTE_CACHE_OFF: (&str, &str) = ("CUDA_CACHE_DISABLE", "1");

impl KernelReport {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.no_ptxas_report
            && self.spill_stores == 0
            && self.spill_loads == 0
    }
}

/// The number just before `unit` in `line` ("... 64 registers" → 64).
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let i = line.find(unit)?;
    line[..i].split_whitespace().last()?.parse().ok()
}

/// Parses ptxas -v output ("Compiling entry function 'k' ...", "N bytes stack frame, S bytes
/// spill stores, L bytes spill loads", "Used R registers, ..., M bytes smem").
pub fn parse_ptxas_log(file: &str, log: &str) -> Vec<KernelReport> {
    let mut out: Vec<KernelReport> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            out.push(KernelReport {
                file: file.to_string(),
                kernel: name,
                ..Default::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if line.contains("stack frame") {
            cur.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            cur.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            cur.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used") && line.contains("registers") {
            cur.registers = number_before(line, "registers").unwrap_or(0);
            cur.smem_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out.sort_by(|a, b| a.kernel.cmp(&b.kernel));
    out
}

/// Compiles every kernel file for `arch` (never from sincut's cache: the report needs ptxas'
/// log; the cubins are stored in it) and returns one report per kernel; a file that does not
/// compile gives one report with `error` set, one whose log has no ptxas figures (see
/// [`COMPUTE_CACHE_OFF`]) one with `no_ptxas_report` set.
/// Err only when NVRTC itself is missing.
pub fn compile_all(arch: &str) -> Result<Vec<KernelReport>, CudaError> {
    nvrtc_available()?;
    let mut out = Vec::new();
    for (file, _) in kernels::FILES {
        match compile(file, arch) {
            Ok(c) => {
                store(file, arch, &c.cubin);
                let found = parse_ptxas_log(file, &c.log);
                if found.is_empty() {
                    out.push(KernelReport {
                        file: file.to_string(),
                        kernel: "*".into(),
                        no_ptxas_report: true,
                        ..Default::default()
                    });
                }
                out.extend(found);
            }
            Err(CudaError::Compile { file, log }) => out.push(KernelReport {
                file,
                kernel: "*".into(),
                error: Some(log),
                ..Default::default()
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_report() {
        let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'conv2d_fwd' for 'sm_90'\n\
ptxas info    : Function properties for conv2d_fwd\n\
ptxas         .     8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 63 registers, used 1 barriers, 8320 bytes smem\n\
ptxas info    : Compiling entry function 'adam_step' for 'sm_90'\n\
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 32 registers, used 0 barriers\n";
        let r = parse_ptxas_log("x.cu", log);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kernel.as_str(), r[0].registers, r[0].smem_bytes),
            ("adam_step", 32, 0)
        );
        assert!(r[0].ok());
        let c = &r[1];
        assert_eq!(
            (
                c.registers,
                c.smem_bytes,
                c.stack_bytes,
                c.spill_stores,
                c.spill_loads
            ),
            (63, 8320, 8, 4, 12)
        );
        assert!(!c.ok());
    }

    #[test]
    fn cache_key_changes_with_arch() {
        assert_ne!(fnv128(&[b"a", b"bc"]), fnv128(&[b"ab", b"c"]));
        assert_ne!(fnv128(&[b"sm_90"]), fnv128(&[b"sm_80"]));
    }
}
