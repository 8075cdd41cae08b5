//! The CUDA engine's error type: every failure is a value with a one-line message, never a
//! panic (cudarc panics when libcuda or libnvrtc is missing; callers here catch that).

use cudarc::driver::DriverError;
use cudarc::driver::sys::cudaError_enum as E;

#[derive(Clone, Debug, PartialEq)]
pub enum CudaError {
    /// libcuda could not be loaded (no NVIDIA driver installed).
    NoDriver(String),
    /// The driver is there but there is no (usable) GPU.
    NoGpu(String),
    /// libnvrtc could not be loaded.
    NvrtcMissing(String),
    /// NVRTC rejected a kernel file (or ptxas reported a spill, made an error on purpose).
    Compile { file: String, log: String },
    /// A kernel launch or other driver call failed.
    Launch(String),
    /// The device ran out of memory.
    OutOfMemory(String),
    /// A shape or argument the kernels do not support.
    Shape(String),
    /// A file could not be written (exported cubins).
    Io(String),
}

impl CudaError {
    /// Maps a driver error, keeping out-of-memory apart (callers may retry with smaller tiles).
    pub fn driver(what: &str, e: DriverError) -> CudaError {
        let name = e
            .error_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{:?}", e.0));
        match e.0 {
            E::CUDA_ERROR_OUT_OF_MEMORY => CudaError::OutOfMemory(format!("{what}: {name}")),
            E::CUDA_ERROR_NO_DEVICE | E::CUDA_ERROR_INVALID_DEVICE => {
                CudaError::NoGpu(format!("{what}: {name}"))
            }
            _ => CudaError::Launch(format!("{what}: {name}")),
        }
    }
}

impl std::fmt::Display for CudaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CudaError::NoDriver(m) => write!(f, "no CUDA driver: {m}"),
            CudaError::NoGpu(m) => write!(f, "no CUDA device: {m}"),
            CudaError::NvrtcMissing(m) => write!(f, "NVRTC not found: {m}"),
            CudaError::Compile { file, log } => {
                // One line: the log's lines joined, so a caller can print it as a notice.
                let log: Vec<&str> = log
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                write!(f, "kernel {file} does not compile: {}", log.join(" | "))
            }
            CudaError::Launch(m) => write!(f, "CUDA error: {m}"),
            CudaError::OutOfMemory(m) => write!(f, "GPU out of memory: {m}"),
            CudaError::Shape(m) => write!(f, "unsupported shape: {m}"),
            CudaError::Io(m) => write!(f, "cannot write: {m}"),
        }
    }
}

impl std::error::Error for CudaError {}

/// CUDA failures reach the user through the project's one-line error.
impl From<CudaError> for crate::error::Error {
    fn from(e: CudaError) -> Self {
        crate::error::Error::new(e.to_string())
    }
}
