// conv2d on bf16 tensor cores (`--precision bf16`): the three implicit GEMMs of conv2d.cu,
// C = A*B over K, with A and B gathered from the f32 tensors, rounded to bf16 (nearest even)
// as they are staged into shared memory, multiplied by mma.m16n8k16 (sincut_mma_bf16_16816,
// common.cuh) and accumulated in f32; outputs f32. conv_transpose2d reuses these as in f32.
//
// Block: a 64x64 tile of C (the f32 kernels' tile, so the launch grid is the same), K step 32,
// 128 threads = 4 warps in 2x2, each warp a 32x32 sub-tile = 2x4 mma tiles of 16x8 (32 f32
// accumulators per thread). Per K step: one thread per K index decomposes it into a small
// table (the only integer divisions of the loop: 1 per thread of the first warp); each thread's
// output pixel (its B column) is decomposed once before the loop.
#include "conv_gather.cuh"

#define TC_BM 64
#define TC_BN 64
#define TC_BK 32
#define TC_NT 128
// A shared row holds TC_BK/2 bf16 pairs plus 4 words of padding: with a stride of 20 words
// the 8 rows x 4 pairs of one fragment load fall in 32 different banks.
#define TC_LD (TC_BK / 2 + 4)

// acc[i][j] is the 16x8 mma tile i (rows), j (columns) of this warp's 32x32 sub-tile; element
// e of it is row 16i + g + 8(e >> 1), column 8j + 2t + (e & 1) (the C/D fragment layout).
template <class P>
__device__ __forceinline__ void tc_gemm(const P& p, int M, int k0, int k1, float acc[2][4][4]) {
    __shared__ unsigned As[TC_BM][TC_LD];  // As[m][kk/2]: A(m, kk), A(m, kk+1) as bf16x2
    __shared__ unsigned Bs[TC_BN][TC_LD];  // Bs[n][kk/2]: B(kk, n), B(kk+1, n) (column-major)
    __shared__ typename P::Ent tab[TC_BK];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
    // Staging roles, fixed for the whole K loop. A: pair column ap of rows ar + 8j (16
    // consecutive threads read 32 consecutive K elements of a row); B: column bn, pairs bp + 2j
    // (consecutive threads read consecutive output pixels).
    const int ap = tid & 15, ar = tid >> 4;
    const int bn = tid & 63, bp = tid >> 6;
    const typename P::Col col = p.col(n0 + bn);
    for (int kb = k0; kb < k1; kb += TC_BK) {
        if (tid < TC_BK) tab[tid] = p.ent(kb + tid, kb + tid < k1);
        // Also orders the previous step's fragment reads before this step's staging writes.
        __syncthreads();
        {
            const typename P::Ent e0 = tab[2 * ap], e1 = tab[2 * ap + 1];
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                const int m = ar + 8 * j, gm = m0 + m;
                float lo = 0.f, hi = 0.f;
                if (gm < M) {
                    if (e0.ok) lo = p.a(gm, e0);
                    if (e1.ok) hi = p.a(gm, e1);
                }
                As[m][ap] = sincut_pack_bf16x2(lo, hi);
            }
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int pp = bp + 2 * j;
            const typename P::Ent e0 = tab[2 * pp], e1 = tab[2 * pp + 1];
            const float lo = e0.ok ? p.b(col, e0) : 0.f;
            const float hi = e1.ok ? p.b(col, e1) : 0.f;
            Bs[bn][pp] = sincut_pack_bf16x2(lo, hi);
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < TC_BK / 16; ++ks) {
            const int c = ks * 8 + t;  // pair of K elements 2t, 2t+1 of this k16 slice
            unsigned af[2][4], bfr[4][2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int r = wm + 16 * i + g;
                af[i][0] = As[r][c];
                af[i][1] = As[r + 8][c];
                af[i][2] = As[r][c + 4];
                af[i][3] = As[r + 8][c + 4];
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int n = wn + 8 * j + g;
                bfr[j][0] = Bs[n][c];
                bfr[j][1] = Bs[n][c + 4];
            }
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) sincut_mma_bf16_16816(acc[i][j], af[i], bfr[j], acc[i][j]);
        }
    }
}

// Calls f(m, n, value) for each element of this thread's accumulators inside M x N.
template <class F>
__device__ __forceinline__ void tc_for_each(const float acc[2][4][4], int M, int N, F f) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.y * TC_BM + (warp >> 1) * 32, n0 = blockIdx.x * TC_BN + (warp & 1) * 32;
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int m = m0 + 16 * i + g + 8 * (e >> 1), n = n0 + 8 * j + 2 * t + (e & 1);
                if (m < M && n < N) f(m, n, acc[i][j][e]);
            }
}

// The kernels take the arguments of their f32 counterparts in conv2d.cu and run on the same
// grid, with 128 threads per block.

// y (N, Cout, Ho, Wo) = conv(x (N, Cin, H, W), w (Cout, Cin, k, k)).
extern "C" __global__ void __launch_bounds__(TC_NT)
    conv2d_fwd_bf16(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int nb,
                    int cin, int h, int wd, int cout, int k, int s, int p, int ho, int wo) {
    const int K = cin * k * k, N = nb * ho * wo, npix = ho * wo;
    float acc[2][4][4] = {};
    tc_gemm(ConvFwdPlan{x, w, cin, h, wd, k, s, p, ho, wo, K, N}, cout, 0, K, acc);
    tc_for_each(acc, cout, N, [&](int m, int n, float v) {
        const int img = n / npix, pix = n % npix;
        y[((long long)img * cout + m) * npix + pix] = v;
    });
}

// dx (N, Cin, H, W) from dy (N, Cout, Ho, Wo), one stride phase per blockIdx.z, as
// conv2d_bwd_input.
extern "C" __global__ void __launch_bounds__(TC_NT)
    conv2d_bwd_input_bf16(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                          int nb, int cin, int h, int wd, int cout, int k, int s, int p, int ho, int wo) {
    const ConvBwdInPlan plan = ConvBwdInPlan::make(dy, w, nb, cin, h, wd, cout, k, s, p, ho, wo, blockIdx.z);
    float acc[2][4][4] = {};
    tc_gemm(plan, cin, 0, plan.K, acc);
    tc_for_each(acc, cin, plan.N, [&](int m, int n, float v) { dx[plan.dx_offset(m, n)] = v; });
}

// Split z of dw (Cout, Cin*k*k): pixels [z*chunk, (z+1)*chunk) into part[z], as
// conv2d_bwd_weight (conv2d_sum_splits of conv2d.cu adds the splits).
extern "C" __global__ void __launch_bounds__(TC_NT)
    conv2d_bwd_weight_bf16(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ part,
                           int nb, int cin, int h, int wd, int cout, int k, int s, int p, int ho, int wo,
                           int chunk) {
    const int K = nb * ho * wo, N = cin * k * k;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    float acc[2][4][4] = {};
    if (k0 < k1) tc_gemm(ConvBwdWPlan{x, dy, cin, h, wd, cout, k, s, p, ho, wo, N}, cout, k0, k1, acc);
    float* out = part + (long long)blockIdx.z * cout * N;
    tc_for_each(acc, cout, N, [&](int m, int n, float v) { out[(long long)m * N + n] = v; });
}

// One mma on one warp, for tests (launch::conv2d::mma_selftest): d = a*b + c with a 16x16,
// b 16x8, c and d 16x8, all row-major f32. Each lane gathers its fragments by the PTX ISA's
// formulas for mma.m16n8k16 (element i of a fragment: register i/2, low half for even i), so
// the emulator's mma and the packing helper are checked against the documented layouts.
// d[128 + lane] holds the bits of sincut_pack_bf16x2(a[lane], b[lane]) (a swap of the halves
// would go unseen in d: it permutes A's columns and B's rows alike).
extern "C" __global__ void __launch_bounds__(32)
    mma_bf16_selftest(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ c,
                      float* __restrict__ d) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float ae[8], be[4], cf[4], df[4];
    for (int i = 0; i < 8; ++i) {
        const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
        const int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
        ae[i] = a[row * 16 + col];
    }
    for (int i = 0; i < 4; ++i) {
        const int row = 2 * t + (i & 1) + (i >= 2 ? 8 : 0);
        be[i] = b[row * 8 + g];
    }
    for (int i = 0; i < 4; ++i) cf[i] = c[(i < 2 ? g : g + 8) * 8 + 2 * t + (i & 1)];
    unsigned ar[4], br[2];
    for (int r = 0; r < 4; ++r) ar[r] = sincut_pack_bf16x2(ae[2 * r], ae[2 * r + 1]);
    for (int r = 0; r < 2; ++r) br[r] = sincut_pack_bf16x2(be[2 * r], be[2 * r + 1]);
    sincut_mma_bf16_16816(df, ar, br, cf);
    for (int i = 0; i < 4; ++i) d[(i < 2 ? g : g + 8) * 8 + 2 * t + (i & 1)] = df[i];
    d[128 + lane] = __uint_as_float(sincut_pack_bf16x2(a[lane], b[lane]));
}
