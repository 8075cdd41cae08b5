//! Finding and opening libnvrtc. CUDA 12 and 13 install it under different names
//! (`libnvrtc.so.12`, `libnvrtc.so.13`) and in different places (a toolkit's `lib64`, pip's
//! `nvidia/cuda_nvrtc/lib` or `nvidia/cu13/lib`), and a loader path set before start is not
//! something a user of a Python-managed CUDA has. So sincut opens it itself, from an explicit
//! path or the first of a fixed list of places, and binds the eight entry points it calls.
//! Those entry points have kept their signatures from CUDA 11 to 13.

use libloading::Library;
use std::ffi::{CStr, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Names an explicit libnvrtc file; when set, nothing else is tried.
pub const NVRTC_ENV: &str = "SINCUT_NVRTC";

/// The file names tried in each place, newest CUDA first.
const FILE_NAMES: [&str; 3] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

/// What the search looks at, read from the environment once (tests build their own).
#[derive(Clone, Debug, Default)]
pub struct SearchEnv {
    /// `$SINCUT_NVRTC`.
    pub explicit: Option<PathBuf>,
    /// CUDA toolkit roots: `$CUDA_PATH`, `$CUDA_HOME`, `/usr/local/cuda`.
    pub toolkits: Vec<PathBuf>,
    /// The `PATH` entries (a Python found there brings its site-packages).
    pub path: Vec<PathBuf>,
    /// `$HOME` (for `~/.local` and pyenv's Pythons).
    pub home: Option<PathBuf>,
}

impl SearchEnv {
    pub fn from_env() -> SearchEnv {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut toolkits: Vec<PathBuf> = ["CUDA_PATH", "CUDA_HOME"]
            .iter()
            .filter_map(|k| var(k).map(PathBuf::from))
            .collect();
        toolkits.push("/usr/local/cuda".into());
        SearchEnv {
            explicit: var(NVRTC_ENV).map(PathBuf::from),
            toolkits,
            path: var("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
            home: var("HOME").map(PathBuf::from),
        }
    }
}

/// One way of opening libnvrtc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// By file name through the dynamic loader (LD_LIBRARY_PATH, ld.so.cache).
    Name(&'static str),
    /// A file found on disk.
    File(PathBuf),
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::Name(n) => write!(f, "{n} (loader path)"),
            Candidate::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// `<prefix>/lib/python3*/{site,dist}-packages` that exist.
fn site_packages_under(prefix: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(prefix.join("lib")) else {
        return;
    };
    let mut libs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    libs.sort();
    for l in libs {
        for sub in ["site-packages", "dist-packages"] {
            let d = l.join(sub);
            if d.is_dir() && !out.contains(&d) {
                out.push(d);
            }
        }
    }
}

/// Python package folders, in search order: those of each Python on PATH (a venv's own first,
/// then the interpreter it links to), then /usr/local, /usr, ~/.local and pyenv's versions.
pub fn python_site_dirs(env: &SearchEnv) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in &env.path {
        for exe in ["python3", "python"] {
            let p = dir.join(exe);
            if !p.is_file() {
                continue;
            }
            if let Some(prefix) = dir.parent() {
                site_packages_under(prefix, &mut out);
            }
            if let Some(prefix) = std::fs::canonicalize(&p)
                .ok()
                .as_deref()
                .and_then(Path::parent)
                .and_then(Path::parent)
            {
                site_packages_under(prefix, &mut out);
            }
        }
    }
    for base in ["/usr/local", "/usr"] {
        site_packages_under(Path::new(base), &mut out);
    }
    if let Some(home) = &env.home {
        site_packages_under(&home.join(".local"), &mut out);
        if let Ok(rd) = std::fs::read_dir(home.join(".pyenv/versions")) {
            let mut versions: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            versions.sort();
            for v in versions {
                site_packages_under(&v, &mut out);
            }
        }
    }
    out
}

/// The CUDA major version in a file name such as `libnvrtc.so.13` (0 when none).
fn major_of(name: &str) -> u32 {
    name.rsplit('.')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// libnvrtc files in `dir`, newest first.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// Every place to try, in order: `$SINCUT_NVRTC` alone when set; else the loader by name
/// (`.so.13`, `.so.12`, `.so`), the toolkits' `lib64`, then the `nvidia/*/lib` folders of the
/// Python package folders (pip's `nvidia-cuda-nvrtc` wheels: `cu13/lib` for CUDA 13,
/// `cuda_nvrtc/lib` for 12), newest CUDA first within each Python.
pub fn candidates(env: &SearchEnv) -> Vec<Candidate> {
    if let Some(p) = &env.explicit {
        return vec![Candidate::File(p.clone())];
    }
    let mut out: Vec<Candidate> = FILE_NAMES.iter().map(|n| Candidate::Name(n)).collect();
    for root in &env.toolkits {
        out.extend(
            files_in(&root.join("lib64"))
                .into_iter()
                .map(Candidate::File),
        );
    }
    for site in python_site_dirs(env) {
        let Ok(rd) = std::fs::read_dir(site.join("nvidia")) else {
            continue;
        };
        let mut found: Vec<PathBuf> = rd
            .flatten()
            .flat_map(|e| files_in(&e.path().join("lib")))
            .collect();
        found.sort_by(|a, b| {
            let name = |p: &PathBuf| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            };
            major_of(&name(b)).cmp(&major_of(&name(a))).then(a.cmp(b))
        });
        out.extend(found.into_iter().map(Candidate::File));
    }
    let mut unique = Vec::new();
    for c in out {
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    unique
}

type NvrtcProgram = *mut std::ffi::c_void;
type NvrtcResult = c_int;
const NVRTC_SUCCESS: NvrtcResult = 0;

/// The entry points sincut calls (signatures as in nvrtc.h, unchanged from CUDA 11 to 13).
#[derive(Clone, Copy)]
struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult,
    error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
    create_program: unsafe extern "C" fn(
        *mut NvrtcProgram,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    compile_program: unsafe extern "C" fn(NvrtcProgram, c_int, *const *const c_char) -> NvrtcResult,
    program_log_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> NvrtcResult,
    program_log: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> NvrtcResult,
    cubin_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> NvrtcResult,
    cubin: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> NvrtcResult,
    destroy_program: unsafe extern "C" fn(*mut NvrtcProgram) -> NvrtcResult,
}

/// An opened libnvrtc.
pub struct Nvrtc {
    api: Api,
    /// Where it was opened from (the file the loader mapped).
    pub path: PathBuf,
    /// NVRTC's (major, minor) version.
    pub version: (i32, i32),
    // Kept open for the life of the process: `api` points into them.
    _lib: Library,
    _builtins: Option<Library>,
}

/// What one compilation gave: the cubin when it compiled, and NVRTC's log either way.
pub struct Output {
    pub cubin: Option<Vec<u8>>,
    pub log: String,
    /// NVRTC's error when it did not compile.
    pub error: Option<String>,
}

/// libnvrtc-builtins beside `lib` (CUDA 12's wheel has no RUNPATH, so NVRTC would not find
/// it in its own folder): opened first, NVRTC's own dlopen of it by name then finds it loaded.
fn open_builtins(lib: &Path) -> Option<Library> {
    let dir = lib.parent()?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so.") && !n.contains(".alt."))
        })
        .collect();
    names.sort();
    // SAFETY: NVRTC's own helper library; its initialisers have no requirements.
    names
        .iter()
        .rev()
        .find_map(|p| unsafe { Library::new(p) }.ok())
}

impl Nvrtc {
    /// Opens one candidate; Err says why not, in a few words.
    pub fn open(c: &Candidate) -> Result<Nvrtc, String> {
        let builtins = match c {
            Candidate::File(p) => open_builtins(p),
            Candidate::Name(_) => None,
        };
        // SAFETY: loading a library runs its initialisers; libnvrtc's have no requirements.
        let lib = match c {
            Candidate::Name(n) => unsafe { Library::new(*n) },
            Candidate::File(p) => unsafe { Library::new(p) },
        }
        .map_err(|e| short_error(&e))?;
        // SAFETY: the symbol types match nvrtc.h; the pointers stay valid while `lib` is open,
        // and `lib` lives in the same struct.
        let api = unsafe {
            macro_rules! sym {
                ($name:literal) => {
                    *lib.get($name)
                        .map_err(|e| format!("not NVRTC: {}", short_error(&e)))?
                };
            }
            Api {
                version: sym!(b"nvrtcVersion\0"),
                error_string: sym!(b"nvrtcGetErrorString\0"),
                create_program: sym!(b"nvrtcCreateProgram\0"),
                compile_program: sym!(b"nvrtcCompileProgram\0"),
                program_log_size: sym!(b"nvrtcGetProgramLogSize\0"),
                program_log: sym!(b"nvrtcGetProgramLog\0"),
                cubin_size: sym!(b"nvrtcGetCUBINSize\0"),
                cubin: sym!(b"nvrtcGetCUBIN\0"),
                destroy_program: sym!(b"nvrtcDestroyProgram\0"),
            }
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two out-pointers to ints.
        let r = unsafe { (api.version)(&mut major, &mut minor) };
        if r != NVRTC_SUCCESS {
            return Err(format!("nvrtcVersion failed ({r})"));
        }
        let path = match c {
            Candidate::File(p) => std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()),
            Candidate::Name(n) => {
                super::nvrtc::loaded_library("libnvrtc").unwrap_or_else(|| PathBuf::from(n))
            }
        };
        Ok(Nvrtc {
            api,
            path,
            version: (major, minor),
            _lib: lib,
            _builtins: builtins,
        })
    }

    fn error_name(&self, r: NvrtcResult) -> String {
        // SAFETY: NVRTC returns a static string (or null) for any code.
        let p = unsafe { (self.api.error_string)(r) };
        if p.is_null() {
            format!("NVRTC error {r}")
        } else {
            // SAFETY: a NUL-terminated static string.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }

    /// Compiles one program to a cubin with `options`.
    pub fn compile(&self, source: &CStr, name: &CStr, options: &[String]) -> Output {
        let opts: Vec<std::ffi::CString> = options
            .iter()
            .map(|o| std::ffi::CString::new(o.as_str()).unwrap_or_default())
            .collect();
        let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let mut prog: NvrtcProgram = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings, no headers; `prog` is destroyed below.
        let r = unsafe {
            (self.api.create_program)(
                &mut prog,
                source.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if r != NVRTC_SUCCESS {
            return Output {
                cubin: None,
                log: String::new(),
                error: Some(format!("nvrtcCreateProgram: {}", self.error_name(r))),
            };
        }
        // SAFETY: `prog` is a live program; the option pointers outlive the call; the log
        // and cubin buffers have the sizes NVRTC reported.
        unsafe {
            let status = (self.api.compile_program)(prog, ptrs.len() as c_int, ptrs.as_ptr());
            let mut log_size = 0usize;
            let mut log = String::new();
            if (self.api.program_log_size)(prog, &mut log_size) == NVRTC_SUCCESS && log_size > 1 {
                let mut buf = vec![0u8; log_size];
                if (self.api.program_log)(prog, buf.as_mut_ptr().cast()) == NVRTC_SUCCESS {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    log = String::from_utf8_lossy(&buf[..end]).into_owned();
                }
            }
            let mut out = Output {
                cubin: None,
                log,
                error: None,
            };
            if status != NVRTC_SUCCESS {
                out.error = Some(self.error_name(status));
            } else {
                let mut size = 0usize;
                let mut r = (self.api.cubin_size)(prog, &mut size);
                let mut cubin = vec![0u8; size];
                if r == NVRTC_SUCCESS && size > 0 {
                    r = (self.api.cubin)(prog, cubin.as_mut_ptr().cast());
                }
                if r == NVRTC_SUCCESS && size > 0 {
                    out.cubin = Some(cubin);
                } else {
                    out.error = Some(format!(
                        "nvrtcGetCUBIN: {} (is the architecture a real one?)",
                        self.error_name(r)
                    ));
                }
            }
            (self.api.destroy_program)(&mut prog);
            out
        }
    }
}

/// The loader's own words (dlerror, libloading's source error), without the file name it
/// repeats: "cannot open shared object file: No such file or directory".
fn short_error(e: &libloading::Error) -> String {
    use std::error::Error as _;
    let text = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
    let line = text.lines().next().unwrap_or("");
    match line.find(".so") {
        Some(i) => line[i..]
            .split_once(": ")
            .map_or(line, |(_, rest)| rest)
            .trim()
            .to_string(),
        None => line.trim().to_string(),
    }
}

/// Tries every candidate in order; Err lists what was tried, on one line.
pub fn open_first(env: &SearchEnv) -> Result<Nvrtc, String> {
    let cands = candidates(env);
    let mut tried = Vec::new();
    for c in &cands {
        match Nvrtc::open(c) {
            Ok(n) => return Ok(n),
            Err(e) if env.explicit.is_some() => return Err(format!("{NVRTC_ENV}={c}: {e}")),
            Err(e) => tried.push(match c {
                Candidate::Name(n) => n.to_string(),
                Candidate::File(p) => format!("{} ({e})", p.display()),
            }),
        }
    }
    Err(format!(
        "tried {}, the lib64 of $CUDA_PATH, $CUDA_HOME and /usr/local/cuda, and the nvidia/*/lib \
         folders of the Pythons on PATH; set {NVRTC_ENV}=/path/to/libnvrtc.so.N, or \
         `pip install nvidia-cuda-nvrtc` (CUDA 13) or `nvidia-cuda-nvrtc-cu12` (CUDA 12)",
        tried.join(", ")
    ))
}

/// The process's libnvrtc, opened on first use from the environment at that moment.
pub fn global() -> Result<&'static Nvrtc, String> {
    static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
    NVRTC
        .get_or_init(|| open_first(&SearchEnv::from_env()))
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn explicit_path_is_the_only_candidate() {
        let env = SearchEnv {
            explicit: Some("/x/libnvrtc.so.13".into()),
            toolkits: vec!["/usr/local/cuda".into()],
            ..Default::default()
        };
        assert_eq!(
            candidates(&env),
            vec![Candidate::File("/x/libnvrtc.so.13".into())]
        );
    }

    #[test]
    fn finds_toolkits_and_python_wheels_in_order() {
        let root = std::env::temp_dir().join(format!("sincut-nvrtc-search-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // A toolkit with CUDA 12, a venv whose Python is on PATH with both wheels' layouts
        // (CUDA 12's cuda_nvrtc and CUDA 13's cu13), and a wheel's decoy files.
        touch(&root.join("cuda/lib64/libnvrtc.so.12"));
        touch(&root.join("venv/bin/python3"));
        let site = root.join("venv/lib/python3.12/site-packages/nvidia");
        touch(&site.join("cuda_nvrtc/lib/libnvrtc.so.12"));
        touch(&site.join("cu13/lib/libnvrtc.so.13"));
        touch(&site.join("cu13/lib/libnvrtc-builtins.so.13.0"));
        touch(&site.join("cu13/lib/libnvrtc.alt.so.13"));
        touch(&root.join("empty/bin/python3"));
        let env = SearchEnv {
            explicit: None,
            toolkits: vec![root.join("cuda"), root.join("missing")],
            path: vec![root.join("empty/bin"), root.join("venv/bin")],
            home: None,
        };
        let c = candidates(&env);
        let files: Vec<PathBuf> = c
            .iter()
            .filter_map(|c| match c {
                Candidate::File(p) if p.starts_with(&root) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            files,
            vec![
                root.join("cuda/lib64/libnvrtc.so.12"),
                site.join("cu13/lib/libnvrtc.so.13"),
                site.join("cuda_nvrtc/lib/libnvrtc.so.12"),
            ]
        );
        assert_eq!(
            &c[..3],
            &[
                Candidate::Name("libnvrtc.so.13"),
                Candidate::Name("libnvrtc.so.12"),
                Candidate::Name("libnvrtc.so")
            ]
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_file_that_is_not_nvrtc_is_refused_in_words() {
        let p = std::env::temp_dir().join(format!("sincut-not-nvrtc-{}.so.13", std::process::id()));
        std::fs::write(&p, b"not a library").unwrap();
        let env = SearchEnv {
            explicit: Some(p.clone()),
            ..Default::default()
        };
        let e = open_first(&env).err().expect("a text file does not load");
        assert!(e.starts_with(NVRTC_ENV), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let _ = std::fs::remove_file(&p);
    }
}
