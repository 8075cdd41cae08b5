//! Convolutions without bias (the equalized scale is applied by the caller): conv2d with zero
//! padding and stride, and its adjoint, PyTorch's conv_transpose2d (padding 0).
//!
//! Every pass is im2col + GEMM per image (1×1 stride-1 convs use the image itself as the column
//! matrix), with images spread over the threads; 1×1 convs on 1×1 maps (linear layers) are one
//! GEMM over the whole batch. conv_transpose2d is conv2d's adjoint, so it reuses the same passes.

use super::gemm::{MatmulPrecision, batch_ranges, even_ranges, gemm, split_by_ranges};
use crate::parallel::{num_threads, par_for_each, par_map};
use crate::tensor::Real;
use ndarray::{Array2, Array4, ArrayView2, ArrayView4, ArrayViewMut2, s};
use std::ops::Range;

/// Output length of a convolution along one axis.
/// Arithmetic of one pass (forward, input or weight gradient): 2 FLOP per multiply-add.
fn conv_flops(n: usize, cin: usize, cout: usize, k: usize, ho: usize, wo: usize) -> u64 {
    (2 * n * cin * cout * k * k * ho * wo) as u64
}

pub fn conv_out_len(n: usize, k: usize, stride: usize, pad: usize) -> usize {
    (n + 2 * pad - k) / stride + 1
}

/// One image's convolution geometry.
#[derive(Clone, Copy, Debug)]
struct Geom {
    cin: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

impl Geom {
    fn new(cin: usize, (h, w): (usize, usize), k: usize, s: usize, p: usize) -> Geom {
        assert!(s >= 1 && k >= 1, "conv: stride and kernel must be positive");
        assert!(
            h + 2 * p >= k && w + 2 * p >= k,
            "conv: input {h}×{w} (pad {p}) smaller than kernel {k}"
        );
        Geom {
            cin,
            h,
            w,
            k,
            s,
            p,
            ho: conv_out_len(h, k, s, p),
            wo: conv_out_len(w, k, s, p),
        }
    }
    /// Rows of the column matrix (Cin·k²).
    fn rows(&self) -> usize {
        self.cin * self.k * self.k
    }
    /// Output pixels per image.
    fn npix(&self) -> usize {
        self.ho * self.wo
    }
    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }
    /// The column matrix is the image itself.
    fn direct(&self) -> bool {
        self.k == 1 && self.s == 1 && self.p == 0
    }
    /// 1×1 conv on 1×1 maps: a linear layer, done as one GEMM over the batch.
    fn linear(&self) -> bool {
        self.k == 1 && self.p == 0 && self.h == 1 && self.w == 1
    }
    /// The output columns `ow` whose input column `ow·s + kw − p` lies inside the image.
    fn valid_ow(&self, kw: usize) -> (usize, usize) {
        let hi = if kw > self.w - 1 + self.p {
            0
        } else {
            ((self.w - 1 + self.p - kw) / self.s + 1).min(self.wo)
        };
        let lo = if self.p > kw {
            (self.p - kw).div_ceil(self.s)
        } else {
            0
        }
        .min(hi);
        (lo, hi)
    }
    /// Input row for output row `oh` and kernel row `kh`, if inside the image.
    fn in_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.s + kh)
            .checked_sub(self.p)
            .filter(|&r| r < self.h)
    }
}

/// cols[(ci,kh,kw), (oh,ow)] = x[ci, oh·s+kh−p, ow·s+kw−p] (zero outside), for the output
/// rows `ohs` only (a tile of the image).
fn im2col<T: Real>(g: &Geom, x: &[T], ohs: Range<usize>, cols: &mut [T]) {
    let (hw, np, wo, s) = (g.h * g.w, ohs.len() * g.wo, g.wo, g.s);
    for ci in 0..g.cin {
        let xc = &x[ci * hw..(ci + 1) * hw];
        for kh in 0..g.k {
            for kw in 0..g.k {
                let r = (ci * g.k + kh) * g.k + kw;
                let dst = &mut cols[r * np..(r + 1) * np];
                let (lo, hi) = g.valid_ow(kw);
                for oh in ohs.clone() {
                    let t = oh - ohs.start;
                    let row = &mut dst[t * wo..(t + 1) * wo];
                    let Some(ih) = g.in_row(oh, kh) else {
                        row.fill(T::zero());
                        continue;
                    };
                    let xr = &xc[ih * g.w..(ih + 1) * g.w];
                    row[..lo].fill(T::zero());
                    row[hi..].fill(T::zero());
                    if lo == hi {
                        continue;
                    }
                    let iw0 = lo * s + kw - g.p;
                    if s == 1 {
                        row[lo..hi].copy_from_slice(&xr[iw0..iw0 + (hi - lo)]);
                    } else {
                        for (d, v) in row[lo..hi].iter_mut().zip(xr[iw0..].iter().step_by(s)) {
                            *d = *v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of im2col for the output rows `ohs`: dx[ci, oh·s+kh−p, ow·s+kw−p] += cols[(ci,kh,kw),
/// (oh,ow)]. `dx` holds, per channel (one matrix row each), input rows `ih0..` of the image.
fn col2im<T: Real>(g: &Geom, cols: &[T], ohs: Range<usize>, dx: &mut ArrayViewMut2<T>, ih0: usize) {
    let (np, wo, s) = (ohs.len() * g.wo, g.wo, g.s);
    for ci in 0..g.cin {
        let mut dcv = dx.row_mut(ci);
        let dc = dcv.as_slice_mut().expect("rows of dx are contiguous");
        for kh in 0..g.k {
            for kw in 0..g.k {
                let r = (ci * g.k + kh) * g.k + kw;
                let src = &cols[r * np..(r + 1) * np];
                let (lo, hi) = g.valid_ow(kw);
                if lo == hi {
                    continue;
                }
                for oh in ohs.clone() {
                    let Some(ih) = g.in_row(oh, kh) else { continue };
                    let t = oh - ohs.start;
                    let row = &src[t * wo + lo..t * wo + hi];
                    let dr = &mut dc[(ih - ih0) * g.w..(ih - ih0 + 1) * g.w];
                    let iw0 = lo * s + kw - g.p;
                    if s == 1 {
                        for (d, v) in dr[iw0..iw0 + (hi - lo)].iter_mut().zip(row) {
                            *d = *d + *v;
                        }
                    } else {
                        for (d, v) in dr[iw0..].iter_mut().step_by(s).zip(row) {
                            *d = *d + *v;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major output matrix (as its base address and row stride) whose disjoint blocks the
/// tiles write from several threads.
#[derive(Clone, Copy)]
struct SharedOut {
    base: usize,
    stride: usize,
}

impl SharedOut {
    fn new<T>(data: &mut [T], stride: usize) -> SharedOut {
        SharedOut {
            base: data.as_mut_ptr() as usize,
            stride,
        }
    }

    /// # Safety
    /// Blocks handed out at the same time must not overlap, must lie inside the matrix, and the
    /// matrix must outlive them.
    unsafe fn block<'a, T>(self, r: Range<usize>, c: Range<usize>) -> ArrayViewMut2<'a, T> {
        let ptr = (self.base as *mut T).wrapping_add(r.start * self.stride + c.start);
        let shape = ndarray::ShapeBuilder::strides((r.len(), c.len()), (self.stride, 1));
        unsafe { ArrayViewMut2::from_shape_ptr(shape, ptr) }
    }
}

fn mat<T>(data: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), data).unwrap()
}

fn mat_mut<T>(data: &mut [T], rows: usize, cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, cols), data).unwrap()
}

/// Runs `f(image, in_slice_or_out_slice...)` per image: over thread chunks of the batch when that
/// balances, else serially with `par_gemm = true` so each GEMM is split over the threads.
/// `out` holds `per_out` elements per image; `f` gets (image index, its output, scratch, par_gemm).
fn per_image<T: Real>(
    n: usize,
    serial: bool,
    out: &mut [T],
    per_out: usize,
    scratch: usize,
    f: impl Fn(usize, &mut [T], &mut Vec<T>, bool) + Sync,
) {
    match batch_ranges(n).filter(|_| !serial) {
        Some(ranges) => {
            let parts = split_by_ranges(out, &ranges, per_out);
            let items: Vec<_> = ranges.into_iter().zip(parts).collect();
            par_for_each(items, |_, (r, part)| {
                let mut buf = vec![T::zero(); scratch];
                for (j, i) in r.enumerate() {
                    f(
                        i,
                        &mut part[j * per_out..(j + 1) * per_out],
                        &mut buf,
                        false,
                    );
                }
            });
        }
        None => {
            let mut buf = vec![T::zero(); scratch];
            for i in 0..n {
                f(i, &mut out[i * per_out..(i + 1) * per_out], &mut buf, true);
            }
        }
    }
}

/// Too little work (multiply-adds) to pay for spawning threads per image or tile.
fn few_flops(macs: usize) -> bool {
    macs < 1 << 20
}

/// Output pixels per tile the tiled passes aim for: the tile's column matrix (Cin·k² × this)
/// stays cache-sized instead of growing with the image.
const TILE_PIX: usize = 4096;
/// Below this many pixels a tile's GEMM gets inefficient: use whole images / split GEMMs.
const MIN_TILE_PIX: usize = 256;

/// Output rows per tile when the forward / weight passes run over (image, row block) tiles
/// spread over the threads; `None` to keep the per-image paths.
fn tile_rows(g: &Geom, n: usize) -> Option<usize> {
    let t = num_threads();
    if t <= 1 || g.direct() {
        return None;
    }
    let mut per_img = g.npix().div_ceil(TILE_PIX);
    if !n.is_multiple_of(t) {
        // Enough tiles that an uneven last share costs little.
        per_img = per_img.max((4 * t).div_ceil(n));
    }
    let rows = g.ho.div_ceil(per_img.min(g.ho)).max(1);
    (rows * g.wo >= MIN_TILE_PIX || (n.is_multiple_of(t) && rows == g.ho)).then_some(rows)
}

/// Runs `f(thread_state, image, output rows, cols)` over the (image, row block) tiles whose block
/// index passes `keep`; the tiles are
/// cut into one contiguous run per thread, each with its own state from `init` and im2col buffer.
fn over_tiles<T: Real, S: Send>(
    g: &Geom,
    n: usize,
    rows: usize,
    init: impl Fn() -> S + Sync,
    keep: impl Fn(usize) -> bool,
    f: impl Fn(&mut S, usize, Range<usize>, &mut [T]) + Sync,
) -> Vec<S> {
    let per_img = g.ho.div_ceil(rows);
    let tiles: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..per_img).filter(|&b| keep(b)).map(move |b| (i, b)))
        .collect();
    let runs = even_ranges(tiles.len(), num_threads().min(tiles.len()).max(1));
    par_map(runs.len(), |r| {
        let mut st = init();
        let mut cols = vec![T::zero(); g.rows() * rows * g.wo];
        for &(i, b) in &tiles[runs[r].clone()] {
            let ohs = b * rows..((b + 1) * rows).min(g.ho);
            let len = g.rows() * ohs.len() * g.wo;
            f(&mut st, i, ohs, &mut cols[..len]);
        }
        st
    })
}

/// y = conv2d(x, w): x (N,Cin,H,W), w (Cout,Cin,k,k) → (N,Cout,Ho,Wo), products at `mm`.
pub fn conv2d_forward<T: Real>(
    x: &Array4<T>,
    w: ArrayView4<T>,
    stride: usize,
    pad: usize,
    mm: MatmulPrecision,
) -> Array4<T> {
    let (n, cin, h, wd) = x.dim();
    let (cout, wcin, k, k2) = w.dim();
    super::flops::add(conv_flops(
        n,
        cin,
        cout,
        k,
        conv_out_len(h, k, stride, pad),
        conv_out_len(wd, k, stride, pad),
    ));
    assert!(
        wcin == cin && k == k2,
        "conv2d_forward: x {:?} vs w {:?}",
        x.dim(),
        w.dim()
    );
    let g = Geom::new(cin, (h, wd), k, stride, pad);
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let xs = x.as_slice().unwrap();
    let wm = mat(w.as_slice().unwrap(), cout, g.rows());
    let mut y = Array4::<T>::zeros((n, cout, g.ho, g.wo));
    let ys = y.as_slice_mut().unwrap();
    if g.linear() {
        // Y (N,Cout) = X (N,Cin) · Wᵀ.
        gemm(
            mm,
            T::one(),
            &mat(xs, n, cin),
            &wm.t(),
            T::zero(),
            &mut mat_mut(ys, n, cout),
            true,
        );
        return y;
    }
    let np = g.npix();
    let serial = few_flops(n * cout * g.rows() * np);
    if let Some(rows) = tile_rows(&g, n).filter(|_| !serial) {
        // Tiles write disjoint column blocks of each image's (Cout, Ho·Wo) output.
        assert_eq!(ys.len(), n * cout * np);
        let yp = SharedOut::new(ys, np);
        over_tiles(
            &g,
            n,
            rows,
            || (),
            |_| true,
            |_, i, ohs, cols| {
                im2col(
                    &g,
                    &xs[i * g.in_len()..(i + 1) * g.in_len()],
                    ohs.clone(),
                    cols,
                );
                // SAFETY: each (image, row block) tile is visited once, so the blocks never alias.
                let mut yt = unsafe {
                    yp.block::<T>(i * cout..(i + 1) * cout, ohs.start * g.wo..ohs.end * g.wo)
                };
                gemm(
                    mm,
                    T::one(),
                    &wm,
                    &mat(cols, g.rows(), ohs.len() * g.wo),
                    T::zero(),
                    &mut yt,
                    false,
                );
            },
        );
        return y;
    }
    let scratch = if g.direct() { 0 } else { g.rows() * np };
    per_image(n, serial, ys, cout * np, scratch, |i, yi, cols, par| {
        let xi = &xs[i * g.in_len()..(i + 1) * g.in_len()];
        let b = if g.direct() {
            mat(xi, cin, np)
        } else {
            im2col(&g, xi, 0..g.ho, cols);
            mat(cols, g.rows(), np)
        };
        gemm(
            mm,
            T::one(),
            &wm,
            &b,
            T::zero(),
            &mut mat_mut(yi, cout, np),
            par,
        );
    });
    y
}

/// dL/dx from dL/dy; `in_hw` is x's (H, W) (a stride can leave the last rows unused).
pub fn conv2d_backward_input<T: Real>(
    dy: &Array4<T>,
    w: ArrayView4<T>,
    stride: usize,
    pad: usize,
    in_hw: (usize, usize),
    mm: MatmulPrecision,
) -> Array4<T> {
    let (n, cout, ho, wo) = dy.dim();
    let (wcout, cin, k, k2) = w.dim();
    super::flops::add(conv_flops(n, cin, cout, k, ho, wo));
    assert!(
        wcout == cout && k == k2,
        "conv2d_backward_input: dy {:?} vs w {:?}",
        dy.dim(),
        w.dim()
    );
    let g = Geom::new(cin, in_hw, k, stride, pad);
    assert!(
        (g.ho, g.wo) == (ho, wo),
        "conv2d_backward_input: dy {:?} does not fit input {in_hw:?}",
        dy.dim()
    );
    let dy = dy.as_standard_layout();
    let w = w.as_standard_layout();
    let dys = dy.as_slice().unwrap();
    let wm = mat(w.as_slice().unwrap(), cout, g.rows());
    let mut dx = Array4::<T>::zeros((n, cin, in_hw.0, in_hw.1));
    let dxs = dx.as_slice_mut().unwrap();
    if g.linear() {
        // dX (N,Cin) = dY (N,Cout) · W.
        gemm(
            mm,
            T::one(),
            &mat(dys, n, cout),
            &wm,
            T::zero(),
            &mut mat_mut(dxs, n, cin),
            true,
        );
        return dx;
    }
    let np = g.npix();
    let serial = few_flops(n * cout * g.rows() * np);
    let (h, wd) = in_hw;
    if let Some(rows) = tile_rows(&g, n).filter(|&r| !serial && r * g.s >= g.k) {
        // A tile's input rows overlap only its neighbours' (rows·s ≥ k), so even blocks and then
        // odd blocks can each scatter concurrently.
        let dxp = SharedOut::new(dxs, h * wd);
        for parity in 0..2 {
            over_tiles(
                &g,
                n,
                rows,
                || (),
                |b| b % 2 == parity,
                |_, i, ohs, cols| {
                    let dyi = mat(&dys[i * cout * np..(i + 1) * cout * np], cout, np);
                    let dyt = dyi.slice(s![.., ohs.start * g.wo..ohs.end * g.wo]);
                    let mut cm = mat_mut(cols, g.rows(), ohs.len() * g.wo);
                    gemm(mm, T::one(), &wm.t(), &dyt, T::zero(), &mut cm, false);
                    let ih0 = (ohs.start * g.s).saturating_sub(g.p);
                    let ih1 = ((ohs.end - 1) * g.s + g.k).saturating_sub(g.p).min(h);
                    // SAFETY: same-parity tiles touch disjoint input rows (or different images).
                    let mut dxt =
                        unsafe { dxp.block::<T>(i * cin..(i + 1) * cin, ih0 * wd..ih1 * wd) };
                    col2im(&g, cols, ohs, &mut dxt, ih0);
                },
            );
        }
        return dx;
    }
    let scratch = if g.direct() { 0 } else { g.rows() * np };
    per_image(n, serial, dxs, g.in_len(), scratch, |i, dxi, cols, par| {
        let dyi = mat(&dys[i * cout * np..(i + 1) * cout * np], cout, np);
        if g.direct() {
            gemm(
                mm,
                T::one(),
                &wm.t(),
                &dyi,
                T::zero(),
                &mut mat_mut(dxi, cin, np),
                par,
            );
        } else {
            gemm(
                mm,
                T::one(),
                &wm.t(),
                &dyi,
                T::zero(),
                &mut mat_mut(cols, g.rows(), np),
                par,
            );
            col2im(&g, cols, 0..g.ho, &mut mat_mut(dxi, cin, h * wd), 0);
        }
    });
    dx
}

/// dL/dw (Cout,Cin,k,k), summed over the batch.
pub fn conv2d_backward_weight<T: Real>(
    x: &Array4<T>,
    dy: &Array4<T>,
    k: usize,
    stride: usize,
    pad: usize,
    mm: MatmulPrecision,
) -> Array4<T> {
    let (n, cin, h, wd) = x.dim();
    let (dn, cout, ho, wo) = dy.dim();
    super::flops::add(conv_flops(n, cin, cout, k, ho, wo));
    assert_eq!(n, dn, "conv2d_backward_weight: batch of x and dy");
    let g = Geom::new(cin, (h, wd), k, stride, pad);
    assert!(
        (g.ho, g.wo) == (ho, wo),
        "conv2d_backward_weight: dy {:?} does not fit x {:?}",
        dy.dim(),
        x.dim()
    );
    let x = x.as_standard_layout();
    let dy = dy.as_standard_layout();
    let (xs, dys) = (x.as_slice().unwrap(), dy.as_slice().unwrap());
    let (rows, np) = (g.rows(), g.npix());
    let serial = few_flops(n * cout * rows * np);
    let mut dw = Array2::<T>::zeros((cout, rows));
    if g.linear() {
        // dW (Cout,Cin) = dYᵀ · X.
        gemm(
            mm,
            T::one(),
            &mat(dys, n, cout).t(),
            &mat(xs, n, cin),
            T::zero(),
            &mut dw.view_mut(),
            true,
        );
    } else {
        // Accumulates image `i` into `acc` (Cout, Cin·k²).
        let add_image = |i: usize, acc: &mut ArrayViewMut2<T>, cols: &mut Vec<T>, par: bool| {
            let xi = &xs[i * g.in_len()..(i + 1) * g.in_len()];
            let dyi = mat(&dys[i * cout * np..(i + 1) * cout * np], cout, np);
            let b = if g.direct() {
                mat(xi, cin, np)
            } else {
                im2col(&g, xi, 0..g.ho, cols);
                mat(cols, rows, np)
            };
            gemm(mm, T::one(), &dyi, &b.t(), T::one(), acc, par);
        };
        let scratch = if g.direct() { 0 } else { rows * np };
        let tiled = tile_rows(&g, n).filter(|_| !serial);
        match batch_ranges(n).filter(|_| !serial) {
            _ if tiled.is_some() => {
                let tr = tiled.unwrap();
                let parts = over_tiles(
                    &g,
                    n,
                    tr,
                    || Array2::<T>::zeros((cout, rows)),
                    |_| true,
                    |acc, i, ohs, cols| {
                        im2col(
                            &g,
                            &xs[i * g.in_len()..(i + 1) * g.in_len()],
                            ohs.clone(),
                            cols,
                        );
                        let dyi = mat(&dys[i * cout * np..(i + 1) * cout * np], cout, np);
                        let dyt = dyi.slice(s![.., ohs.start * g.wo..ohs.end * g.wo]);
                        let b = mat(cols, rows, ohs.len() * g.wo);
                        gemm(
                            mm,
                            T::one(),
                            &dyt,
                            &b.t(),
                            T::one(),
                            &mut acc.view_mut(),
                            false,
                        );
                    },
                );
                for p in parts {
                    dw.zip_mut_with(&p, |a, b| *a = *a + *b);
                }
            }
            Some(ranges) => {
                // Per-thread partial sums, added at the end.
                let parts = par_map(ranges.len(), |t| {
                    let mut acc = Array2::<T>::zeros((cout, rows));
                    let mut cols = vec![T::zero(); scratch];
                    for i in ranges[t].clone() {
                        add_image(i, &mut acc.view_mut(), &mut cols, false);
                    }
                    acc
                });
                for p in parts {
                    dw.zip_mut_with(&p, |a, b| *a = *a + *b);
                }
            }
            None => {
                let mut cols = vec![T::zero(); scratch];
                for i in 0..n {
                    add_image(i, &mut dw.view_mut(), &mut cols, true);
                }
            }
        }
    }
    dw.into_shape_with_order((cout, cin, k, k)).unwrap()
}

/// PyTorch conv_transpose2d with padding 0: x (N,Cin,H,W), w (Cin,Cout,k,k)
/// → (N,Cout,(H−1)·s+k,(W−1)·s+k).
pub fn conv_transpose2d_forward<T: Real>(
    x: &Array4<T>,
    w: ArrayView4<T>,
    stride: usize,
    mm: MatmulPrecision,
) -> Array4<T> {
    // The adjoint of conv2d with w read as (Cout',Cin',k,k) = (Cin,Cout,k,k): its backward_input.
    let (_, _, h, wd) = x.dim();
    let k = w.dim().2;
    conv2d_backward_input(
        x,
        w,
        stride,
        0,
        ((h - 1) * stride + k, (wd - 1) * stride + k),
        mm,
    )
}

/// dL/dx of conv_transpose2d_forward.
pub fn conv_transpose2d_backward_input<T: Real>(
    dy: &Array4<T>,
    w: ArrayView4<T>,
    stride: usize,
    mm: MatmulPrecision,
) -> Array4<T> {
    conv2d_forward(dy, w, stride, 0, mm)
}

/// dL/dw (Cin,Cout,k,k) of conv_transpose2d_forward, summed over the batch.
pub fn conv_transpose2d_backward_weight<T: Real>(
    x: &Array4<T>,
    dy: &Array4<T>,
    k: usize,
    stride: usize,
    mm: MatmulPrecision,
) -> Array4<T> {
    // x plays conv2d's output gradient and dy its input.
    conv2d_backward_weight(dy, x, k, stride, 0, mm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check_gradient, dot, rand_array};
    use ndarray::{Array4, ArrayD, Dim, Ix4};

    fn d4(a: &ArrayD<f64>) -> Array4<f64> {
        a.clone().into_dimensionality::<Ix4>().unwrap()
    }

    /// Direct-loop conv2d, the reference for the GEMM path.
    fn naive_conv(x: &Array4<f64>, w: &Array4<f64>, s: usize, p: usize) -> Array4<f64> {
        let (n, cin, h, wd) = x.dim();
        let (cout, _, k, _) = w.dim();
        let (ho, wo) = (conv_out_len(h, k, s, p), conv_out_len(wd, k, s, p));
        let mut y = Array4::zeros((n, cout, ho, wo));
        for b in 0..n {
            for o in 0..cout {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut acc = 0.0;
                        for i in 0..cin {
                            for kh in 0..k {
                                for kw in 0..k {
                                    let (ih, iw) = (
                                        (oh * s + kh) as isize - p as isize,
                                        (ow * s + kw) as isize - p as isize,
                                    );
                                    if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < wd
                                    {
                                        acc +=
                                            x[[b, i, ih as usize, iw as usize]] * w[[o, i, kh, kw]];
                                    }
                                }
                            }
                        }
                        y[[b, o, oh, ow]] = acc;
                    }
                }
            }
        }
        y
    }

    /// Direct-loop conv_transpose2d (PyTorch semantics, padding 0).
    fn naive_convt(x: &Array4<f64>, w: &Array4<f64>, s: usize) -> Array4<f64> {
        let (n, cin, h, wd) = x.dim();
        let (_, cout, k, _) = w.dim();
        let mut y = Array4::zeros((n, cout, (h - 1) * s + k, (wd - 1) * s + k));
        for b in 0..n {
            for i in 0..cin {
                for ih in 0..h {
                    for iw in 0..wd {
                        for o in 0..cout {
                            for kh in 0..k {
                                for kw in 0..k {
                                    y[[b, o, ih * s + kh, iw * s + kw]] +=
                                        x[[b, i, ih, iw]] * w[[i, o, kh, kw]];
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    /// f32 GEMM path vs the f64 direct loop; returns the worst |diff| relative to the output scale.
    #[allow(clippy::too_many_arguments)]
    fn forward_case(
        n: usize,
        cin: usize,
        cout: usize,
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        p: usize,
        seed: u64,
    ) {
        let x = rand_array(Dim([n, cin, h, w]), seed);
        let wt = rand_array(Dim([cout, cin, k, k]), seed + 1);
        let want = naive_conv(&x, &wt, s, p);
        let got = conv2d_forward(
            &x.mapv(|v| v as f32),
            wt.mapv(|v| v as f32).view(),
            s,
            p,
            MatmulPrecision::Full,
        );
        assert_eq!(got.dim(), want.dim());
        // Terms are products of U(-1,1) values: the sum's f32 rounding grows like √(Cin·k²).
        let tol = 1e-6 * ((cin * k * k) as f64).sqrt() * 4.0;
        let (mut worst, mut at) = (0.0f64, 0);
        for (i, (g, e)) in got.iter().zip(want.iter()).enumerate() {
            let d = (*g as f64 - e).abs();
            if d > worst {
                (worst, at) = (d, i);
            }
        }
        eprintln!(
            "conv2d f32 {n}x{cin}x{h}x{w} -> {cout}, k{k} s{s} p{p}: worst |diff| {worst:.3e} at {at} (tol {tol:.1e})"
        );
        assert!(worst <= tol, "worst |diff| {worst:.3e} at {at} > {tol:.1e}");
    }

    #[test]
    fn forward_matches_direct_loop() {
        forward_case(2, 3, 80, 9, 7, 1, 1, 0, 1);
        forward_case(2, 3, 80, 9, 7, 3, 1, 1, 2);
        forward_case(2, 80, 160, 7, 5, 3, 1, 1, 3);
        forward_case(3, 80, 160, 9, 7, 3, 2, 0, 4);
        forward_case(2, 80, 160, 9, 8, 1, 2, 0, 5);
        forward_case(5, 64, 40, 1, 1, 1, 1, 0, 6);
        // One image: each GEMM is split over the threads instead of the batch.
        forward_case(1, 80, 160, 9, 7, 3, 1, 1, 7);
        // Row tiles, including a short last one.
        forward_case(1, 16, 24, 70, 64, 3, 1, 1, 8);
        forward_case(3, 16, 24, 69, 40, 3, 2, 0, 9);
    }

    #[test]
    fn forward_f64_exact_shapes() {
        // Tight f64 check, including a batch not divisible by the thread count (GEMM-split path).
        for &(n, cin, cout, h, w, k, s, p) in &[
            (3, 3, 5, 7, 6, 3, 1, 1),
            (1, 4, 6, 8, 7, 3, 2, 0),
            (2, 5, 3, 9, 9, 1, 2, 0),
            (7, 6, 4, 1, 1, 1, 1, 0),
            (1, 40, 40, 6, 5, 1, 1, 0),
        ] {
            let x = rand_array(Dim([n, cin, h, w]), 10);
            let wt = rand_array(Dim([cout, cin, k, k]), 11);
            let d = &conv2d_forward(&x, wt.view(), s, p, MatmulPrecision::Full)
                - &naive_conv(&x, &wt, s, p);
            let worst = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                worst < 1e-12,
                "f64 conv {n},{cin},{cout},{h},{w},k{k},s{s},p{p}: worst {worst:e}"
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn grad_case(
        n: usize,
        cin: usize,
        cout: usize,
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        p: usize,
    ) {
        let what = format!("conv2d {n}x{cin}x{h}x{w} -> {cout} k{k} s{s} p{p}");
        let x = rand_array(Dim([n, cin, h, w]), 20).into_dyn();
        let wt = rand_array(Dim([cout, cin, k, k]), 21).into_dyn();
        let y = conv2d_forward(&d4(&x), d4(&wt).view(), s, p, MatmulPrecision::Full);
        let proj = rand_array(y.raw_dim(), 22);
        let dx = conv2d_backward_input(&proj, d4(&wt).view(), s, p, (h, w), MatmulPrecision::Full);
        let dw = conv2d_backward_weight(&d4(&x), &proj, k, s, p, MatmulPrecision::Full);
        let loss_x = |xv: &ArrayD<f64>| {
            dot(
                &conv2d_forward(&d4(xv), d4(&wt).view(), s, p, MatmulPrecision::Full),
                &proj,
            )
        };
        check_gradient(
            &format!("{what} dx"),
            &x,
            &dx.into_dyn(),
            loss_x,
            1e-7,
            1e-6,
        );
        let loss_w = |wv: &ArrayD<f64>| {
            dot(
                &conv2d_forward(&d4(&x), d4(wv).view(), s, p, MatmulPrecision::Full),
                &proj,
            )
        };
        check_gradient(
            &format!("{what} dw"),
            &wt,
            &dw.into_dyn(),
            loss_w,
            1e-7,
            1e-6,
        );
    }

    #[test]
    fn conv2d_gradients() {
        grad_case(2, 3, 5, 7, 6, 3, 1, 1);
        grad_case(2, 3, 5, 7, 6, 1, 1, 0);
        grad_case(2, 3, 5, 7, 6, 3, 2, 0);
        grad_case(2, 3, 5, 8, 9, 3, 2, 0);
        grad_case(2, 3, 5, 7, 8, 1, 2, 0);
        grad_case(3, 4, 5, 1, 1, 1, 1, 0);
        grad_case(1, 3, 5, 5, 4, 3, 1, 1);
    }

    /// Direct-loop dL/dw, the reference for shapes too large for tight finite differences.
    fn naive_dw(x: &Array4<f64>, dy: &Array4<f64>, k: usize, s: usize, p: usize) -> Array4<f64> {
        let (n, cin, h, wd) = x.dim();
        let (_, cout, ho, wo) = dy.dim();
        let mut dw = Array4::zeros((cout, cin, k, k));
        for ((o, i, kh, kw), v) in dw.indexed_iter_mut() {
            for b in 0..n {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let (ih, iw) = (
                            (oh * s + kh) as isize - p as isize,
                            (ow * s + kw) as isize - p as isize,
                        );
                        if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < wd {
                            *v += dy[[b, o, oh, ow]] * x[[b, i, ih as usize, iw as usize]];
                        }
                    }
                }
            }
        }
        dw
    }

    #[test]
    fn threaded_passes_match_direct_loop() {
        // Row tiles (with a short last tile), images per thread (1×1), and split GEMMs (odd batch,
        // small maps): the thread-parallel paths, which the tiny FD shapes run serially.
        for &(n, cin, cout, h, w, k, s, p) in &[
            (1, 3, 5, 70, 64, 3, 1, 1),
            (3, 2, 3, 69, 60, 3, 2, 0),
            (4, 64, 48, 12, 11, 1, 1, 0),
            (3, 64, 48, 6, 5, 3, 1, 1),
        ] {
            let x = rand_array(Dim([n, cin, h, w]), 70);
            let wt = rand_array(Dim([cout, cin, k, k]), 71);
            let y = conv2d_forward(&x, wt.view(), s, p, MatmulPrecision::Full);
            let fwd = (&y - &naive_conv(&x, &wt, s, p))
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            let dy = rand_array(y.raw_dim(), 72);
            let dw = conv2d_backward_weight(&x, &dy, k, s, p, MatmulPrecision::Full);
            let bw = (&dw - &naive_dw(&x, &dy, k, s, p))
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            // dx through the adjoint identity ⟨conv(x'), dy⟩ = ⟨x', dx⟩ for a random x'.
            let dx = conv2d_backward_input(&dy, wt.view(), s, p, (h, w), MatmulPrecision::Full);
            let x2 = rand_array(x.raw_dim(), 73);
            let (l, r) = (dot(&naive_conv(&x2, &wt, s, p), &dy), dot(&x2, &dx));
            assert!(
                fwd < 1e-12 && bw < 1e-9,
                "{n}x{cin}x{h}x{w}: forward {fwd:e}, dw {bw:e}"
            );
            assert!(
                (l - r).abs() < 1e-9 * l.abs().max(1.0),
                "{n}x{cin}x{h}x{w}: adjoint {l} vs {r}"
            );
        }
    }

    #[test]
    fn conv_transpose_matches_direct_loop_and_gradients() {
        for &(n, cin, cout, h, w, k, s) in &[
            (2, 3, 5, 4, 5, 3, 2),
            (2, 3, 5, 5, 4, 3, 1),
            (1, 4, 3, 3, 3, 1, 2),
        ] {
            let what = format!("conv_transpose2d {n}x{cin}x{h}x{w} -> {cout} k{k} s{s}");
            let x = rand_array(Dim([n, cin, h, w]), 30).into_dyn();
            let wt = rand_array(Dim([cin, cout, k, k]), 31).into_dyn();
            let y = conv_transpose2d_forward(&d4(&x), d4(&wt).view(), s, MatmulPrecision::Full);
            let d = &y - &naive_convt(&d4(&x), &d4(&wt), s);
            let worst = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(worst < 1e-12, "{what}: forward vs direct loop {worst:e}");
            let proj = rand_array(y.raw_dim(), 32);
            let dx =
                conv_transpose2d_backward_input(&proj, d4(&wt).view(), s, MatmulPrecision::Full);
            let dw = conv_transpose2d_backward_weight(&d4(&x), &proj, k, s, MatmulPrecision::Full);
            let loss_x = |xv: &ArrayD<f64>| {
                dot(
                    &conv_transpose2d_forward(&d4(xv), d4(&wt).view(), s, MatmulPrecision::Full),
                    &proj,
                )
            };
            check_gradient(
                &format!("{what} dx"),
                &x,
                &dx.into_dyn(),
                loss_x,
                1e-7,
                1e-6,
            );
            let loss_w = |wv: &ArrayD<f64>| {
                dot(
                    &conv_transpose2d_forward(&d4(&x), d4(wv).view(), s, MatmulPrecision::Full),
                    &proj,
                )
            };
            check_gradient(
                &format!("{what} dw"),
                &wt,
                &dw.into_dyn(),
                loss_w,
                1e-7,
                1e-6,
            );
        }
    }

    #[test]
    fn conv_transpose_is_adjoint_of_conv() {
        // ⟨conv2d(x), y⟩ = ⟨x, conv_transpose2d(y)⟩ with the same weight tensor (stride 2, pad 0).
        let (k, s) = (3, 2);
        let x = rand_array(Dim([2, 5, 9, 8]), 40);
        let w = rand_array(Dim([4, 5, k, k]), 41);
        let cx = conv2d_forward(&x, w.view(), s, 0, MatmulPrecision::Full);
        let y = rand_array(cx.raw_dim(), 42);
        let ty = conv_transpose2d_forward(&y, w.view(), s, MatmulPrecision::Full);
        // The transposed output is (H−1)s+k = 9 rows, 7 columns: x's last column is never read.
        assert_eq!(ty.dim(), (2, 5, 9, 7));
        let lhs = dot(&cx, &y);
        let rhs = dot(&x.slice(ndarray::s![.., .., .., ..7]).to_owned(), &ty);
        assert!(
            (lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
        // And conv2d_backward_input is the same map padded out to x's size.
        let bi = conv2d_backward_input(&y, w.view(), s, 0, (9, 8), MatmulPrecision::Full);
        assert!((dot(&x, &bi) - lhs).abs() < 1e-10 * lhs.abs().max(1.0));
    }
}
