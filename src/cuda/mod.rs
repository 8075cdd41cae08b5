//! The CUDA engine: hand-written kernels (`kernels/*.cu`) compiled at run time by NVRTC and
//! launched through cudarc (dynamic loading: the crate builds without a CUDA toolkit).
//!
//! [`Gpu::open`] never panics: it checks that libcuda loads, and creates the context under
//! `catch_unwind` because cudarc panics when a library is missing. Kernel modules are compiled
//! on first use and cached on disk (see [`nvrtc::cache_dir`] and docs/CUDA.md).

pub mod doctor;
pub mod error;
pub mod kernels;
pub mod launch;
pub mod libnvrtc;
pub mod nvrtc;
pub mod tensor;

pub use doctor::doctor_report;
pub use error::CudaError;
pub use nvrtc::{KernelReport, compile_all};
pub use tensor::GpuTensor;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Threads per block of the elementwise and reduction kernels (a multiple of 32, as the block
/// reductions in common.cuh require).
pub const BLOCK: u32 = 256;

/// One GPU: its context, one stream all work goes to, and the kernel modules loaded so far.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    name: String,
    /// Streaming multiprocessors: how many blocks a grid needs to keep the card busy.
    sm_count: usize,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// Tests set this: every output buffer a launcher allocates is filled with NaN first, so
    /// elements a kernel fails to write are caught.
    poison: bool,
    /// Bytes the bf16 convs' operand conversions read and wrote since the context opened:
    /// activations and gradients, then weights.
    converted_bytes: [AtomicU64; 2],
}

/// Runs `f`, turning a panic (cudarc's reaction to a missing libcuda) into an error.
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, String> {
    // The panic hook is left alone (swapping it is racy across threads): availability is
    // checked first, so this only catches what slips through.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        format!("{what}: {}", msg.lines().next().unwrap_or(""))
    })
}

/// The driver entry points sincut's CUDA paths call through cudarc. cudarc resolves each on
/// first use and panics when one is missing, so a partial or foreign libcuda is checked for all
/// of them up front (present in every driver since CUDA 11.2).
pub const DRIVER_SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDeviceTotalMem_v2",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuCtxGetCurrent",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuMemAllocAsync",
    "cuMemFreeAsync",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemsetD8Async",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuLaunchKernel",
    "cuDeviceGetDefaultMemPool",
    "cuMemPoolSetAttribute",
    "cuMemPoolGetAttribute",
];

/// Whether a complete libcuda loads (the names cudarc opens it by); Err says why not, in one
/// line, without cudarc's panic.
pub fn driver_check() -> Result<(), String> {
    static CHECK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CHECK
        .get_or_init(|| {
            let names = ["libcuda.so", "libcuda.so.1"];
            // SAFETY: loading the driver library runs its initialisers, as cudarc would.
            let lib = names
                .iter()
                .find_map(|n| unsafe { libloading::Library::new(*n) }.ok())
                .ok_or_else(|| "libcuda is not installed or not on the loader path".to_string())?;
            let missing: Vec<&str> = DRIVER_SYMBOLS
                .iter()
                .copied()
                // SAFETY: only looks the symbol up; it is never called through this handle.
                .filter(|s| unsafe { lib.get::<*const ()>(s.as_bytes()) }.is_err())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                let file = nvrtc::loaded_library("libcuda")
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "libcuda".into());
                let shown = missing
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(format!(
                    "{file} is incomplete or not NVIDIA's driver (it lacks {shown}{})",
                    if missing.len() > 3 {
                        format!(" and {} more entry points", missing.len() - 3)
                    } else {
                        String::new()
                    }
                ))
            }
        })
        .clone()
}

/// Whether a complete libcuda can be loaded (no panic).
pub fn driver_present() -> bool {
    driver_check().is_ok()
}

impl Gpu {
    /// Opens GPU `ordinal`. Errors (never panics): no driver, no device, context failure.
    pub fn open(ordinal: usize) -> Result<Gpu, CudaError> {
        driver_check().map_err(CudaError::NoDriver)?;
        let ctx = guarded("creating the CUDA context", || CudaContext::new(ordinal))
            .map_err(CudaError::NoDriver)?
            .map_err(|e| CudaError::driver(&format!("opening GPU {ordinal}"), e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| CudaError::driver("compute capability", e))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| CudaError::driver("multiprocessor count", e))?
            .max(1) as usize;
        let stream = ctx
            .new_stream()
            .map_err(|e| CudaError::driver("creating a stream", e))?;
        Ok(Gpu {
            ctx,
            stream,
            arch: format!("sm_{major}{minor}"),
            name,
            sm_count,
            modules: Mutex::new(HashMap::new()),
            poison: false,
            converted_bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    /// Opens GPU 0, or says why not (for tests and `--device auto`).
    pub fn open_default() -> Result<Gpu, CudaError> {
        Gpu::open(0)
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn sm_count(&self) -> usize {
        self.sm_count
    }
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Poison-fill every output buffer launchers allocate (tests).
    pub fn set_poison(&mut self, on: bool) {
        self.poison = on;
    }

    /// Bytes read and written by the bf16 convs' operand conversions since the context opened,
    /// (activations and gradients to NHWC, weights to bf16 rows): what `benches/gpu.rs`
    /// reports per iteration.
    pub fn converted_bytes(&self) -> (u64, u64) {
        let [a, w] = &self.converted_bytes;
        (a.load(Ordering::Relaxed), w.load(Ordering::Relaxed))
    }
    pub(crate) fn count_converted(&self, weights: bool, elements: usize) {
        // Each element is read as f32 and written as bf16.
        self.converted_bytes[usize::from(weights)]
            .fetch_add(6 * elements as u64, Ordering::Relaxed);
    }

    /// An activation's NHWC bf16 copy written by the kernel that computes the activation: only
    /// the bf16 write is the conversion's.
    pub(crate) fn count_converted_in_passing(&self, elements: usize) {
        self.converted_bytes[0].fetch_add(2 * elements as u64, Ordering::Relaxed);
    }

    /// Kernel `func` of kernel file `file` (compiled, or taken from the disk cache, on first use).
    pub fn function(&self, file: &'static str, func: &str) -> Result<CudaFunction, CudaError> {
        let module = {
            let mut m = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            match m.get(file) {
                Some(md) => md.clone(),
                None => {
                    let cubin = nvrtc::cubin_cached(file, &self.arch)?;
                    let md = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
                        .map_err(|e| CudaError::driver(&format!("loading {file}"), e))?;
                    m.insert(file, md.clone());
                    md
                }
            }
        };
        module
            .load_function(func)
            .map_err(|e| CudaError::driver(&format!("{file}: kernel {func}"), e))
    }

    /// An f32 buffer of `len` elements for a kernel to write (NaN-filled when poisoning).
    pub fn alloc_out(&self, len: usize) -> Result<CudaSlice<f32>, CudaError> {
        // SAFETY: every launcher writes all elements of its outputs before they are read.
        let mut b = unsafe { self.stream.alloc::<f32>(len.max(1)) }
            .map_err(|e| CudaError::driver("allocating", e))?;
        if self.poison {
            launch::poison::fill(self, &mut b)?;
        }
        Ok(b)
    }

    /// A zero-filled buffer.
    pub fn zeros(&self, len: usize) -> Result<CudaSlice<f32>, CudaError> {
        self.stream
            .alloc_zeros::<f32>(len.max(1))
            .map_err(|e| CudaError::driver("allocating", e))
    }

    pub fn upload(&self, data: &[f32]) -> Result<CudaSlice<f32>, CudaError> {
        self.stream
            .clone_htod(data)
            .map_err(|e| CudaError::driver("upload", e))
    }

    /// Copies `buf` to the host; waits for the stream so that the values (and any fault of the
    /// kernels that wrote them) are there when this returns.
    pub fn download(&self, buf: &CudaSlice<f32>) -> Result<Vec<f32>, CudaError> {
        let v = self
            .stream
            .clone_dtoh(buf)
            .map_err(|e| CudaError::driver("download", e))?;
        self.sync()?;
        Ok(v)
    }

    /// Waits for all launched work; reports asynchronous kernel faults.
    pub fn sync(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(|e| CudaError::driver("synchronize", e))
    }
}

impl Gpu {
    /// The device's default memory pool (cudarc allocates from it, stream-ordered).
    fn default_pool(&self) -> Result<cudarc::driver::sys::CUmemoryPool, CudaError> {
        use cudarc::driver::sys;
        self.ctx
            .bind_to_thread()
            .map_err(|e| CudaError::driver("binding the context", e))?;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: a valid device handle and an out-pointer to a pool handle.
        unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, self.ctx.cu_device()) }
            .result()
            .map_err(|e| CudaError::driver("default memory pool", e))?;
        Ok(pool)
    }

    /// Keeps freed memory in the pool instead of returning it at each synchronisation, so a
    /// training iteration reuses the previous one's blocks instead of mapping fresh memory.
    pub fn keep_pool_memory(&self) -> Result<(), CudaError> {
        use cudarc::driver::sys;
        let pool = self.default_pool()?;
        let mut threshold: u64 = u64::MAX;
        // SAFETY: RELEASE_THRESHOLD takes a cuuint64_t.
        unsafe {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            )
        }
        .result()
        .map_err(|e| CudaError::driver("memory pool threshold", e))
    }

    /// The most memory the pool's allocations have used at once since the last reset (bytes).
    pub fn peak_pool_bytes(&self) -> Result<u64, CudaError> {
        use cudarc::driver::sys;
        let pool = self.default_pool()?;
        let mut v: u64 = 0;
        // SAFETY: USED_MEM_HIGH writes a cuuint64_t.
        unsafe {
            sys::cuMemPoolGetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&mut v as *mut u64).cast(),
            )
        }
        .result()
        .map_err(|e| CudaError::driver("memory pool peak", e))?;
        Ok(v)
    }

    /// Restarts the peak of [`Gpu::peak_pool_bytes`] (it may only be set to 0).
    pub fn reset_peak_pool_bytes(&self) -> Result<(), CudaError> {
        use cudarc::driver::sys;
        let pool = self.default_pool()?;
        let mut zero: u64 = 0;
        // SAFETY: USED_MEM_HIGH takes a cuuint64_t, which must be 0.
        unsafe {
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&mut zero as *mut u64).cast(),
            )
        }
        .result()
        .map_err(|e| CudaError::driver("memory pool peak reset", e))
    }
}

/// A grid-stride launch over `n` elements (the grid is capped: kernels loop).
pub(crate) fn grid_1d(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `blocks` blocks of BLOCK threads (one per channel, row, ...).
pub(crate) fn grid_blocks(blocks: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.max(1) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Checks that a size fits the kernels' 32-bit index arguments.
pub(crate) fn i32_arg(what: &str, v: usize) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Shape(format!("{what} = {v} exceeds i32")))
}
