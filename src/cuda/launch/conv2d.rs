//! conv2d and conv_transpose2d (its adjoint) as `ops::conv2d`: x (N,Cin,H,W), w (Cout,Cin,k,k).
//!
//! Each launcher takes the matmul precision: `Full` runs the f32 kernels of kernels/conv2d.cu,
//! `Bf16` the tensor-core kernels of kernels/conv2d_bf16.cu (operands rounded to bf16, f32
//! accumulation; sm_80 or newer), with the same arguments; `kernel` gives each pass its tile,
//! and so its grid. A pass whose grid would leave SMs idle splits its K range over grid z
//! (`split_k`) and adds the splits' partial outputs afterwards (`launch_pass`).
//!
//! In bf16, a pass whose K runs over channels that are multiples of 8 takes the NHWC kernels of
//! kernels/conv2d_nhwc_bf16.cu instead: its operands are converted to bf16 first (activations
//! to NHWC, weights to (kh, kw, c) rows), so that the kernel copies 16-byte chunks with
//! cp.async: the forward, the weight gradient, and the input gradient (one forward conv of dy
//! per stride phase, with that phase's taps turned by 180°); RGB layers keep the gathering
//! kernels.

use super::{check, launch};
use crate::backend::cpu::MatmulPrecision;
use crate::cuda::{CudaError, Gpu, GpuTensor, grid_1d, i32_arg};
use crate::ops::conv2d::conv_out_len;
use cudarc::driver::{CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
use std::sync::Arc;

/// K step of each kernel file: a weight-gradient split is a whole number of steps.
const BK_F32: usize = 16;
const BK_BF16: usize = 32;
const THREADS_F32: u32 = 256;

/// The kernel of one conv pass at a precision: its function, block size, K step and C tile.
struct Kernel {
    f: CudaFunction,
    threads: u32,
    bk: usize,
    bm: usize,
    bn: usize,
}

/// The kernel for a pass whose C has `rows` rows. Each kernel file has a general tile and
/// taller ones for rows that are a multiple of 80 (the official widths 80 and 160), which then
/// fill every row:
/// - f32 (conv2d.cu): 64×64 and 80×64 (`_m80`) tiles, 256 threads;
/// - bf16 (conv2d_bf16.cu): 64×64 tiles with 128 threads; 80×128 (`_m80_bf16`) and, for rows
///   a multiple of 160, 160×128 (`_m160_bf16`) with 256.
fn kernel(
    gpu: &Gpu,
    prec: MatmulPrecision,
    name: &'static str,
    rows: usize,
) -> Result<Kernel, CudaError> {
    let tall = if rows.is_multiple_of(160) && (prec == MatmulPrecision::Full || bf16_m160()) {
        160
    } else if rows.is_multiple_of(80) {
        80
    } else {
        64
    };
    let (file, suffix, threads, bk, bm, bn) = match (prec, tall) {
        (MatmulPrecision::Full, 64) => ("conv2d.cu", "", THREADS_F32, BK_F32, 64, 64),
        (MatmulPrecision::Full, _) => ("conv2d.cu", "_m80", THREADS_F32, BK_F32, 80, 64),
        (MatmulPrecision::Bf16, 64) => ("conv2d_bf16.cu", "_bf16", 128, BK_BF16, 64, 64),
        (MatmulPrecision::Bf16, 80) => ("conv2d_bf16.cu", "_m80_bf16", 256, BK_BF16, 80, 128),
        (MatmulPrecision::Bf16, _) => ("conv2d_bf16.cu", "_m160_bf16", 256, BK_BF16, 160, 128),
    };
    if prec == MatmulPrecision::Bf16 {
        check_bf16(gpu)?;
    }
    Ok(Kernel {
        f: gpu.function(file, &format!("{name}{suffix}"))?,
        threads,
        bk,
        bm,
        bn,
    })
}

/// Whether bf16 passes may take the 160-row tile: off with `SINCUT_BF16_TILE=80`, so that a GPU
/// run can compare it with the 80-row one (scripts/gpu-check.sh does).
fn bf16_m160() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("SINCUT_BF16_TILE").as_deref() != Ok("80"))
}

/// The kernel file of the NHWC bf16 passes.
const NHWC_FILE: &str = "conv2d_nhwc_bf16.cu";

/// Whether a pass at `prec` whose K runs over `channels` takes the NHWC kernels: bf16, every
/// such channel count a multiple of 8 (one 16-byte copy holds 8 bf16 of one pixel), and not
/// turned off by `SINCUT_BF16_CONV=gather` (which keeps the gathering kernels everywhere, so
/// that a GPU run can compare both; scripts/gpu-check.sh does).
pub(crate) fn nhwc_applies(prec: MatmulPrecision, channels: &[usize]) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    prec == MatmulPrecision::Bf16
        && *ON.get_or_init(|| std::env::var("SINCUT_BF16_CONV").as_deref() != Ok("gather"))
        && channels.iter().all(|c| c.is_multiple_of(8))
}

/// An NHWC kernel for a pass whose C has `rows` rows: 80×128 tiles where the rows are a
/// multiple of 80, else 64×128; 128 threads, K step 32.
fn nhwc_kernel(gpu: &Gpu, name: &str, rows: usize) -> Result<Kernel, CudaError> {
    check_bf16(gpu)?;
    let (suffix, bm) = if rows.is_multiple_of(80) {
        ("_m80", 80)
    } else {
        ("_m64", 64)
    };
    Ok(Kernel {
        f: gpu.function(NHWC_FILE, &format!("{name}{suffix}"))?,
        threads: 128,
        bk: BK_BF16,
        bm,
        bn: 128,
    })
}

/// `t` (N,C,H,W) f32 as (N,H,W,C) bf16 bits (round to nearest even); `weights` says which
/// count of [`Gpu::converted_bytes`] it adds to.
fn to_nhwc_bf16(gpu: &Gpu, t: &GpuTensor, weights: bool) -> Result<CudaSlice<u16>, CudaError> {
    let [n, c, h, w] = t.shape;
    let hw = i32_arg("H*W", h * w)?;
    let ci = i32_arg("C", c)?;
    let ni = i32_arg("N", n)?;
    check(c.div_ceil(32) <= MAX_GRID_Z, || {
        format!("NHWC conversion: {c} channels exceed the grid's y limit")
    })?;
    // SAFETY: nchw_to_nhwc_bf16 writes every element before the conv pass reads it.
    let mut out = unsafe { gpu.stream().alloc::<u16>(t.len().max(1)) }
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function(NHWC_FILE, "nchw_to_nhwc_bf16")?;
    let cfg = LaunchConfig {
        grid_dim: (
            (h * w).div_ceil(32) as u32,
            c.div_ceil(32) as u32,
            n.clamp(1, MAX_GRID_Z) as u32,
        ),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(t.buf()).arg(&mut out).arg(&ni).arg(&ci).arg(&hw);
    launch!(l, cfg, "nchw_to_nhwc_bf16")?;
    gpu.count_converted(weights, t.len());
    Ok(out)
}

/// `t` as (N,H,W,C) bf16: the copy `t` keeps from an earlier pass, else a new one it keeps.
fn nhwc_of(gpu: &Gpu, t: &GpuTensor) -> Result<Arc<CudaSlice<u16>>, CudaError> {
    t.nhwc_bf16(|t| to_nhwc_bf16(gpu, t, false))
}

/// Conv weights w (Cout,Cin,k,k) as the forward's bf16 GEMM rows (Cout, (kh, kw, ci)): that is
/// w's NHWC layout, so w keeps it like an activation's copy (R1's tangent pass reuses the
/// forward's).
fn weight_rows_of(gpu: &Gpu, w: &GpuTensor) -> Result<Arc<CudaSlice<u16>>, CudaError> {
    w.nhwc_bf16(|w| to_nhwc_bf16(gpu, w, true))
}

/// Conv weights w (Cout,Cin,k,k) as the input gradient's bf16 GEMM rows for stride phase
/// (hr, wr) of stride s: (Cin, (i, j, co)) over that phase's taps, turned by 180°
/// (kernels/conv2d_nhwc_bf16.cu).
fn weight_phase_to_bf16(
    gpu: &Gpu,
    w: &GpuTensor,
    (s, hr, wr): (usize, usize, usize),
) -> Result<CudaSlice<u16>, CudaError> {
    let [cout, cin, k, _] = w.shape;
    let len = cin * cout * phase_taps(k, s, hr) * phase_taps(k, s, wr);
    // SAFETY: conv_weight_phase_to_bf16 writes every element before the conv pass reads it.
    let mut out = unsafe { gpu.stream().alloc::<u16>(len.max(1)) }
        .map_err(|e| CudaError::driver("allocating", e))?;
    let f = gpu.function(NHWC_FILE, "conv_weight_phase_to_bf16")?;
    let a = [cout, cin, k, s, hr, wr]
        .iter()
        .map(|&v| i32_arg("weight shape", v))
        .collect::<Result<Vec<i32>, _>>()?;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(w.buf()).arg(&mut out);
    for v in &a {
        l.arg(v);
    }
    launch!(l, grid_1d(len), "conv_weight_phase_to_bf16")?;
    gpu.count_converted(true, len);
    Ok(out)
}

/// bf16 mma needs compute capability 8.0 (Ampere) or newer.
pub fn check_bf16(gpu: &Gpu) -> Result<(), CudaError> {
    let cc: u32 = gpu
        .arch()
        .trim_start_matches("sm_")
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    check(cc >= 80, || {
        format!(
            "bf16 tensor-core convolutions need sm_80 or newer; this GPU is {}",
            gpu.arch()
        )
    })
}
/// Longest K one block of the weight gradient sums (K = the batch's output pixels, up to
/// 262,144 at crop 128): a few hundred K steps per block keep the f32 partial sums short, and
/// the splits are added in double.
const SPLIT_K: usize = 4096;
/// Shortest K a split covers when it is made only to fill the card: a shorter one would spend
/// more on writing and adding its partial output than it gains.
const MIN_SPLIT_K: usize = 256;

/// How a pass's K range is cut over blockIdx.z: (splits, chunk), chunk a whole number of K
/// steps `bk`. A grid of `blocks` blocks per split with fewer than two per SM gets more splits
/// (D's linear layer: 6 blocks over K = 6144), none shorter than [`MIN_SPLIT_K`]; no split
/// is longer than `max_chunk`; at most `max_splits`.
fn split_k(
    kdim: usize,
    bk: usize,
    blocks: usize,
    sm_count: usize,
    max_chunk: usize,
    max_splits: usize,
) -> (usize, usize) {
    let fill = (2 * sm_count).div_ceil(blocks.max(1));
    let splits = fill
        .min(kdim / MIN_SPLIT_K)
        .max(kdim.div_ceil(max_chunk))
        .clamp(1, max_splits.max(1));
    let chunk = kdim.div_ceil(splits).max(1).div_ceil(bk) * bk;
    (kdim.div_ceil(chunk).max(1), chunk)
}

/// The GEMM of one pass: C is `rows` × `cols` in each of `phases` grid layers (the input
/// gradient's stride phases), over K = `kdim` (the longest phase's), in splits of at most
/// `max_chunk`.
struct PassGemm {
    rows: usize,
    cols: usize,
    phases: usize,
    kdim: usize,
    max_chunk: usize,
}

/// `max_chunk` for no split of K: a pass that writes only part of its output (one stride phase
/// of dx) cannot have its splits summed over the whole output.
const NO_SPLIT: usize = 0;

/// The last argument of a conv kernel, after its placement arguments.
enum Epilogue<'a> {
    /// None: every kernel but the NHWC forward.
    None,
    /// The NHWC forward's bias pointer, null for a plain conv: with a bias, the kernel applies
    /// the layer's bias and leaky ReLU as it stores, unless the pass splits K (then the caller
    /// applies them to the sum).
    Bias(Option<&'a CudaSlice<f32>>),
}

/// Runs one pass, `f(in0, in1, out, shape args, chunk, placement args, epilogue)`, into `out`
/// (`len` elements), its K split by [`split_k`]: one split writes `out` directly, more write
/// per-split slices that `conv2d_sum_splits` adds in order (deterministic, in double).
/// Returns whether the kernel applied the epilogue's bias.
#[allow(clippy::too_many_arguments)]
fn launch_pass<T: DeviceRepr>(
    gpu: &Gpu,
    kn: &Kernel,
    (in0, in1): (&CudaSlice<T>, &CudaSlice<T>),
    out: &mut CudaSlice<f32>,
    len: usize,
    a: &Args,
    g: PassGemm,
    epilogue: Epilogue<'_>,
    what: &'static str,
) -> Result<bool, CudaError> {
    let blocks = layer_blocks(kn, g.cols, g.rows) * g.phases;
    let (max_chunk, max_splits) = if g.max_chunk == NO_SPLIT {
        (usize::MAX, 1)
    } else {
        (g.max_chunk, MAX_GRID_Z / g.phases)
    };
    let (splits, chunk) = split_k(g.kdim, kn.bk, blocks, gpu.sm_count(), max_chunk, max_splits);
    let cfg = grid(kn, g.cols, g.rows, g.phases * splits);
    let chunk = i32_arg("K chunk", chunk)?;
    let mut fused = false;
    let split = splits > 1;
    let mut part = if split {
        Some(gpu.alloc_out(splits * len)?)
    } else {
        None
    };
    {
        let mut l = gpu.stream().launch_builder(&kn.f);
        l.arg(in0).arg(in1);
        match part.as_mut() {
            Some(p) => l.arg(p),
            None => l.arg(&mut *out),
        };
        for v in &a.0 {
            l.arg(v);
        }
        l.arg(&chunk);
        for v in &a.1 {
            l.arg(v);
        }
        // A null pointer is 8 zero bytes.
        const NULL: u64 = 0;
        match epilogue {
            Epilogue::None => {}
            Epilogue::Bias(Some(b)) if !split => {
                l.arg(b);
                fused = true;
            }
            Epilogue::Bias(_) => {
                l.arg(&NULL);
            }
        }
        launch!(l, cfg, what)?;
    }
    if let Some(p) = part {
        let f = gpu.function("conv2d.cu", "conv2d_sum_splits")?;
        let (si, n) = (splits as i32, len as i64);
        let mut l = gpu.stream().launch_builder(&f);
        l.arg(&p).arg(out).arg(&si).arg(&n);
        launch!(l, grid_1d(len), "conv2d_sum_splits")?;
    }
    Ok(fused)
}

/// The shape arguments a conv kernel takes before its K chunk (the 10 of [`args`] for the
/// gathering kernels and the weight gradient; 12 for the NHWC forward), and after it (the
/// NHWC forward's output placement).
struct Args(Vec<i32>, Vec<i32>);

#[allow(clippy::too_many_arguments)]
fn args(
    n: usize,
    cin: usize,
    (h, w): (usize, usize),
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
    (ho, wo): (usize, usize),
) -> Result<Args, CudaError> {
    // Flattened pixel and row indices must fit i32 in the kernels.
    i32_arg("N*H*W", n * h * w)?;
    i32_arg("N*Ho*Wo", n * ho * wo)?;
    i32_arg("Cin*k*k", cin * k * k)?;
    i32_arg("Cout*k*k", cout * k * k)?;
    Ok(Args(
        [n, cin, h, w, cout, k, s, p, ho, wo]
            .iter()
            .map(|&v| v as i32)
            .collect(),
        Vec::new(),
    ))
}

/// One NHWC forward launch's geometry (`conv2d_fwd_nhwc`): input x (n, h, w, c), a kh × kw
/// kernel with `rows` output channels, stride s, padding (ph, pw) (may be negative), an
/// ho × wo result placed at (y0 + os·oh, x0 + os·ow) of an (n, rows, out_h, out_w) output.
struct NhwcFwd {
    n: usize,
    c: usize,
    hw: (usize, usize),
    rows: usize,
    taps: (usize, usize),
    s: usize,
    pad: (i64, i64),
    out: (usize, usize),
    placed: (usize, usize, usize, usize, usize),
}

impl NhwcFwd {
    fn args(&self) -> Result<Args, CudaError> {
        let (h, w) = self.hw;
        let (ho, wo) = self.out;
        let (out_h, out_w, os, y0, x0) = self.placed;
        i32_arg("N*H*W", self.n * h * w)?;
        i32_arg("N*Ho*Wo", self.n * ho * wo)?;
        i32_arg("K", self.taps.0 * self.taps.1 * self.c)?;
        i32_arg("output", self.n * out_h * out_w)?;
        let small = |v: i64| {
            i32::try_from(v).map_err(|_| CudaError::Shape(format!("conv padding {v} exceeds i32")))
        };
        Ok(Args(
            vec![
                self.n as i32,
                self.c as i32,
                h as i32,
                w as i32,
                self.rows as i32,
                self.taps.0 as i32,
                self.taps.1 as i32,
                self.s as i32,
                small(self.pad.0)?,
                small(self.pad.1)?,
                ho as i32,
                wo as i32,
            ],
            vec![out_h as i32, out_w as i32, os as i32, y0 as i32, x0 as i32],
        ))
    }
}

/// The grid of a pass whose C is `m_rows` × `n_cols`, with `layers` grid layers along z.
fn grid(kn: &Kernel, n_cols: usize, m_rows: usize, layers: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            n_cols.div_ceil(kn.bn) as u32,
            m_rows.div_ceil(kn.bm) as u32,
            layers as u32,
        ),
        block_dim: (kn.threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks in one grid layer of a pass whose C is `m_rows` × `n_cols`.
fn layer_blocks(kn: &Kernel, n_cols: usize, m_rows: usize) -> usize {
    n_cols.div_ceil(kn.bn) * m_rows.div_ceil(kn.bm)
}

/// Largest grid z (CUDA's limit).
const MAX_GRID_Z: usize = 65535;

fn geometry(h: usize, w: usize, k: usize, s: usize, p: usize) -> Result<(usize, usize), CudaError> {
    check(s >= 1 && k >= 1 && h + 2 * p >= k && w + 2 * p >= k, || {
        format!("conv: input {h}×{w} (pad {p}) vs kernel {k}, stride {s}")
    })?;
    Ok((conv_out_len(h, k, s, p), conv_out_len(w, k, s, p)))
}

/// y (N,Cout,Ho,Wo), as `ops::conv2d::conv2d_forward`; with a bias, then the layer's bias and
/// leaky ReLU (`fused_lrelu::forward`), in the conv's own store where the pass allows.
pub fn forward(
    gpu: &Gpu,
    prec: MatmulPrecision,
    x: &GpuTensor,
    w: &GpuTensor,
    stride: usize,
    pad: usize,
    bias: Option<&CudaSlice<f32>>,
) -> Result<GpuTensor, CudaError> {
    let [n, cin, h, wd] = x.shape;
    let [cout, wcin, k, k2] = w.shape;
    check(wcin == cin && k == k2, || {
        format!("conv2d: x {:?} vs w {:?}", x.shape, w.shape)
    })?;
    if let Some(b) = bias {
        check(b.len() >= cout, || "conv2d: bias length".into())?;
    }
    let (ho, wo) = geometry(h, wd, k, stride, pad)?;
    let a = args(n, cin, (h, wd), cout, k, stride, pad, (ho, wo))?;
    let mut y = GpuTensor::output(gpu, [n, cout, ho, wo])?;
    let len = y.len();
    let g = PassGemm {
        rows: cout,
        cols: n * ho * wo,
        phases: 1,
        kdim: cin * k * k,
        max_chunk: usize::MAX,
    };
    let fused = if nhwc_applies(prec, &[cin]) {
        let (xh, wh) = (nhwc_of(gpu, x)?, weight_rows_of(gpu, w)?);
        let kn = nhwc_kernel(gpu, "conv2d_fwd_nhwc", cout)?;
        let na = NhwcFwd {
            n,
            c: cin,
            hw: (h, wd),
            rows: cout,
            taps: (k, k),
            s: stride,
            pad: (pad as i64, pad as i64),
            out: (ho, wo),
            placed: (ho, wo, 1, 0, 0),
        }
        .args()?;
        launch_pass(
            gpu,
            &kn,
            (&xh, &wh),
            y.buf_mut(),
            len,
            &na,
            g,
            Epilogue::Bias(bias),
            "conv2d_fwd_nhwc",
        )?
    } else {
        let kn = kernel(gpu, prec, "conv2d_fwd", cout)?;
        launch_pass(
            gpu,
            &kn,
            (x.buf(), w.buf()),
            y.buf_mut(),
            len,
            &a,
            g,
            Epilogue::None,
            "conv2d_fwd",
        )?
    };
    if let Some(b) = bias.filter(|_| !fused) {
        super::fused_lrelu::forward(gpu, &mut y, b)?;
    }
    Ok(y)
}

/// dx (N,Cin,H,W) from dy, as `ops::conv2d::conv2d_backward_input`.
pub fn backward_input(
    gpu: &Gpu,
    prec: MatmulPrecision,
    dy: &GpuTensor,
    w: &GpuTensor,
    stride: usize,
    pad: usize,
    in_hw: (usize, usize),
) -> Result<GpuTensor, CudaError> {
    let [n, cout, ho, wo] = dy.shape;
    let [wcout, cin, k, k2] = w.shape;
    check(wcout == cout && k == k2, || {
        format!(
            "conv2d backward_input: dy {:?} vs w {:?}",
            dy.shape, w.shape
        )
    })?;
    let (h, wd) = in_hw;
    check(geometry(h, wd, k, stride, pad)? == (ho, wo), || {
        format!(
            "conv2d backward_input: dy {:?} does not fit input {in_hw:?}",
            dy.shape
        )
    })?;
    let mut dx = GpuTensor::output(gpu, [n, cin, h, wd])?;
    if nhwc_applies(prec, &[cout]) {
        // By stride phase (hr, wr) (kernels/conv_gather.cuh): dx at (s·hq + hr − p, ...) is the
        // stride-1 conv of dy with the phase's taps turned by 180° and Cin, Cout swapped, whose
        // window at hq starts at row hq − (taps − 1). Stride 1 is one phase covering dx; with
        // more, a phase without taps leaves its pixels zero.
        let dyh = nhwc_of(gpu, dy)?;
        if stride > 1 {
            dx = GpuTensor::zeros(gpu, [n, cin, h, wd])?;
        }
        for (hr, wr) in (0..stride).flat_map(|hr| (0..stride).map(move |wr| (hr, wr))) {
            let taps = (phase_taps(k, stride, hr), phase_taps(k, stride, wr));
            let px = (
                phase_pixels(h, stride, pad, hr),
                phase_pixels(wd, stride, pad, wr),
            );
            if taps.0 == 0 || taps.1 == 0 || px.0 == 0 || px.1 == 0 {
                continue;
            }
            let first = (phase_first(stride, pad, hr), phase_first(stride, pad, wr));
            let wh = weight_phase_to_bf16(gpu, w, (stride, hr, wr))?;
            let na = NhwcFwd {
                n,
                c: cout,
                hw: (ho, wo),
                rows: cin,
                taps,
                s: 1,
                pad: (
                    taps.0 as i64 - 1 - first.0 as i64,
                    taps.1 as i64 - 1 - first.1 as i64,
                ),
                out: px,
                placed: (
                    h,
                    wd,
                    stride,
                    stride * first.0 + hr - pad,
                    stride * first.1 + wr - pad,
                ),
            }
            .args()?;
            let kn = nhwc_kernel(gpu, "conv2d_fwd_nhwc", cin)?;
            let len = dx.len();
            let g = PassGemm {
                rows: cin,
                cols: n * px.0 * px.1,
                phases: 1,
                kdim: cout * taps.0 * taps.1,
                max_chunk: if stride == 1 { usize::MAX } else { NO_SPLIT },
            };
            launch_pass(
                gpu,
                &kn,
                (&dyh, &wh),
                dx.buf_mut(),
                len,
                &na,
                g,
                Epilogue::Bias(None),
                "conv2d_bwd_input_nhwc",
            )?;
        }
        return Ok(dx);
    }
    let a = args(n, cin, (h, wd), cout, k, stride, pad, (ho, wo))?;
    let kn = kernel(gpu, prec, "conv2d_bwd_input", cin)?;
    // One grid layer per stride phase (kernels/conv_gather.cuh), as wide as the largest, and
    // per split of the largest phase's K (cout · its taps).
    let phases = (0..stride).flat_map(|hr| (0..stride).map(move |wr| (hr, wr)));
    let widest = phases
        .map(|(hr, wr)| phase_pixels(h, stride, pad, hr) * phase_pixels(wd, stride, pad, wr))
        .max()
        .unwrap_or(0);
    let len = dx.len();
    let g = PassGemm {
        rows: cin,
        cols: n * widest,
        phases: stride * stride,
        kdim: cout * k.div_ceil(stride).pow(2),
        max_chunk: usize::MAX,
    };
    launch_pass(
        gpu,
        &kn,
        (dy.buf(), w.buf()),
        dx.buf_mut(),
        len,
        &a,
        g,
        Epilogue::None,
        "conv2d_bwd_input",
    )?;
    Ok(dx)
}

/// Taps kh = r + s·i of the stride phase r of a k-tap axis: the kernels' `conv_phase_taps`.
fn phase_taps(k: usize, s: usize, r: usize) -> usize {
    if r < k { (k - r).div_ceil(s) } else { 0 }
}

/// The first q of the stride phase r (its input position s·q + r − p ≥ 0): the kernels'
/// `conv_phase_first`.
fn phase_first(s: usize, p: usize, r: usize) -> usize {
    (p + s - 1 - r) / s
}

/// Input positions i = s·q + r − p (0 ≤ i < len) of the stride phase r of one axis: the
/// kernels' `conv_phase_pixels`.
fn phase_pixels(len: usize, s: usize, p: usize, r: usize) -> usize {
    let first = (p + s - 1 - r) / s;
    match (len + p).checked_sub(1 + r) {
        Some(last) => (last / s + 1).saturating_sub(first),
        None => 0,
    }
}

/// dw (Cout,Cin,k,k) summed over the batch, as `ops::conv2d::conv2d_backward_weight`.
pub fn backward_weight(
    gpu: &Gpu,
    prec: MatmulPrecision,
    x: &GpuTensor,
    dy: &GpuTensor,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<GpuTensor, CudaError> {
    let [n, cin, h, wd] = x.shape;
    let [dn, cout, ho, wo] = dy.shape;
    check(n == dn, || {
        "conv2d backward_weight: batch of x and dy".into()
    })?;
    check(geometry(h, wd, k, stride, pad)? == (ho, wo), || {
        format!(
            "conv2d backward_weight: dy {:?} does not fit x {:?}",
            dy.shape, x.shape
        )
    })?;
    let a = args(n, cin, (h, wd), cout, k, stride, pad, (ho, wo))?;
    let rows = cin * k * k;
    let mut dw = GpuTensor::output(gpu, [cout, cin, k, k])?;
    let g = PassGemm {
        rows: cout,
        cols: rows,
        phases: 1,
        kdim: n * ho * wo,
        max_chunk: SPLIT_K,
    };
    if nhwc_applies(prec, &[cin, cout]) {
        let (xh, dyh) = (nhwc_of(gpu, x)?, nhwc_of(gpu, dy)?);
        let kn = nhwc_kernel(gpu, "conv2d_bwd_weight_nhwc", cout)?;
        let len = cout * rows;
        launch_pass(
            gpu,
            &kn,
            (&xh, &dyh),
            dw.buf_mut(),
            len,
            &a,
            g,
            Epilogue::None,
            "conv2d_bwd_weight_nhwc",
        )?;
        return Ok(dw);
    }
    let kn = kernel(gpu, prec, "conv2d_bwd_weight", cout)?;
    launch_pass(
        gpu,
        &kn,
        (x.buf(), dy.buf()),
        dw.buf_mut(),
        cout * rows,
        &a,
        g,
        Epilogue::None,
        "conv2d_bwd_weight",
    )?;
    Ok(dw)
}

/// PyTorch conv_transpose2d (padding 0): x (N,Cin,H,W), w (Cin,Cout,k,k) →
/// (N,Cout,(H−1)·s+k,(W−1)·s+k), as `ops::conv2d::conv_transpose2d_forward`.
pub fn conv_transpose2d_forward(
    gpu: &Gpu,
    prec: MatmulPrecision,
    x: &GpuTensor,
    w: &GpuTensor,
    stride: usize,
) -> Result<GpuTensor, CudaError> {
    let (h, wd) = x.hw();
    let k = w.shape[2];
    check(h >= 1 && wd >= 1, || "conv_transpose2d: empty input".into())?;
    backward_input(
        gpu,
        prec,
        x,
        w,
        stride,
        0,
        ((h - 1) * stride + k, (wd - 1) * stride + k),
    )
}

/// dL/dx of conv_transpose2d_forward.
pub fn conv_transpose2d_backward_input(
    gpu: &Gpu,
    prec: MatmulPrecision,
    dy: &GpuTensor,
    w: &GpuTensor,
    stride: usize,
) -> Result<GpuTensor, CudaError> {
    forward(gpu, prec, dy, w, stride, 0, None)
}

/// dL/dw (Cin,Cout,k,k) of conv_transpose2d_forward, summed over the batch.
pub fn conv_transpose2d_backward_weight(
    gpu: &Gpu,
    prec: MatmulPrecision,
    x: &GpuTensor,
    dy: &GpuTensor,
    k: usize,
    stride: usize,
) -> Result<GpuTensor, CudaError> {
    backward_weight(gpu, prec, dy, x, k, stride, 0)
}

/// One `sincut_mma_bf16_16816` (kernel `mma_bf16_selftest` of conv2d_bf16.cu, one warp): D =
/// A·B + C with A 16×16, B 16×8 and C 16×8 row-major f32 (A and B rounded to bf16 as the conv
/// kernels round them). The kernel reads and writes the fragments by the PTX ISA's layouts, so
/// a wrong layout (in the emulator, or in the helper on a GPU) shows here. Returns D (128
/// values) followed by 32 words: the bits of `sincut_pack_bf16x2(a[i], b[i])`, i < 32.
pub fn mma_selftest(gpu: &Gpu, a: &[f32], b: &[f32], c: &[f32]) -> Result<Vec<f32>, CudaError> {
    check(a.len() == 256 && b.len() == 128 && c.len() == 128, || {
        "mma_selftest: A 16×16, B 16×8, C 16×8".into()
    })?;
    check_bf16(gpu)?;
    let (ab, bb, cb) = (gpu.upload(a)?, gpu.upload(b)?, gpu.upload(c)?);
    let mut d = gpu.alloc_out(160)?;
    let f = gpu.function("conv2d_bf16.cu", "mma_bf16_selftest")?;
    let mut l = gpu.stream().launch_builder(&f);
    l.arg(&ab).arg(&bb).arg(&cb).arg(&mut d);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (32, 1, 1),
        shared_mem_bytes: 0,
    };
    launch!(l, cfg, "mma_bf16_selftest")?;
    gpu.download(&d)
}

#[cfg(test)]
mod tests {
    use super::{MIN_SPLIT_K, SPLIT_K, phase_first, phase_pixels, phase_taps, split_k};

    /// Splits are whole K steps, cover K with no empty split, respect the longest chunk and the
    /// split limit, and appear only where the grid leaves SMs idle and K is long enough.
    #[test]
    fn split_k_covers_k_in_whole_steps() {
        for kdim in [1, 15, 16, 255, 256, 300, 720, 3456, 6144, 262_144] {
            for bk in [16, 32] {
                for blocks in [1, 6, 24, 263, 264, 5000] {
                    for (max_chunk, max_splits) in
                        [(usize::MAX, 65535), (SPLIT_K, 65535), (usize::MAX, 3)]
                    {
                        let (splits, chunk) = split_k(kdim, bk, blocks, 132, max_chunk, max_splits);
                        let tag = format!(
                            "K {kdim} bk {bk} blocks {blocks} max {max_chunk}/{max_splits}"
                        );
                        assert!(splits >= 1 && splits <= max_splits, "{tag}: {splits}");
                        assert_eq!(chunk % bk, 0, "{tag}");
                        assert!(splits * chunk >= kdim, "{tag}: {splits}×{chunk}");
                        assert!((splits - 1) * chunk < kdim, "{tag}: empty split");
                        if max_chunk == SPLIT_K {
                            assert!(chunk <= SPLIT_K, "{tag}: chunk {chunk}");
                        } else if splits > 1 {
                            assert!(blocks < 264, "{tag}: split a full grid");
                            assert!(chunk >= MIN_SPLIT_K, "{tag}: chunk {chunk}");
                        }
                    }
                }
            }
        }
        // D's linear layer (6 blocks over K = 6144) is spread over the card.
        let (splits, chunk) = split_k(6144, 16, 6, 132, usize::MAX, 65535);
        assert!(
            splits * 6 >= 66 && chunk >= MIN_SPLIT_K,
            "{splits} × {chunk}"
        );
    }

    /// The phases of an axis cover every input position once, each with the count the kernel
    /// enumerates (positions s·q + r − p from q = first), and every tap once.
    #[test]
    fn stride_phases_partition_the_input() {
        for s in 1..=3 {
            for k in 1..=4 {
                let taps: usize = (0..s).map(|r| phase_taps(k, s, r)).sum();
                assert_eq!(taps, k, "k {k} s {s}");
                for r in 0..s {
                    assert_eq!(
                        phase_taps(k, s, r),
                        (r..k).step_by(s).count(),
                        "k {k} s {s} r {r}"
                    );
                }
            }
            for p in 0..=3 {
                for r in 0..s {
                    // The first q whose position s·q + r − p is ≥ 0.
                    let q = phase_first(s, p, r);
                    assert!(
                        s * q + r >= p && (q == 0 || s * (q - 1) + r < p),
                        "s {s} p {p} r {r}"
                    );
                }
                for len in 1..=9 {
                    let mut total = 0;
                    for r in 0..s {
                        let want = (0..len).filter(|i| (i + p) % s == r).count();
                        assert_eq!(
                            phase_pixels(len, s, p, r),
                            want,
                            "len {len} s {s} p {p} r {r}"
                        );
                        total += want;
                    }
                    assert_eq!(total, len);
                }
            }
        }
    }
}
