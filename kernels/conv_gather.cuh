// Gather plans of conv2d's three implicit GEMMs (C = A*B over K), shared by the f32 tile
// (conv2d.cu) and the bf16 tensor-core tile (conv2d_bf16.cu). A plan splits each gather into
// what depends on the K index (`Ent`, decomposed once per K step into a shared table by a few
// threads) and what depends on the output column (`Col`, decomposed once per thread before the
// K loop), so the loop itself does no integer division:
//   ent(kk, ok)  the K index kk (ok: kk inside this block's K range)
//   col(n)       the column n of C (ok: n < N)
//   a(m, ent)    A(m, kk), for m < M and ent.ok only
//   b(col, ent)  B(kk, n), for ent.ok only (0 where col is not ok or the tap is padding)
// Included by name: src/cuda/kernels.rs inlines it (NVRTC gets no include path).

// Stride phases of the input gradient (ConvBwdInPlan): for the phase r in [0, s) of one axis,
// the taps kh = r + s*i (i < taps), the input positions ih = s*q + r - p (q from first, count
// pixels) of an axis of length len. The launcher computes the same (src/cuda/launch/conv2d.rs).
__device__ __forceinline__ int conv_phase_taps(int k, int s, int r) { return r < k ? (k - r + s - 1) / s : 0; }
__device__ __forceinline__ int conv_phase_first(int s, int p, int r) { return (p - r + s - 1) / s; }
__device__ __forceinline__ int conv_phase_pixels(int len, int s, int p, int r) {
    const int last = len - 1 + p - r;  // s*q <= last
    return last < 0 ? 0 : max(0, last / s - conv_phase_first(s, p, r) + 1);
}

// Forward: A = w (Cout, K) row-major, K = (ci, kh, kw); B = im2col(x), column n = output pixel
// (img, oh, ow).
struct ConvFwdPlan {
    const float* x;
    const float* w;
    int cin, h, wd, k, s, p, ho, wo, K, N;
    struct Ent {
        int a, b, kh, kw;  // a: column of w; b: (ci*h + kh)*wd + kw
        bool ok;
    };
    struct Col {
        long long off;  // x offset of (img, 0, oh*s - p, ow*s - p)
        int ih0, iw0;
        bool ok;
    };
    __device__ Ent ent(int kk, bool ok) const {
        const int kw = kk % k, q = kk / k, kh = q % k, ci = q / k;
        return Ent{kk, (ci * h + kh) * wd + kw, kh, kw, ok};
    }
    __device__ float a(int m, const Ent& e) const { return w[(long long)m * K + e.a]; }
    __device__ Col col(int n) const {
        if (n >= N) return Col{0, 0, 0, false};
        const int npix = ho * wo, img = n / npix, r = n % npix, oh = r / wo, ow = r % wo;
        const int ih0 = oh * s - p, iw0 = ow * s - p;
        return Col{(long long)img * cin * h * wd + (long long)ih0 * wd + iw0, ih0, iw0, true};
    }
    __device__ float b(const Col& c, const Ent& e) const {
        const int ih = c.ih0 + e.kh, iw = c.iw0 + e.kw;
        if (!c.ok || (unsigned)ih >= (unsigned)h || (unsigned)iw >= (unsigned)wd) return 0.f;
        return x[c.off + e.b];
    }
};

// Input gradient, one stride phase at a time. dx(img, ci, ih, iw) sums w[co][ci][kh][kw] *
// dy(img, co, oh, ow) over the taps with oh*s + kh - p = ih (likewise w). Writing ih + p =
// s*hq + hr and kh = s*khq + khr, a tap contributes iff khr == hr, and then oh = hq - khq. So
// the input pixels split into s*s phases (hr, wr), each with its own taps kh = hr + s*khq,
// kw = wr + s*kwq: a phase's GEMM has K = Cout * (its taps) and N = its pixels, and none of its
// products is a structural zero (a stride-2 layer would otherwise multiply 3 zeros of 4).
// Stride 1 is one phase with every tap, in the order (co, kh, kw).
// A(ci, (co, khq, kwq)) = w[co][ci][kh][kw]; B((co, khq, kwq), n) = dy(img, co, hq - khq,
// wq - kwq), column n = (img, hq - hq0, wq - wq0) of the phase; blockIdx.z = hr*s + wr.
struct ConvBwdInPlan {
    const float* dy;
    const float* w;
    int cin, h, wd, cout, k, s, p, ho, wo;
    // This phase, reduced to what the loop and the store need (fewer live registers):
    int nkh, nkw;  // its taps per axis
    int tap0;      // hr*k + wr: the w offset of its first tap
    int hq0, wq0;  // its first pixel: ih = s*hq0 + hr - p >= 0 (likewise w)
    int ih0, iw0;  // that pixel
    int nw, npix;  // its pixels per row, per image
    int K, N;      // cout*nkh*nkw, nb*npix
    struct Ent {
        int a, b, khq, kwq;  // a: w offset of (co, 0, kh, kw); b: co*ho*wo
        bool ok;
    };
    struct Col {
        long long off;  // img*cout*ho*wo
        int hq, wq;
        bool ok;
    };
    __device__ static ConvBwdInPlan make(const float* dy, const float* w, int nb, int cin, int h, int wd, int cout,
                                         int k, int s, int p, int ho, int wo, int phase) {
        ConvBwdInPlan q{dy, w, cin, h, wd, cout, k, s, p, ho, wo};
        const int hr = phase / s, wr = phase % s;
        q.nkh = conv_phase_taps(k, s, hr);
        q.nkw = conv_phase_taps(k, s, wr);
        q.tap0 = hr * k + wr;
        q.hq0 = conv_phase_first(s, p, hr);
        q.wq0 = conv_phase_first(s, p, wr);
        q.ih0 = s * q.hq0 + hr - p;
        q.iw0 = s * q.wq0 + wr - p;
        q.nw = conv_phase_pixels(wd, s, p, wr);
        q.npix = conv_phase_pixels(h, s, p, hr) * q.nw;
        q.K = cout * q.nkh * q.nkw;
        q.N = nb * q.npix;
        return q;
    }
    __device__ Ent ent(int kk, bool ok) const {
        if (!ok) return Ent{0, 0, 0, 0, false};
        const int kwq = kk % nkw, q = kk / nkw, khq = q % nkh, co = q / nkh;
        return Ent{co * cin * k * k + tap0 + s * (khq * k + kwq), co * ho * wo, khq, kwq, true};
    }
    __device__ float a(int m, const Ent& e) const { return w[e.a + (long long)m * k * k]; }
    __device__ Col col(int n) const {
        if (n >= N) return Col{0, 0, 0, false};
        const int img = n / npix, r = n % npix;
        return Col{(long long)img * cout * ho * wo, hq0 + r / nw, wq0 + r % nw, true};
    }
    __device__ float b(const Col& c, const Ent& e) const {
        const int oh = c.hq - e.khq, ow = c.wq - e.kwq;
        if (!c.ok || (unsigned)oh >= (unsigned)ho || (unsigned)ow >= (unsigned)wo) return 0.f;
        return dy[c.off + e.b + oh * wo + ow];
    }
    // dx offset of column n (n < N) in channel m.
    __device__ long long dx_offset(int m, int n) const {
        const int img = n / npix, r = n % npix;
        return (((long long)img * cin + m) * h + ih0 + s * (r / nw)) * wd + iw0 + s * (r % nw);
    }
};

// Weight gradient: K = output pixels (img, oh, ow); A(co, pix) = dy; B(pix, r) = x at
// (img, ci, oh*s + kh - p, ow*s + kw - p), column r = (ci, kh, kw).
struct ConvBwdWPlan {
    const float* x;
    const float* dy;
    int cin, h, wd, cout, k, s, p, ho, wo, N;
    struct Ent {
        long long a, b;  // a: dy offset of (img, 0, oh, ow); b: x offset of image img
        int ihs, iws;    // oh*s - p, ow*s - p
        bool ok;
    };
    struct Col {
        long long off;  // ci*h*wd
        int kh, kw;
        bool ok;
    };
    __device__ Ent ent(int kk, bool ok) const {
        const int npix = ho * wo, img = kk / npix, pix = kk % npix, oh = pix / wo, ow = pix % wo;
        return Ent{(long long)img * cout * npix + pix, (long long)img * cin * h * wd, oh * s - p, ow * s - p, ok};
    }
    __device__ float a(int m, const Ent& e) const { return dy[e.a + (long long)m * ho * wo]; }
    __device__ Col col(int n) const {
        if (n >= N) return Col{0, 0, 0, false};
        const int kw = n % k, q = n / k, kh = q % k, ci = q / k;
        return Col{(long long)ci * h * wd, kh, kw, true};
    }
    __device__ float b(const Col& c, const Ent& e) const {
        const int ih = e.ihs + c.kh, iw = e.iws + c.kw;
        if (!c.ok || (unsigned)ih >= (unsigned)h || (unsigned)iw >= (unsigned)wd) return 0.f;
        return x[e.b + c.off + (long long)ih * wd + iw];
    }
};

// Calls f(m, n, value) for each of this thread's mma accumulators inside M x N, for a block
// tile S of WARPS_M x WARPS_N warps, each a (16*WM) x (8*WN) sub-tile of 16x8 mma tiles:
// acc[i][j][e] is row 16i + g + 8(e >> 1), column 8j + 2t + (e & 1) of the warp's sub-tile
// (the C/D fragment layout, g = lane/4, t = lane%4). Shared by both bf16 kernel files.
template <class S, class F>
__device__ __forceinline__ void mma_tile_for_each(const float acc[S::WM][S::WN][4], int M, int N, F f) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.y * S::BM + (warp / S::WARPS_N) * 16 * S::WM;
    const int n0 = blockIdx.x * S::BN + (warp % S::WARPS_N) * 8 * S::WN;
#pragma unroll
    for (int i = 0; i < S::WM; ++i)
#pragma unroll
        for (int j = 0; j < S::WN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int m = m0 + 16 * i + g + 8 * (e >> 1), n = n0 + 8 * j + 2 * t + (e & 1);
                if (m < M && n < N) f(m, n, acc[i][j][e]);
            }
}

// The three entry points of one tile, under the suffix SUFFIX, calling the device functions FWD,
// BWD_IN and BWD_W with the kernels' common arguments; BOUNDS and BOUNDS_IN are their
// `__launch_bounds__` arguments, parenthesised. Both kernel files declare their tiles with it
// (the emulator finds entry points after preprocessing).
#define CONV_ENTRY_POINTS(SUFFIX, FWD, BWD_IN, BWD_W, BOUNDS, BOUNDS_IN)                                       \
    extern "C" __global__ void __launch_bounds__ BOUNDS                                                           \
        conv2d_fwd##SUFFIX(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int nb, \
                           int cin, int h, int wd, int cout, int k, int s, int p, int ho, int wo, int chunk) {     \
        FWD(x, w, y, nb, cin, h, wd, cout, k, s, p, ho, wo, chunk);                                               \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__ BOUNDS_IN conv2d_bwd_input##SUFFIX(                              \
        const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx, int nb, int cin, int h, \
        int wd, int cout, int k, int s, int p, int ho, int wo, int chunk) {                                       \
        BWD_IN(dy, w, dx, nb, cin, h, wd, cout, k, s, p, ho, wo, chunk);                                          \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__ BOUNDS conv2d_bwd_weight##SUFFIX(                                \
        const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ part, int nb, int cin,     \
        int h, int wd, int cout, int k, int s, int p, int ho, int wo, int chunk) {                                \
        BWD_W(x, dy, part, nb, cin, h, wd, cout, k, s, p, ho, wo, chunk);                                         \
    }
