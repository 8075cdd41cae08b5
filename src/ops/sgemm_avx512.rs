//! Single-precision GEMM with AVX-512F: C = α·A·B + β·C for operands with arbitrary strides.
//!
//! Goto/BLIS structure. B is packed per (KC × NC) block into NR-column strips, A per (MC × KC)
//! block into MR-row strips (α folded into A while packing); a register-blocked micro-kernel
//! then computes an MR × NR tile of C from one strip of each. The loop order (jc → pc → ic →
//! jr → ir) keeps one B strip (KC × NR) in L1 while it meets every A strip of the block (in L2).
//!
//! The vector axis is C's columns, so a row-major C (the convolution outputs) is stored with
//! plain (masked at the right edge) vector stores; a column-major C is handled by computing
//! Cᵀ = Bᵀ·Aᵀ instead, and any other C layout goes through a small scratch tile.
//!
//! bf16 products ([`Mode::Bf16Dot`]) keep the structure: the packed f32 strips are converted
//! to pairs of bf16 (two depths per 32-bit word, rounded to nearest even) and the micro-kernel
//! runs `vdpbf16ps`, 32 multiply-adds per instruction where f32 FMA does 16, accumulating in f32.
//! [`Mode::Bf16Rounded`] rounds the packed strips in place and runs the f32 kernel: the same
//! operands on CPUs without AVX512_BF16, so `--precision bf16` means the same everywhere.

use ndarray::{ArrayView2, ArrayViewMut2};
use std::arch::x86_64::*;

/// Rows of a C tile (broadcast operand). 12 rows × 2 zmm = 24 accumulators: with Zen 5's two
/// 4-cycle FMA pipes at least 8 independent chains are needed, and 24 leaves room for the two
/// B vectors and the broadcasts within the 32 zmm registers.
const MR: usize = 12;
/// zmm registers per tile row; NR = 16·NV columns (the vector operand).
const NV: usize = 2;
const NR: usize = 16 * NV;
/// Depth of one packed block: a B strip is KC × NR × 4 B = 32 KiB at KC = 256 (L1 is 48 KiB).
const KC: usize = 256;
/// Rows of one packed A block: MC × KC × 4 B = 240 KiB, well inside the 1 MiB L2.
const MC: usize = 20 * MR;
/// Columns of one packed B block: KC × NC × 4 B = 4 MiB, a fraction of the L3.
const NC: usize = 128 * NR;

/// C tile shape of the micro-kernel (thread splits align to it).
pub const TILE_ROWS: usize = MR;
pub const TILE_COLS: usize = NR;

/// Whether this CPU runs the AVX-512 kernel (detected once).
pub fn available() -> bool {
    static A: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *A.get_or_init(|| is_x86_feature_detected!("avx512f"))
}

/// Whether this CPU runs the `vdpbf16ps` kernel ([`Mode::Bf16Dot`]; detected once).
pub fn bf16_available() -> bool {
    static A: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *A.get_or_init(|| {
        available()
            && is_x86_feature_detected!("avx512bf16")
            && is_x86_feature_detected!("avx512bw")
    })
}

/// What the kernel multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The f32 operands, f32 FMA.
    F32,
    /// Operands rounded to bf16 (nearest even) while packing, then the f32 FMA kernel.
    Bf16Rounded,
    /// Operands converted to bf16 pairs while packing, `vdpbf16ps` with f32 accumulation.
    /// Needs [`bf16_available`].
    Bf16Dot,
}

/// Packing buffers, kept for reuse: the worker threads are spawned afresh for each parallel
/// section, so thread-locals would be allocated (and zeroed) on every call.
#[derive(Default)]
struct Buffers {
    /// A and B blocks in f32.
    a: Vec<f32>,
    b: Vec<f32>,
    /// The same blocks as bf16 pairs (Bf16Dot only).
    a16: Vec<u32>,
    b16: Vec<u32>,
}

static POOL: std::sync::Mutex<Vec<Buffers>> = std::sync::Mutex::new(Vec::new());

/// c = alpha·a·b + beta·c in f32. With `beta == 0` c is overwritten without being read.
/// Panics when the shapes disagree or the CPU lacks AVX-512F (check [`available`]).
pub fn sgemm(
    alpha: f32,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    beta: f32,
    c: &mut ArrayViewMut2<f32>,
) {
    sgemm_mode(Mode::F32, alpha, a, b, beta, c);
}

/// c = alpha·a·b + beta·c with the products of `mode` (a and b rounded to bf16 in the bf16
/// modes; alpha, beta and c stay f32). Panics when the shapes disagree or the CPU lacks the
/// mode's instructions.
pub fn sgemm_mode(
    mode: Mode,
    alpha: f32,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    beta: f32,
    c: &mut ArrayViewMut2<f32>,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "sgemm: a {:?} b {:?} c {:?}",
        a.dim(),
        b.dim(),
        c.dim()
    );
    assert!(available(), "sgemm: AVX-512F not available");
    assert!(
        mode != Mode::Bf16Dot || bf16_available(),
        "sgemm: AVX512_BF16 not available"
    );
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let mut mat_a = Mat {
        p: a.as_ptr(),
        rs: sa[0],
        cs: sa[1],
    };
    let mut mat_b = Mat {
        p: b.as_ptr(),
        rs: sb[0],
        cs: sb[1],
    };
    let (mut rsc, mut csc) = (sc[0], sc[1]);
    // A length-1 axis may carry any stride; give it the one that makes the layout contiguous.
    if n == 1 {
        csc = 1;
    }
    if m == 1 && n != 1 {
        rsc = 1;
    }
    let cp = c.as_mut_ptr();
    // SAFETY: the pointers and strides come from live views of the stated shapes, c is borrowed
    // mutably (and a view's elements never alias each other), and AVX-512F was detected.
    unsafe {
        // Column-major C: Cᵀ = Bᵀ·Aᵀ has a row-major result. A C only a few columns wide
        // (e.g. 80 × 3 weight gradients) is also solved transposed, as most of each NR-wide
        // vector would be padding otherwise; the scratch-tile stores cost little there.
        if (csc != 1 && rsc == 1) || (n < 16 && m > n) {
            std::mem::swap(&mut mat_a, &mut mat_b);
            std::mem::swap(&mut mat_a.rs, &mut mat_a.cs);
            std::mem::swap(&mut mat_b.rs, &mut mat_b.cs);
            driver(mode, n, m, k, alpha, mat_a, mat_b, beta, cp, csc, rsc);
        } else {
            driver(mode, m, n, k, alpha, mat_a, mat_b, beta, cp, rsc, csc);
        }
    }
}

/// A strided matrix operand: element (i, j) at `p + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct Mat {
    p: *const f32,
    rs: isize,
    cs: isize,
}

impl Mat {
    /// Address arithmetic only (wrapping, so a masked-off edge address is never UB);
    /// whoever dereferences it must keep (i, j) inside the matrix or mask the access.
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> *const f32 {
        self.p
            .wrapping_offset(i as isize * self.rs + j as isize * self.cs)
    }
}

/// Where the kernel finds B: a packed block or, for one row of tiles, B itself.
#[derive(Clone, Copy)]
struct BSrc {
    p: *const f32,
    /// Offset from one NR-column strip to the next.
    strip: isize,
    /// Offset from one depth to the next within a strip.
    row: isize,
    direct: bool,
}

/// Splits `len` into blocks of at most `max`, of nearly equal size rounded up to `align`
/// (so that e.g. k = 300 becomes 152 + 148 rather than 256 + 44).
fn block_len(len: usize, max: usize, align: usize) -> usize {
    let blocks = len.div_ceil(max);
    len.div_ceil(blocks).div_ceil(align) * align
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn driver(
    mode: Mode,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        // Nothing to add: only the β scaling remains.
        for i in 0..m {
            for j in 0..n {
                let e = unsafe { c.offset(i as isize * rsc + j as isize * csc) };
                unsafe { *e = if beta == 0.0 { 0.0 } else { beta * *e } };
            }
        }
        return;
    }
    // With a single row of tiles each B value is used once, so packing B would only add a
    // copy (this is the 3-channel RGB layer): the kernel then reads B's rows in place (f32
    // only: the bf16 modes need B rounded, hence packed).
    let direct_b = mode == Mode::F32 && m <= MR && b.cs == 1 && n > 1;
    // f32 folds α into the packed A; the bf16 modes must round A itself, so the tile applies α.
    let (alpha_a, alpha_c) = if mode == Mode::F32 {
        (alpha, 1.0)
    } else {
        (1.0, alpha)
    };
    let kc_max = block_len(k, KC, 8);
    let mc_max = block_len(m, MC, MR);
    let nc_max = block_len(n, NC, NR);
    let mut bufs = POOL.lock().unwrap().pop().unwrap_or_default();
    {
        let (alen, blen) = (mc_max * kc_max, nc_max * kc_max);
        grow(&mut bufs.a, alen);
        grow(&mut bufs.b, blen);
        if mode == Mode::Bf16Dot {
            grow(&mut bufs.a16, alen / 2);
            grow(&mut bufs.b16, blen / 2);
        }
        let (ap, bp) = (bufs.a.as_mut_ptr(), bufs.b.as_mut_ptr());
        let (ap16, bp16) = (bufs.a16.as_mut_ptr(), bufs.b16.as_mut_ptr());
        let mut jc = 0;
        while jc < n {
            let nc = nc_max.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kc = kc_max.min(k - pc);
                // Later depth blocks add onto what the first one stored.
                let beta_p = if pc == 0 { beta } else { 1.0 };
                let bsrc = if direct_b {
                    // Rows of B used in place: strips NR columns apart, depths one row apart.
                    BSrc {
                        p: b.at(pc, jc),
                        strip: NR as isize,
                        row: b.rs,
                        direct: true,
                    }
                } else {
                    unsafe { pack_b(&b, pc, kc, jc, nc, bp) };
                    let strips = nc.div_ceil(NR);
                    match mode {
                        Mode::F32 => {}
                        Mode::Bf16Rounded => unsafe { round_in_place(bp, strips * kc * NR) },
                        Mode::Bf16Dot => unsafe { to_pairs::<NR>(bp, strips, kc, bp16) },
                    }
                    BSrc {
                        p: bp,
                        strip: (kc * NR) as isize,
                        row: NR as isize,
                        direct: false,
                    }
                };
                let mut ic = 0;
                while ic < m {
                    let mc = mc_max.min(m - ic);
                    unsafe { pack_a(&a, alpha_a, ic, mc, pc, kc, ap) };
                    let strips = mc.div_ceil(MR);
                    match mode {
                        Mode::F32 => {}
                        Mode::Bf16Rounded => unsafe { round_in_place(ap, strips * kc * MR) },
                        Mode::Bf16Dot => unsafe { to_pairs::<MR>(ap, strips, kc, ap16) },
                    }
                    let packed = if mode == Mode::Bf16Dot {
                        Packed::Pairs(ap16, bp16)
                    } else {
                        Packed::F32(ap, &bsrc)
                    };
                    unsafe {
                        macro_kernel(mc, nc, kc, packed, alpha_c, beta_p, c, ic, jc, rsc, csc)
                    };
                    ic += mc;
                }
                pc += kc;
            }
            jc += nc;
        }
    }
    POOL.lock().unwrap().push(bufs);
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// Rounds `len` packed f32 values to bf16 (nearest even, as `half::bf16::from_f32`), in place.
#[target_feature(enable = "avx512f")]
unsafe fn round_in_place(p: *mut f32, len: usize) {
    let mut i = 0;
    while i < len {
        let mask = ((1u32 << (len - i).min(16)) - 1) as u16;
        unsafe {
            let x = _mm512_maskz_loadu_ps(mask, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), mask, round_bf16x16(x));
        }
        i += 16;
    }
}

/// 16 f32 values rounded to the nearest bf16 (ties to even), kept as f32; NaN stays NaN.
#[inline]
#[target_feature(enable = "avx512f")]
fn round_bf16x16(x: __m512) -> __m512 {
    let bits = _mm512_castps_si512(x);
    // bits + 0x7FFF + (bit 16), then clear the low half: round to nearest, ties to even.
    let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
    let up = _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), odd);
    let rounded = _mm512_and_si512(up, _mm512_set1_epi32(0xFFFF_0000u32 as i32));
    // NaN payloads could carry into the exponent: keep a NaN as the quiet NaN of its sign.
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    let quiet = _mm512_or_si512(bits, _mm512_set1_epi32(0x0040_0000));
    let quiet = _mm512_and_si512(quiet, _mm512_set1_epi32(0xFFFF_0000u32 as i32));
    _mm512_castsi512_ps(_mm512_mask_blend_epi32(nan, rounded, quiet))
}

/// Converts `strips` packed f32 strips (kc depths × L values each) into bf16 pairs: strip s,
/// depth pair q, lane j holds depth 2q in its low half and 2q + 1 in its high half (zero past
/// an odd kc), which is how `vdpbf16ps` pairs its operands.
#[target_feature(enable = "avx512f,avx512bf16,avx512bw")]
unsafe fn to_pairs<const L: usize>(src: *const f32, strips: usize, kc: usize, dst: *mut u32) {
    let kp = kc.div_ceil(2);
    // Lanes 0..16 of cvtne2ps are the second operand, 16..32 the first: interleave them.
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    );
    for s in 0..strips {
        let (sp, dp) = unsafe { (src.add(s * kc * L), dst.add(s * kp * L)) };
        for q in 0..kp {
            for v in 0..L.div_ceil(16) {
                let lanes = (L - 16 * v).min(16);
                let mask = ((1u32 << lanes) - 1) as u16;
                unsafe {
                    let lo = _mm512_maskz_loadu_ps(mask, sp.add(2 * q * L + 16 * v));
                    let hi = if 2 * q + 1 < kc {
                        _mm512_maskz_loadu_ps(mask, sp.add((2 * q + 1) * L + 16 * v))
                    } else {
                        _mm512_setzero_ps()
                    };
                    let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                    let pairs = _mm512_permutexvar_epi16(idx, both);
                    _mm512_mask_storeu_epi32(dp.add(q * L + 16 * v).cast(), mask, pairs);
                }
            }
        }
    }
}

/// The packed operands of one block, as the micro-kernels read them.
#[derive(Clone, Copy)]
enum Packed<'a> {
    F32(*const f32, &'a BSrc),
    /// A and B as bf16 pairs (strips of kc.div_ceil(2) depth pairs).
    Pairs(*const u32, *const u32),
}

/// Packs B[pc..pc+kc, jc..jc+nc] into strips of NR columns: strip s holds, for each depth p,
/// NR consecutive values (zero past column nc, so the kernel never branches on width).
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(b: &Mat, pc: usize, kc: usize, jc: usize, nc: usize, dst: *mut f32) {
    let strips = nc.div_ceil(NR);
    if b.cs == 1 {
        // Rows of B are contiguous: read each row once, front to back (prefetch-friendly),
        // scattering NR-value pieces to the strips; the last piece is masked and zero-filled.
        let last = col_masks(nc - (strips - 1) * NR);
        for p in 0..kc {
            let src = b.at(pc + p, jc);
            for s in 0..strips {
                let d = unsafe { dst.add(s * kc * NR + p * NR) };
                for (v, &lm) in last.iter().enumerate() {
                    unsafe {
                        let x = if s + 1 < strips {
                            _mm512_loadu_ps(src.wrapping_add(s * NR + 16 * v))
                        } else {
                            _mm512_maskz_loadu_ps(lm, src.wrapping_add(s * NR + 16 * v))
                        };
                        _mm512_storeu_ps(d.add(16 * v), x);
                    }
                }
            }
        }
        return;
    }
    for s in 0..strips {
        let j0 = jc + s * NR;
        let w = NR.min(jc + nc - j0);
        let d = unsafe { dst.add(s * kc * NR) };
        if b.rs == 1 {
            // Transposed B (the backward-weight colsᵀ): each column is contiguous along depth.
            // 16 columns × 16 depths are loaded as 16 vectors and transposed in registers.
            for v in 0..NV {
                let cols = w.saturating_sub(16 * v).min(16);
                let mut p0 = 0;
                while p0 < kc {
                    let pl = (kc - p0).min(16);
                    let pmask = ((1u32 << pl) - 1) as u16;
                    let rows: [__m512; 16] = std::array::from_fn(|jj| {
                        if jj < cols {
                            unsafe { _mm512_maskz_loadu_ps(pmask, b.at(pc + p0, j0 + 16 * v + jj)) }
                        } else {
                            _mm512_setzero_ps()
                        }
                    });
                    let t = transpose16(rows);
                    for (q, tq) in t.iter().enumerate().take(pl) {
                        unsafe { _mm512_storeu_ps(d.add((p0 + q) * NR + 16 * v), *tq) };
                    }
                    p0 += pl;
                }
            }
            continue;
        }
        {
            // General strides: element by element.
            for jj in 0..NR {
                if jj < w {
                    for p in 0..kc {
                        unsafe { *d.add(p * NR + jj) = *b.at(pc + p, j0 + jj) };
                    }
                } else {
                    for p in 0..kc {
                        unsafe { *d.add(p * NR + jj) = 0.0 };
                    }
                }
            }
        }
    }
}

/// Transposes a 16 × 16 block held as 16 row vectors: out[j] lane i = r[i] lane j.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // 1: interleave row pairs per 32-bit element: t[2k], t[2k+1] hold rows 2k, 2k+1.
    let mut t = [_mm512_setzero_ps(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    // 2: interleave pairs of pairs per 64 bits: lane l of u[4k + c] is column 4l + c of rows
    // 4k..4k+4.
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    let mut u = [_mm512_setzero_ps(); 16];
    for k in 0..4 {
        let (a0, a1, a2, a3) = (
            pd(t[4 * k]),
            pd(t[4 * k + 1]),
            pd(t[4 * k + 2]),
            pd(t[4 * k + 3]),
        );
        u[4 * k] = ps(_mm512_unpacklo_pd(a0, a2));
        u[4 * k + 1] = ps(_mm512_unpackhi_pd(a0, a2));
        u[4 * k + 2] = ps(_mm512_unpacklo_pd(a1, a3));
        u[4 * k + 3] = ps(_mm512_unpackhi_pd(a1, a3));
    }
    // 3, 4: gather lane l of u[c], u[4 + c], u[8 + c], u[12 + c] into column 4l + c.
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let (u0, u1, u2, u3) = (u[c], u[4 + c], u[8 + c], u[12 + c]);
        let v0 = _mm512_shuffle_f32x4::<0x44>(u0, u1); // u0.l0 u0.l1 u1.l0 u1.l1
        let v1 = _mm512_shuffle_f32x4::<0xEE>(u0, u1); // u0.l2 u0.l3 u1.l2 u1.l3
        let v2 = _mm512_shuffle_f32x4::<0x44>(u2, u3);
        let v3 = _mm512_shuffle_f32x4::<0xEE>(u2, u3);
        out[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2); // lane 0 of u0..u3
        out[4 + c] = _mm512_shuffle_f32x4::<0xDD>(v0, v2); // lane 1
        out[8 + c] = _mm512_shuffle_f32x4::<0x88>(v1, v3); // lane 2
        out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v1, v3); // lane 3
    }
    out
}

/// Packs α·A[ic..ic+mc, pc..pc+kc] into strips of MR rows: strip s holds, for each depth p,
/// MR consecutive values (zero past row mc).
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(a: &Mat, alpha: f32, ic: usize, mc: usize, pc: usize, kc: usize, dst: *mut f32) {
    let strips = mc.div_ceil(MR);
    for s in 0..strips {
        let i0 = ic + s * MR;
        let h = MR.min(ic + mc - i0);
        let d = unsafe { dst.add(s * kc * MR) };
        // MR ≤ 16 values per depth: one vector, masked to the strip (zero past row h).
        let strip_mask: __mmask16 = ((1u32 << MR) - 1) as u16;
        let av = _mm512_set1_ps(alpha);
        if a.rs == 1 {
            // Columns of A are contiguous (a transposed view): h values per depth.
            let rows_mask = ((1u32 << h) - 1) as u16;
            for p in 0..kc {
                unsafe {
                    let x = _mm512_maskz_loadu_ps(rows_mask, a.at(i0, pc + p));
                    _mm512_mask_storeu_ps(d.add(p * MR), strip_mask, _mm512_mul_ps(x, av));
                }
            }
        } else if a.cs == 1 {
            // Rows of A are contiguous (the weights in the forward pass): 16 depths of each
            // row at a time, transposed in registers (rows past h stay zero).
            let mut p0 = 0;
            while p0 < kc {
                let pl = (kc - p0).min(16);
                let pmask = ((1u32 << pl) - 1) as u16;
                let rows: [__m512; 16] = std::array::from_fn(|ii| {
                    if ii < h {
                        unsafe { _mm512_maskz_loadu_ps(pmask, a.at(i0 + ii, pc + p0)) }
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                let t = transpose16(rows);
                for (q, tq) in t.iter().enumerate().take(pl) {
                    unsafe {
                        _mm512_mask_storeu_ps(
                            d.add((p0 + q) * MR),
                            strip_mask,
                            _mm512_mul_ps(*tq, av),
                        )
                    };
                }
                p0 += pl;
            }
        } else {
            for ii in 0..MR {
                if ii < h {
                    for p in 0..kc {
                        unsafe { *d.add(p * MR + ii) = alpha * *a.at(i0 + ii, pc + p) };
                    }
                } else {
                    for p in 0..kc {
                        unsafe { *d.add(p * MR + ii) = 0.0 };
                    }
                }
            }
        }
    }
}

/// Lane masks for the NV vectors of a tile row `w` columns wide.
#[inline(always)]
fn col_masks(w: usize) -> [__mmask16; NV] {
    std::array::from_fn(|v| {
        let lanes = w.saturating_sub(16 * v).min(16);
        ((1u32 << lanes) - 1) as u16
    })
}

/// One packed (mc × kc) A block times one packed (kc × nc) B block into C at (ic, jc):
/// C = alpha·A·B + beta·C (alpha is 1 where the packing folded it into A).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn macro_kernel(
    mc: usize,
    nc: usize,
    kc: usize,
    packed: Packed,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    ic: usize,
    jc: usize,
    rsc: isize,
    csc: isize,
) {
    let kp = kc.div_ceil(2);
    let mut scratch = [0.0f32; MR * NR];
    for s in 0..nc.div_ceil(NR) {
        let j0 = s * NR;
        let w = NR.min(nc - j0);
        let masks = col_masks(w);
        for t in 0..mc.div_ceil(MR) {
            let i0 = t * MR;
            let h = MR.min(mc - i0);
            let ci = unsafe { c.offset((ic + i0) as isize * rsc + (jc + j0) as isize * csc) };
            // One tile into (c, its row stride, beta): C itself, or the scratch tile.
            let run = |c: *mut f32, rsc: isize, beta: f32| match packed {
                Packed::F32(ap, bp) => {
                    let b = BSrc {
                        p: unsafe { bp.p.offset(s as isize * bp.strip) },
                        ..*bp
                    };
                    let a = unsafe { ap.add(t * kc * MR) };
                    unsafe { tile(h, kc, a, &b, alpha, beta, c, rsc, masks) }
                }
                Packed::Pairs(ap, bp) => unsafe {
                    let (a, b) = (ap.add(t * kp * MR), bp.add(s * kp * NR));
                    tile_bf16(h, kp, a, b, alpha, beta, c, rsc, masks)
                },
            };
            if csc == 1 {
                run(ci, rsc, beta);
            } else {
                // General C layout: compute into a row-major scratch tile, then merge.
                run(scratch.as_mut_ptr(), NR as isize, 0.0);
                for i in 0..h {
                    for j in 0..w {
                        unsafe {
                            let e = ci.offset(i as isize * rsc + j as isize * csc);
                            let v = scratch[i * NR + j];
                            *e = if beta == 0.0 { v } else { beta * *e + v };
                        }
                    }
                }
            }
        }
    }
}

/// Dispatches an `h`-row tile (h ≤ MR) to the kernel compiled for exactly that many rows, so
/// that bottom-edge tiles (e.g. 3 output channels) spend no FMAs on padding rows.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn tile(
    h: usize,
    kc: usize,
    a: *const f32,
    b: &BSrc,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    masks: [__mmask16; NV],
) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match (h, b.direct) {
                $(
                    ($r, false) => kernel::<$r, false>(kc, a, b.p, b.row, alpha, beta, c, rsc, masks),
                    ($r, true) => kernel::<$r, true>(kc, a, b.p, b.row, alpha, beta, c, rsc, masks),
                )*
                _ => unreachable!("tile height {h}"),
            }
        };
    }
    unsafe { rows!(1 2 3 4 5 6 7 8 9 10 11 12) }
}

/// The micro-kernel: an R × NR tile of C from an A strip (MR values per depth, first R used)
/// and a B strip (NR values per depth, `brow` apart: NR when packed, B's row stride in
/// place). Columns beyond the masks are neither read nor written; with `beta == 0` C is not
/// read at all.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize, const DIRECT: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    brow: isize,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    masks: [__mmask16; NV],
) {
    prefetch_tile::<R>(c, rsc);
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        unsafe {
            // In place (DIRECT) the right-edge columns may end B: only masked loads are safe.
            let bv: [__m512; NV] = std::array::from_fn(|v| {
                if DIRECT {
                    _mm512_maskz_loadu_ps(masks[v], b.wrapping_add(16 * v))
                } else {
                    _mm512_loadu_ps(b.wrapping_add(16 * v))
                }
            });
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a.add(r));
                for v in 0..NV {
                    row[v] = _mm512_fmadd_ps(ar, bv[v], row[v]);
                }
            }
            a = a.wrapping_add(MR);
            b = b.wrapping_offset(brow);
        }
    }
    unsafe { store_tile(acc, alpha, beta, c, rsc, masks) };
}

/// Starts fetching an R-row C tile so its cache misses overlap the multiply loop.
#[inline(always)]
fn prefetch_tile<const R: usize>(c: *mut f32, rsc: isize) {
    for r in 0..R {
        for v in 0..NV {
            let line = c.wrapping_offset(r as isize * rsc).wrapping_add(16 * v);
            // SAFETY: a prefetch never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
}

/// C tile = alpha·acc + beta·C, columns beyond the masks untouched; with `beta == 0` C is
/// not read.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_tile<const R: usize>(
    acc: [[__m512; NV]; R],
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    masks: [__mmask16; NV],
) {
    let (av, bv) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    for (r, row) in acc.iter().enumerate() {
        let cr = unsafe { c.offset(r as isize * rsc) };
        for v in 0..NV {
            unsafe {
                let p = cr.wrapping_add(16 * v);
                let x = if alpha == 1.0 {
                    row[v]
                } else {
                    _mm512_mul_ps(av, row[v])
                };
                let out = if beta == 0.0 {
                    x
                } else if beta == 1.0 {
                    _mm512_add_ps(x, _mm512_maskz_loadu_ps(masks[v], p))
                } else {
                    _mm512_fmadd_ps(bv, _mm512_maskz_loadu_ps(masks[v], p), x)
                };
                _mm512_mask_storeu_ps(p, masks[v], out);
            }
        }
    }
}

/// [`tile`] for bf16 pairs: `kp` depth pairs of A (MR words each) and B (NR words each).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_bf16(
    h: usize,
    kp: usize,
    a: *const u32,
    b: *const u32,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    masks: [__mmask16; NV],
) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match h {
                $( $r => kernel_bf16::<$r>(kp, a, b, alpha, beta, c, rsc, masks), )*
                _ => unreachable!("tile height {h}"),
            }
        };
    }
    unsafe { rows!(1 2 3 4 5 6 7 8 9 10 11 12) }
}

/// The bf16 micro-kernel: per depth pair, one broadcast A word (two bf16) per row against NV
/// B vectors (16 columns × two depths each), 32 multiply-adds per `vdpbf16ps`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel_bf16<const R: usize>(
    kp: usize,
    a: *const u32,
    b: *const u32,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    masks: [__mmask16; NV],
) {
    prefetch_tile::<R>(c, rsc);
    let mut acc = [[_mm512_setzero_ps(); NV]; R];
    let (mut a, mut b) = (a, b);
    for _ in 0..kp {
        unsafe {
            let bv: [__m512bh; NV] = std::array::from_fn(|v| {
                std::mem::transmute(_mm512_loadu_si512(b.add(16 * v).cast()))
            });
            for (r, row) in acc.iter_mut().enumerate() {
                let ar: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r) as i32));
                for v in 0..NV {
                    row[v] = _mm512_dpbf16_ps(row[v], ar, bv[v]);
                }
            }
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    unsafe { store_tile(acc, alpha, beta, c, rsc, masks) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    fn filled(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut st = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_simple_fn((rows, cols), || {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            ((st >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
    }

    /// Checks sgemm against an f64 reference; returns the worst error relative to its bound.
    fn check(
        alpha: f32,
        a: &ArrayView2<f32>,
        b: &ArrayView2<f32>,
        beta: f32,
        c: &mut ArrayViewMut2<f32>,
    ) -> f64 {
        check_mode(Mode::F32, alpha, a, b, beta, c)
    }

    fn bf16(x: f32) -> f64 {
        half::bf16::from_f32(x).to_f64()
    }

    /// [`check`] for any mode: in the bf16 modes the reference multiplies the bf16-rounded
    /// operands exactly, so only the f32 sums are left to the bound.
    fn check_mode(
        mode: Mode,
        alpha: f32,
        a: &ArrayView2<f32>,
        b: &ArrayView2<f32>,
        beta: f32,
        c: &mut ArrayViewMut2<f32>,
    ) -> f64 {
        let (m, k) = a.dim();
        let n = b.dim().1;
        let c0 = c.to_owned();
        sgemm_mode(mode, alpha, a, b, beta, c);
        let op = |x: f32| if mode == Mode::F32 { x as f64 } else { bf16(x) };
        let eps = f32::EPSILON as f64;
        let mut worst = 0.0f64;
        for i in 0..m {
            for j in 0..n {
                let (mut dot, mut mag) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let t = op(a[[i, p]]) * op(b[[p, j]]);
                    dot += t;
                    mag += t.abs();
                }
                let prior = if beta == 0.0 {
                    0.0
                } else {
                    beta as f64 * c0[[i, j]] as f64
                };
                let want = alpha as f64 * dot + prior;
                // f32 rounding of a k-term dot product, the α scaling and the β update.
                let bound = 4.0 * (k as f64 + 2.0) * eps * (alpha.abs() as f64 * mag + prior.abs())
                    + f32::MIN_POSITIVE as f64;
                let err = (c[[i, j]] as f64 - want).abs();
                assert!(
                    err <= bound,
                    "{mode:?} ({m}x{k})·({k}x{n}) α={alpha} β={beta}: C[{i},{j}] = {} want {want} (err {err:e} > {bound:e})",
                    c[[i, j]]
                );
                worst = worst.max(err / bound);
            }
        }
        worst
    }

    fn skip() -> bool {
        if !available() {
            eprintln!("sgemm_avx512 tests skipped: this CPU lacks AVX-512F");
            return true;
        }
        false
    }

    /// The operands and scalars of one test case: the layouts rotate with the seed (plain, Aᵀ
    /// view, Bᵀ view, both), and so do (α, β).
    fn case(m: usize, n: usize, k: usize, seed: u64) -> (Array2<f32>, Array2<f32>, f32, f32) {
        let layout = seed % 4;
        let a = if layout & 1 == 0 {
            filled(m, k, seed)
        } else {
            filled(k, m, seed).reversed_axes()
        };
        let b = if layout & 2 == 0 {
            filled(k, n, seed + 1000)
        } else {
            filled(n, k, seed + 1000).reversed_axes()
        };
        let (alpha, beta) = [(1.0, 0.0), (0.75, 1.0), (-1.5, 0.5)][seed as usize % 3];
        (a, b, alpha, beta)
    }

    #[test]
    fn matches_reference_on_many_shapes() {
        if skip() {
            return;
        }
        let dims = [1usize, 3, 7, 17, 31, 33, 80, 160, 161, 384, 1031];
        let mut worst = 0.0f64;
        let mut cases = 0;
        let mut seed = 1;
        for &m in &dims {
            for &n in &dims {
                for &k in &dims {
                    // Keep the naive reference affordable: skip the largest triples.
                    if m * n * k > 30_000_000 {
                        continue;
                    }
                    seed += 1;
                    let (a_own, b_own, alpha, beta) = case(m, n, k, seed);
                    let mut c = filled(m, n, seed + 2000);
                    worst = worst.max(check(
                        alpha,
                        &a_own.view(),
                        &b_own.view(),
                        beta,
                        &mut c.view_mut(),
                    ));
                    cases += 1;
                }
            }
        }
        println!("{cases} shapes: worst error {worst:.3} of the bound");
    }

    #[test]
    fn transposes_and_strided_c() {
        if skip() {
            return;
        }
        let mut worst = 0.0f64;
        for &(m, n, k) in &[(33, 161, 80), (160, 7, 384), (17, 1031, 31), (80, 80, 1031)] {
            for layout in 0..4 {
                let a = filled(k, m, 7);
                let b = filled(n, k, 8);
                let a2 = filled(m, k, 9);
                let b2 = filled(k, n, 10);
                let av = if layout & 1 == 1 { a.t() } else { a2.view() };
                let bv = if layout & 2 == 2 { b.t() } else { b2.view() };
                for &(alpha, beta) in &[(1.0f32, 0.0f32), (2.0, 1.0), (0.5, 0.5)] {
                    // C as a sub-view of a larger row-major array (row stride ≠ n).
                    let mut big = filled(m + 5, n + 9, 11);
                    let mut cv = big.slice_mut(s![2..2 + m, 3..3 + n]);
                    worst = worst.max(check(alpha, &av, &bv, beta, &mut cv));
                    // Column-major C (solved as Cᵀ = Bᵀ·Aᵀ).
                    let mut ct = filled(n, m, 12);
                    worst = worst.max(check(
                        alpha,
                        &av,
                        &bv,
                        beta,
                        &mut ct.view_mut().reversed_axes(),
                    ));
                    // Neither stride unit: every other column of a larger array.
                    let mut wide = filled(m, 2 * n, 13);
                    let mut cs = wide.slice_mut(s![.., ..;2]);
                    worst = worst.max(check(alpha, &av, &bv, beta, &mut cs));
                    // Negative strides.
                    let mut neg = filled(m, n, 14);
                    let mut cn = neg.slice_mut(s![..;-1, ..]);
                    worst = worst.max(check(
                        alpha,
                        &av,
                        &bv.slice(s![..;-1, ..;-1]),
                        beta,
                        &mut cn,
                    ));
                }
            }
        }
        println!("worst error {worst:.3} of the bound");
    }

    /// Both bf16 modes on this CPU (the rounded one everywhere AVX-512F is, the `vdpbf16ps`
    /// one where AVX512_BF16 is) against the exact product of the rounded operands.
    #[test]
    fn bf16_modes_match_reference() {
        if skip() {
            return;
        }
        let mut modes = vec![Mode::Bf16Rounded];
        if bf16_available() {
            modes.push(Mode::Bf16Dot);
        } else {
            eprintln!("Bf16Dot not tested: this CPU lacks AVX512_BF16");
        }
        let dims = [1usize, 3, 12, 13, 33, 80, 161, 384, 515];
        for mode in modes {
            let (mut worst, mut cases, mut seed) = (0.0f64, 0, 7u64);
            for &m in &dims {
                for &n in &dims {
                    for &k in &dims {
                        if m * n * k > 20_000_000 {
                            continue;
                        }
                        seed += 1;
                        let (a_own, b_own, alpha, beta) = case(m, n, k, seed);
                        // Row-major C, or (every third case) column-major.
                        let mut c_row = filled(m, n, seed + 2000);
                        let mut c_col = filled(n, m, seed + 3000);
                        let mut cv = if seed % 3 == 0 {
                            c_col.view_mut().reversed_axes()
                        } else {
                            c_row.view_mut()
                        };
                        worst = worst.max(check_mode(
                            mode,
                            alpha,
                            &a_own.view(),
                            &b_own.view(),
                            beta,
                            &mut cv,
                        ));
                        cases += 1;
                    }
                }
            }
            println!("{mode:?}: {cases} shapes, worst error {worst:.3} of the bound");
        }
    }

    /// Rounding before the product is what makes bf16 differ from f32: a product the f32
    /// kernel gets right to ~1e-7 must come out of the bf16 modes with bf16's error.
    #[test]
    fn bf16_modes_round_their_operands() {
        if skip() {
            return;
        }
        // 1 + 2⁻¹⁰ is not a bf16 (8 significant bits): it rounds to 1.
        let a = Array2::from_elem((5, 40), 1.0f32 + 1.0 / 1024.0);
        let b = Array2::from_elem((40, 7), 1.0f32);
        for mode in [Mode::F32, Mode::Bf16Rounded, Mode::Bf16Dot] {
            if mode == Mode::Bf16Dot && !bf16_available() {
                continue;
            }
            let mut c = Array2::<f32>::zeros((5, 7));
            sgemm_mode(mode, 1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut());
            let want = if mode == Mode::F32 {
                40.0 + 40.0 / 1024.0
            } else {
                40.0
            };
            assert!(c.iter().all(|&v| v == want), "{mode:?}: {c:?}");
        }
    }

    #[test]
    fn round_bf16x16_matches_half() {
        if skip() {
            return;
        }
        let mut st = 0x1234_5678_9abc_def0u64;
        let mut specials = vec![
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001), // signalling NaN whose payload would carry
            f32::from_bits(0x3F80_8000), // exact tie, even below: rounds down
            f32::from_bits(0x3F81_8000), // exact tie, odd below: rounds up
            f32::from_bits(0x7F7F_FFFF), // largest finite: rounds to infinity
            f32::from_bits(0x0000_8001), // subnormal
        ];
        for _ in 0..100_000 {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            specials.push(f32::from_bits((st >> 32) as u32));
        }
        for chunk in specials.chunks(16) {
            let mut buf = chunk.to_vec();
            // SAFETY: AVX-512F is present (checked above); buf holds buf.len() values.
            unsafe { round_in_place(buf.as_mut_ptr(), buf.len()) };
            for (&x, &r) in chunk.iter().zip(&buf) {
                let want = half::bf16::from_f32(x).to_f32();
                assert!(
                    r.to_bits() == want.to_bits() || (r.is_nan() && want.is_nan()),
                    "{x:e} ({:#x}) → {r:e}, want {want:e}",
                    x.to_bits()
                );
            }
        }
    }

    #[test]
    fn transpose16_is_a_transpose() {
        if skip() {
            return;
        }
        let m: Vec<f32> = (0..256).map(|x| x as f32).collect();
        // SAFETY: AVX-512F is present (checked above).
        let t = unsafe {
            let rows = std::array::from_fn(|i| _mm512_loadu_ps(m.as_ptr().add(16 * i)));
            transpose16(rows)
        };
        for (j, tj) in t.iter().enumerate() {
            let mut lane = [0.0f32; 16];
            unsafe { _mm512_storeu_ps(lane.as_mut_ptr(), *tj) };
            for (i, &x) in lane.iter().enumerate() {
                assert_eq!(x, m[16 * i + j], "out[{j}] lane {i}");
            }
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_c() {
        if skip() {
            return;
        }
        for &(m, n, k) in &[(13, 35, 300), (1, 1, 1), (12, 32, 5), (40, 3, 600)] {
            let a = filled(m, k, 3);
            let b = filled(k, n, 4);
            let mut c = Array2::from_elem((m, n), f32::NAN);
            check(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut());
            assert!(c.iter().all(|v| v.is_finite()));
            // Column-major and general-stride C too.
            let mut ct = Array2::from_elem((n, m), f32::NAN);
            sgemm(
                1.0,
                &a.view(),
                &b.view(),
                0.0,
                &mut ct.view_mut().reversed_axes(),
            );
            assert!(ct.iter().all(|v| v.is_finite()));
        }
        // k = 0: C becomes β·C, i.e. zeros.
        let a = Array2::<f32>::zeros((4, 0));
        let b = Array2::<f32>::zeros((0, 5));
        let mut c = Array2::from_elem((4, 5), f32::NAN);
        sgemm(1.0, &a.view(), &b.view(), 0.0, &mut c.view_mut());
        assert!(c.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn edges_do_not_write_outside_c() {
        if skip() {
            return;
        }
        // C inside a sentinel-filled array: partial tiles must leave the border untouched.
        for &(m, n) in &[(13, 35), (5, 17), (25, 1), (1, 40)] {
            let (k, pad) = (20, 40);
            let a = filled(m, k, 5);
            let b = filled(k, n, 6);
            let mut big = Array2::from_elem((m + 2 * pad, n + 2 * pad), 7.0f32);
            sgemm(
                1.0,
                &a.view(),
                &b.view(),
                1.0,
                &mut big.slice_mut(s![pad..pad + m, pad..pad + n]),
            );
            for ((i, j), &v) in big.indexed_iter() {
                let inside = (pad..pad + m).contains(&i) && (pad..pad + n).contains(&j);
                assert!(inside || v == 7.0, "wrote outside C at ({i}, {j})");
            }
        }
    }
}
