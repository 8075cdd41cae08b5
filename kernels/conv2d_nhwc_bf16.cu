// conv2d's bf16 tensor-core passes on bf16 NHWC operands (`--precision bf16` where the channels a
// pass's K runs over are a multiple of 8; src/cuda/launch/conv2d.rs chooses). The gathering
// kernels of conv2d_bf16.cu load 36 scalar f32 elements per thread and K step, each with its
// bounds checks, and round them on the way: on an H200 their tensor units idled, waiting on
// those loads (docs/PERF-NOTES.md). Here the operands are converted once per pass: activations
// to NHWC bf16 (nchw_to_nhwc_bf16), weights to rows of (kh, kw, c) bf16 (their NHWC layout),
// so 8 consecutive K elements are one aligned 16-byte load, copied straight to shared memory by
// cp.async (zero-filled at padding taps) STAGES - 1 K steps ahead of the mma, and read into
// fragments by ldmatrix.
//
// Tiles (NhwcShape): BM x 128 of C with 4 warps side by side, each BM x 32 (WM x 4 mma tiles of
// 16x8), K step 32: BM = 80 where C's rows are a multiple of 80 (the official widths 80 and 160),
// else 64. Passes:
// - conv2d_fwd_nhwc: y = conv(x) as C(m, n) = sum over K = (kh, kw, c) of W(m, K) * X(K, n), n an
//   output pixel. With one stride phase's taps turned by 180 degrees and transposed
//   (conv_weight_phase_to_bf16), the padding that aligns them and a strided placement of
//   its output, the same kernel computes that phase of an input gradient.
// - conv2d_bwd_weight_nhwc: dW(m = co, n = (kh, kw, ci)) = sum over the batch's output pixels of
//   dY(pixel, co) * X(shifted pixel, ci); both operands are pixel-major in shared memory and
//   ldmatrix transposes them.
// Both write f32 results as the conv2d.cu passes do (a split of K writes its own slice, added
// by conv2d_sum_splits).

#include "conv_gather.cuh"

typedef unsigned short bf16_t;  // bf16 bits

#define NH_BK 32  // K step: 4 chunks of 8 bf16 per row of a K-contiguous tile

template <int WM_, int STAGES_>
struct NhwcShape {
    static constexpr int WM = WM_, WN = 4, WARPS = 4, WARPS_M = 1, WARPS_N = WARPS, STAGES = STAGES_;
    static constexpr int NT = 32 * WARPS, BM = 16 * WM, BN = 8 * WN * WARPS;
};
using NhwcTile80 = NhwcShape<5, 3>;
using NhwcTile64 = NhwcShape<4, 3>;

// Element offset of chunk q (8 bf16) of row r in a K-contiguous tile of 32-element rows. The
// chunk index is XOR-swizzled by (r / 2) % 4 so that the 8 rows one ldmatrix reads at the same
// logical chunk fall in 8 different 16-byte bank groups (64-byte rows would put rows r and
// r + 2 in the same banks).
__device__ __forceinline__ int nh_swizzle(int r, int q) { return r * NH_BK + 8 * (q ^ ((r >> 1) & 3)); }

// acc[i][j]: this warp's mma tile i (rows), j (columns); element e at row 16i + g + 8(e >> 1),
// column 8j + 2t + (e & 1) of the warp's BM x 32 sub-tile.
template <class S>
__device__ __forceinline__ void nh_mma_step(float acc[S::WM][S::WN][4], const unsigned af[S::WM][4],
                                            const unsigned bf[S::WN][2]) {
#pragma unroll
    for (int i = 0; i < S::WM; ++i)
#pragma unroll
        for (int j = 0; j < S::WN; ++j) sincut_mma_bf16_16816(acc[i][j], af[i], bf[j], acc[i][j]);
}

// The B fragments of mma column tiles j and j + 1 from one ldmatrix.x4 (registers: tile j's
// k 0-7 and 8-15, then tile j + 1's).
template <class S>
__device__ __forceinline__ void nh_b_pair(unsigned bf[S::WN][2], int j, const unsigned r[4]) {
    bf[j][0] = r[0];
    bf[j][1] = r[1];
    bf[j + 1][0] = r[2];
    bf[j + 1][1] = r[3];
}

// The multistage loop shared by both passes: load(stage, step) issues one K step's cp.async
// into a stage (called once per step, in order), compute(stage) multiplies a landed stage out.
template <class S, class Load, class Compute>
__device__ __forceinline__ void nh_pipeline(int steps, Load load, Compute compute) {
#pragma unroll
    for (int st = 0; st < S::STAGES - 1; ++st) {
        if (st < steps) load(st, st);
        sincut_cp_async_commit();
    }
    for (int it = 0; it < steps; ++it) {
        sincut_cp_async_wait<S::STAGES - 2>();
        // Step it has landed for every thread, and every thread is done with step it - 1's
        // stage, which the load below refills.
        __syncthreads();
        const int next = it + S::STAGES - 1;
        if (next < steps) load(next % S::STAGES, next);
        sincut_cp_async_commit();
        compute(it % S::STAGES);
    }
}

// The conv of x (nb, h, wd, c) NHWC bf16 with wt (m_rows, kh_n*kw_n*c) bf16 (a kh_n x kw_n
// kernel, rows of (kh, kw, c)), stride s, padding ph (rows) and pw (columns; either may be
// negative), c a multiple of 8: an (nb, m_rows, ho, wo) result whose pixel (oh, ow) is stored
// at (out_y0 + out_s*oh, out_x0 + out_s*ow) of y (nb, m_rows, out_h, out_w) f32. A plain conv
// has out_s = 1 and out = (0, 0), ho x wo; a stride phase of an input gradient writes every
// out_s-th pixel of dx. K split over blockIdx.z in `chunk`s (multiples of 32); split z writes
// its own copy of y. With a bias (unsplit only), each element is stored as
// sincut_flrelu(element, bias[row]): the layer's bias and leaky ReLU without another pass.
template <class S>
__device__ __forceinline__ void nh_fwd(const bf16_t* __restrict__ x, const bf16_t* __restrict__ wt,
                                       float* __restrict__ y, int nb, int c, int h, int wd, int m_rows, int kh_n,
                                       int kw_n, int s, int ph, int pw, int ho, int wo, int chunk, int out_h,
                                       int out_w, int out_s, int out_y0, int out_x0,
                                       const float* __restrict__ bias) {
    __shared__ __align__(16) bf16_t As[S::STAGES][S::BM * NH_BK];
    __shared__ __align__(16) bf16_t Bs[S::STAGES][S::BN * NH_BK];
    constexpr int ROW_B = NH_BK * 2, A_STAGE = S::BM * ROW_B, B_STAGE = S::BN * ROW_B;  // bytes
    constexpr int ROWS = S::NT / 4;  // rows one pass of the block's threads copies
    constexpr int A_PASSES = (S::BM + ROWS - 1) / ROWS, B_PASSES = S::BN / ROWS;
    const int K = kh_n * kw_n * c, N = nb * ho * wo, npix = ho * wo;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int m0 = blockIdx.y * S::BM, n0 = blockIdx.x * S::BN;
    // Copy roles: chunk q of rows r0 + ROWS*j; q's K position kb + 8q is tracked as (kh, kw, ci).
    const int q = tid & 3, r0 = tid >> 2;
    int pix0[B_PASSES], ih0[B_PASSES], iw0[B_PASSES];  // B rows: the output pixels' windows
#pragma unroll
    for (int j = 0; j < B_PASSES; ++j) {
        const int n = n0 + r0 + ROWS * j;
        const int img = n / npix, r = n % npix, oh = r / wo, ow = r % wo;
        pix0[j] = n < N ? img * h * wd : 0;
        ih0[j] = n < N ? oh * s - ph : -(1 << 30);  // a column past N reads padding only
        iw0[j] = ow * s - pw;
    }
    int ci = (k0 + 8 * q) % c, kw = (k0 + 8 * q) / c % kw_n, kh = (k0 + 8 * q) / c / kw_n;
    // Shared addresses, once (nh_swizzle in bytes): rows r0 + ROWS*j keep r0's swizzle (ROWS/2
    // is a multiple of 4), and the rows an ldmatrix lane addresses keep (lane / 2) % 4.
    const sincut_smem_t a_smem = sincut_smem_base(&As[0][0]), b_smem = sincut_smem_base(&Bs[0][0]);
    const int cp_dst = 2 * nh_swizzle(r0, q), sw = (lane >> 1) & 3;
    int a_ld[NH_BK / 16], b_ld[NH_BK / 16];
#pragma unroll
    for (int ks = 0; ks < NH_BK / 16; ++ks) {
        a_ld[ks] = ((lane & 7) + 8 * ((lane >> 3) & 1)) * ROW_B + 16 * ((2 * ks + (lane >> 4)) ^ sw);
        b_ld[ks] = (warp * 32 + (lane & 7) + 8 * (lane >> 4)) * ROW_B + 16 * ((2 * ks + ((lane >> 3) & 1)) ^ sw);
    }
    const auto load = [&](int stage, int step) {
        const int kk = k0 + step * NH_BK + 8 * q;
        const bool kok = kk < k1;
#pragma unroll
        for (int j = 0; j < A_PASSES; ++j) {
            const int r = r0 + ROWS * j;
            if (r < S::BM) {
                const bool ok = kok && m0 + r < m_rows;
                const bf16_t* src = ok ? wt + (long long)(m0 + r) * K + kk : wt;
                sincut_cp_async16(a_smem + stage * A_STAGE + cp_dst + ROWS * ROW_B * j, src, ok ? 16 : 0);
            }
        }
#pragma unroll
        for (int j = 0; j < B_PASSES; ++j) {
            const int ih = ih0[j] + kh, iw = iw0[j] + kw;
            const bool ok = kok && (unsigned)ih < (unsigned)h && (unsigned)iw < (unsigned)wd;
            const bf16_t* src = ok ? x + ((long long)pix0[j] + ih * wd + iw) * c + ci : x;
            sincut_cp_async16(b_smem + stage * B_STAGE + cp_dst + ROWS * ROW_B * j, src, ok ? 16 : 0);
        }
        // The next step's K position: 32 further along (kh, kw, ci), c may be below 32.
        ci += NH_BK;
        while (ci >= c) {
            ci -= c;
            if (++kw == kw_n) {
                kw = 0;
                ++kh;
            }
        }
    };
    float acc[S::WM][S::WN][4] = {};
    const auto compute = [&](int stage) {
#pragma unroll
        for (int ks = 0; ks < NH_BK / 16; ++ks) {
            unsigned af[S::WM][4], bf[S::WN][2];
            // A (rows m, K contiguous): matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15) of each mma
            // row tile are a[0..3]; lane 8i + r addresses row r of matrix i.
#pragma unroll
            for (int i = 0; i < S::WM; ++i)
                sincut_ldmatrix_x4<false>(af[i], a_smem + stage * A_STAGE + a_ld[ks] + 16 * ROW_B * i);
            // B (rows n, K contiguous): columns of tiles j, j + 1 at k 0-7 and 8-15.
#pragma unroll
            for (int j = 0; j < S::WN; j += 2) {
                unsigned r[4];
                sincut_ldmatrix_x4<false>(r, b_smem + stage * B_STAGE + b_ld[ks] + 8 * ROW_B * j);
                nh_b_pair<S>(bf, j, r);
            }
            nh_mma_step<S>(acc, af, bf);
        }
    };
    if (k0 < k1) nh_pipeline<S>((k1 - k0 + NH_BK - 1) / NH_BK, load, compute);
    float* out = y + (long long)blockIdx.z * nb * m_rows * out_h * out_w;
    mma_tile_for_each<S>(acc, m_rows, N, [&](int m, int n, float v) {
        const int img = n / npix, pix = n % npix;
        const int oy = out_y0 + out_s * (pix / wo), ox = out_x0 + out_s * (pix % wo);
        out[(((long long)img * m_rows + m) * out_h + oy) * out_w + ox] = bias ? sincut_flrelu(v, bias[m]) : v;
    });
}

// Row stride (bf16) of a pixel-major tile `cols` wide: 8 bf16 of padding put the 8 rows one
// ldmatrix reads in 8 different 16-byte bank groups (stride 16 mod 128 bytes or 48 for 80).
#define NH_PIXEL_LD(cols) ((cols) + 8)

// part (splits, m_rows, c, k, k) f32: dW = sum over the output pixels of dy (nb*ho*wo, m_rows)
// NHWC bf16 times x (nb, h, wd, c) NHWC bf16 at the pixel's window; C's columns n = (kh, kw, ci).
// c and m_rows multiples of 8. K (pixels) split over blockIdx.z in `chunk`s (multiples of 32).
template <class S>
__device__ __forceinline__ void nh_bwd_weight(const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy,
                                              float* __restrict__ part, int nb, int c, int h, int wd, int m_rows,
                                              int k, int s, int p, int ho, int wo, int chunk) {
    constexpr int LA = NH_PIXEL_LD(S::BM), LB = NH_PIXEL_LD(S::BN);
    __shared__ __align__(16) bf16_t As[S::STAGES][NH_BK * LA];  // As[pixel][m]
    __shared__ __align__(16) bf16_t Bs[S::STAGES][NH_BK * LB];  // Bs[pixel][n]
    constexpr int A_CHUNKS = S::BM / 8, A_PASSES = (NH_BK * A_CHUNKS + S::NT - 1) / S::NT;
    constexpr int B_CHUNKS = S::BN / 8, B_ROWS = S::NT / B_CHUNKS, B_PASSES = NH_BK / B_ROWS;
    constexpr int A_STAGE = NH_BK * LA * 2, B_STAGE = NH_BK * LB * 2;  // bytes
    const int K = nb * ho * wo, N = k * k * c;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int m0 = blockIdx.y * S::BM, n0 = blockIdx.x * S::BN;
    // B roles: chunk bq of pixel rows br + B_ROWS*j. The chunk's column (kh, kw, ci) is fixed;
    // each row's pixel (img, oh, ow) moves 32 on per step.
    const int bq = tid % B_CHUNKS, br = tid / B_CHUNKS;
    const int nn = n0 + 8 * bq;
    const bool col_ok = nn < N;
    const int ci = nn % c, kw = nn / c % k, kh = nn / c / k;
    int img[B_PASSES], oh[B_PASSES], ow[B_PASSES];
#pragma unroll
    for (int j = 0; j < B_PASSES; ++j) {
        const int pq = k0 + br + B_ROWS * j, npix = ho * wo;
        img[j] = pq / npix;
        oh[j] = pq % npix / wo;
        ow[j] = pq % wo;
    }
    // Shared addresses, once: each A copy's row and chunk, B's first row, and the ldmatrix rows.
    const sincut_smem_t a_smem = sincut_smem_base(&As[0][0]), b_smem = sincut_smem_base(&Bs[0][0]);
    int a_row[A_PASSES], a_col[A_PASSES];
#pragma unroll
    for (int j = 0; j < A_PASSES; ++j) {
        a_row[j] = (tid + S::NT * j) / A_CHUNKS;
        a_col[j] = 8 * ((tid + S::NT * j) % A_CHUNKS);
    }
    const int b_dst = (br * LB + 8 * bq) * 2;
    const int a_ld = (((lane & 7) + 8 * (lane >> 4)) * LA + 8 * ((lane >> 3) & 1)) * 2;
    const int b_ld = (((lane & 7) + 8 * ((lane >> 3) & 1)) * LB + warp * 32 + 8 * (lane >> 4)) * 2;
    const auto load = [&](int stage, int step) {
        const int kb = k0 + step * NH_BK;
#pragma unroll
        for (int j = 0; j < A_PASSES; ++j) {
            const int r = a_row[j];
            if (r < NH_BK) {
                const bool ok = kb + r < k1 && m0 + a_col[j] < m_rows;
                const bf16_t* src = ok ? dy + (long long)(kb + r) * m_rows + m0 + a_col[j] : dy;
                sincut_cp_async16(a_smem + stage * A_STAGE + (r * LA + a_col[j]) * 2, src, ok ? 16 : 0);
            }
        }
#pragma unroll
        for (int j = 0; j < B_PASSES; ++j) {
            const int r = br + B_ROWS * j;
            const int ih = oh[j] * s - p + kh, iw = ow[j] * s - p + kw;
            const bool ok =
                col_ok && kb + r < k1 && (unsigned)ih < (unsigned)h && (unsigned)iw < (unsigned)wd;
            const bf16_t* src = ok ? x + (((long long)img[j] * h + ih) * wd + iw) * c + ci : x;
            sincut_cp_async16(b_smem + stage * B_STAGE + b_dst + B_ROWS * LB * 2 * j, src, ok ? 16 : 0);
            ow[j] += NH_BK;
            while (ow[j] >= wo) {
                ow[j] -= wo;
                if (++oh[j] == ho) {
                    oh[j] = 0;
                    ++img[j];
                }
            }
        }
    };
    float acc[S::WM][S::WN][4] = {};
    const auto compute = [&](int stage) {
#pragma unroll
        for (int ks = 0; ks < NH_BK / 16; ++ks) {
            unsigned af[S::WM][4], bf[S::WN][2];
            // A is stored [k][m]: transposed loads of (k 0-7, m 0-7), (k 0-7, m 8-15),
            // (k 8-15, m 0-7), (k 8-15, m 8-15) give a[0..3].
#pragma unroll
            for (int i = 0; i < S::WM; ++i)
                sincut_ldmatrix_x4<true>(af[i], a_smem + stage * A_STAGE + a_ld + (16 * ks * LA + 16 * i) * 2);
            // B is stored [k][n]: (k 0-7 | 8-15) x (columns of tile j | j + 1).
#pragma unroll
            for (int j = 0; j < S::WN; j += 2) {
                unsigned r[4];
                sincut_ldmatrix_x4<true>(r, b_smem + stage * B_STAGE + b_ld + (16 * ks * LB + 8 * j) * 2);
                nh_b_pair<S>(bf, j, r);
            }
            nh_mma_step<S>(acc, af, bf);
        }
    };
    if (k0 < k1) nh_pipeline<S>((k1 - k0 + NH_BK - 1) / NH_BK, load, compute);
    float* out = part + (long long)blockIdx.z * m_rows * N;
    mma_tile_for_each<S>(acc, m_rows, N, [&](int m, int n, float v) {
        const int cc = n % c, tap = n / c;  // tap = kh*k + kw
        out[((long long)m * c + cc) * k * k + tap] = v;
    });
}

#define NHWC_ENTRY_POINTS(SUFFIX, S)                                                                                \
    extern "C" __global__ void __launch_bounds__(128, 3)                                                            \
        conv2d_fwd_nhwc##SUFFIX(const bf16_t* __restrict__ x, const bf16_t* __restrict__ wt, float* __restrict__ y, \
                                int nb, int c, int h, int wd, int m_rows, int kh_n, int kw_n, int s, int ph, int pw, \
                                int ho, int wo, int chunk, int out_h, int out_w, int out_s, int out_y0,             \
                                int out_x0, const float* __restrict__ bias) {                                      \
        nh_fwd<S>(x, wt, y, nb, c, h, wd, m_rows, kh_n, kw_n, s, ph, pw, ho, wo, chunk, out_h, out_w, out_s,        \
                  out_y0, out_x0, bias);                                                                            \
    }                                                                                                               \
    extern "C" __global__ void __launch_bounds__(128, 3) conv2d_bwd_weight_nhwc##SUFFIX(                            \
        const bf16_t* __restrict__ x, const bf16_t* __restrict__ dy, float* __restrict__ part, int nb, int c, int h, \
        int wd, int m_rows, int k, int s, int p, int ho, int wo, int chunk) {                                       \
        nh_bwd_weight<S>(x, dy, part, nb, c, h, wd, m_rows, k, s, p, ho, wo, chunk);                                \
    }
NHWC_ENTRY_POINTS(_m80, NhwcTile80)
NHWC_ENTRY_POINTS(_m64, NhwcTile64)

// y (nb, hw, c) bf16 = x (nb, c, hw) f32 rounded to nearest even. Grid (ceil(hw/32), ceil(c/32),
// up to 65535 images at a time), 256 threads: a 32-channel x 32-pixel tile goes through shared
// memory so that both the reads (along pixels) and the writes (along channels) are contiguous.
extern "C" __global__ void __launch_bounds__(256)
    nchw_to_nhwc_bf16(const float* __restrict__ x, bf16_t* __restrict__ y, int nb, int c, int hw) {
    __shared__ float tile[32][33];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    for (long long img = blockIdx.z; img < nb; img += gridDim.z) {
        for (int i = ty; i < 32; i += 8) {
            const int ch = c0 + i, px = p0 + tx;
            tile[i][tx] = (ch < c && px < hw) ? x[(img * c + ch) * hw + px] : 0.f;
        }
        __syncthreads();
        for (int i = ty; i < 32; i += 8) {
            const int px = p0 + i, ch = c0 + tx;
            if (px < hw && ch < c)
                y[(img * hw + px) * c + ch] = (bf16_t)(sincut_pack_bf16x2(tile[tx][i], 0.f) & 0xffffu);
        }
        __syncthreads();  // the tile is refilled for the next image
    }
}

// Conv weights w (cout, cin, k, k) f32 as the input gradient's bf16 GEMM rows for stride phase
// (hr, wr) of a stride-s layer: (cin, (i, j, co)) over the phase's taps kh = hr + s*(nkh-1-i),
// kw = wr + s*(nkw-1-j) (conv_phase_taps), turned by 180 degrees; for s = 1 that is
// w[co][ci][k-1-i][k-1-j]. (The forward's rows (cout, (kh, kw, ci)) are w in NHWC layout:
// nchw_to_nhwc_bf16 makes them.)
extern "C" __global__ void __launch_bounds__(256)
    conv_weight_phase_to_bf16(const float* __restrict__ w, bf16_t* __restrict__ out, int cout, int cin, int k,
                              int s, int hr, int wr) {
    const int nkh = conv_phase_taps(k, s, hr), nkw = conv_phase_taps(k, s, wr);
    const long long per_row = (long long)nkh * nkw * cout;
    SINCUT_GRID_STRIDE(i, cin * per_row) {
        const int ci = (int)(i / per_row), r = (int)(i % per_row);
        const int tap = r / cout, co = r % cout;
        const int kh = hr + s * (nkh - 1 - tap / nkw), kw = wr + s * (nkw - 1 - tap % nkw);
        out[i] = (bf16_t)(sincut_pack_bf16x2(w[(((long long)co * cin + ci) * k + kh) * k + kw], 0.f) & 0xffffu);
    }
}
