// conv2d on bf16 tensor cores (`--precision bf16`): the three implicit GEMMs of conv2d.cu,
// C = A*B over K, with A and B gathered from the f32 tensors, rounded to bf16 (nearest even)
// as they are staged into shared memory, multiplied by mma.m16n8k16 (sincut_mma_bf16_16816,
// common.cuh) and accumulated in f32; outputs f32. conv_transpose2d reuses these as in f32.
//
// Two block shapes (TcShape), K step 32:
// - TcTile64: a 64x64 tile of C, 128 threads = 4 warps in 2x2, each warp 32x32 = 2x4 mma
//   tiles of 16x8 (32 f32 accumulators per thread). For any row count.
// - TcTile80 (`_m80` kernels): an 80x128 tile, 256 threads = 8 warps side by side, each warp
//   80x16 = 5x2 mma tiles (40 accumulators). Where the rows are a multiple of 80 (the official
//   widths 80 and 160, then no padded rows); a thread gathers 26 elements per step for its
//   warp's 20 mma, where the 64x64 tile gathers 32 for 16.
// Per K step: one thread per K index decomposes it into a small table (the only integer
// divisions of the loop); each thread's output pixel (its B column) is decomposed once before
// the loop.
#include "conv_gather.cuh"

#define TC_BK 32
// A shared row holds TC_BK/2 bf16 pairs plus 4 words of padding: with a stride of 20 words
// the 8 rows x 4 pairs of one fragment load fall in 32 different banks.
#define TC_LD (TC_BK / 2 + 4)

// Warps WARPS_M x WARPS_N, each a (16*WM) x (8*WN) sub-tile of mma tiles.
template <int WARPS_M_, int WARPS_N_, int WM_, int WN_>
struct TcShape {
    static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, WM = WM_, WN = WN_;
    static constexpr int NT = 32 * WARPS_M * WARPS_N;
    static constexpr int BM = WARPS_M * 16 * WM, BN = WARPS_N * 8 * WN;
    // Staging: 16 threads per A row (one K pair each), A_STEP rows apart; B_STEP threads per
    // B column, pairs B_STEP apart.
    static constexpr int A_STEP = NT / 16, A_ROWS = BM / A_STEP;
    static constexpr int B_STEP = NT / BN, B_PAIRS = (TC_BK / 2) / B_STEP;
    static_assert(BM % A_STEP == 0 && NT % BN == 0 && (TC_BK / 2) % B_STEP == 0, "staging roles");
};
using TcTile64 = TcShape<2, 2, 2, 4>;
using TcTile80 = TcShape<1, 8, 5, 2>;
using TcTile160 = TcShape<2, 4, 5, 4>;

// acc[i][j] is the 16x8 mma tile i (rows), j (columns) of this warp's sub-tile; element e of
// it is row 16i + g + 8(e >> 1), column 8j + 2t + (e & 1) (the C/D fragment layout).
// Pipelined as the f32 tile (conv2d.cu): a thread loads its f32 elements of step i+1 into
// registers before the mma of step i, and rounds and packs them when it stages them.
template <class S, class P>
__device__ __forceinline__ void tc_gemm(const P& p, int M, int k0, int k1, float acc[S::WM][S::WN][4]) {
    __shared__ unsigned As[S::BM][TC_LD];  // As[m][kk/2]: A(m, kk), A(m, kk+1) as bf16x2
    __shared__ unsigned Bs[S::BN][TC_LD];  // Bs[n][kk/2]: B(kk, n), B(kk+1, n) (column-major)
    __shared__ typename P::Ent tab[2][TC_BK];  // the K tables of this step and the next
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp / S::WARPS_N) * 16 * S::WM, wn = (warp % S::WARPS_N) * 8 * S::WN;
    const int m0 = blockIdx.y * S::BM, n0 = blockIdx.x * S::BN;
    // Staging roles, fixed for the whole K loop. A: pair column ap of rows ar + A_STEP*j (16
    // consecutive threads read 32 consecutive K elements of a row); B: column bn, pairs
    // bp + B_STEP*j (consecutive threads read consecutive output pixels).
    const int ap = tid & 15, ar = tid >> 4;
    const int bn = tid % S::BN, bp = tid / S::BN;
    const typename P::Col col = p.col(n0 + bn);
    // This thread's elements of the next step (lo, hi of each pair).
    float ra[S::A_ROWS][2], rb[S::B_PAIRS][2];
    const auto gather = [&](const typename P::Ent* tb) {
        const typename P::Ent e0 = tb[2 * ap], e1 = tb[2 * ap + 1];
#pragma unroll
        for (int j = 0; j < S::A_ROWS; ++j) {
            const int gm = m0 + ar + S::A_STEP * j;
            ra[j][0] = (gm < M && e0.ok) ? p.a(gm, e0) : 0.f;
            ra[j][1] = (gm < M && e1.ok) ? p.a(gm, e1) : 0.f;
        }
#pragma unroll
        for (int j = 0; j < S::B_PAIRS; ++j) {
            const int pp = bp + S::B_STEP * j;
            const typename P::Ent f0 = tb[2 * pp], f1 = tb[2 * pp + 1];
            rb[j][0] = f0.ok ? p.b(col, f0) : 0.f;
            rb[j][1] = f1.ok ? p.b(col, f1) : 0.f;
        }
    };
    if (tid < TC_BK) tab[0][tid] = p.ent(k0 + tid, k0 + tid < k1);
    __syncthreads();
    gather(tab[0]);
    int buf = 0;
    for (int kb = k0; kb < k1; kb += TC_BK, buf ^= 1) {
        const int next = kb + TC_BK;
        // As/Bs and the other table are free: the barrier ending the previous step ordered
        // their last reads (its fragment loads; the gather of the step before).
#pragma unroll
        for (int j = 0; j < S::A_ROWS; ++j) As[ar + S::A_STEP * j][ap] = sincut_pack_bf16x2(ra[j][0], ra[j][1]);
#pragma unroll
        for (int j = 0; j < S::B_PAIRS; ++j) Bs[bn][bp + S::B_STEP * j] = sincut_pack_bf16x2(rb[j][0], rb[j][1]);
        if (next < k1 && tid < TC_BK) tab[buf ^ 1][tid] = p.ent(next + tid, next + tid < k1);
        __syncthreads();
        if (next < k1) gather(tab[buf ^ 1]);
#pragma unroll
        for (int ks = 0; ks < TC_BK / 16; ++ks) {
            const int c = ks * 8 + t;  // pair of K elements 2t, 2t+1 of this k16 slice
            unsigned af[S::WM][4], bfr[S::WN][2];
#pragma unroll
            for (int i = 0; i < S::WM; ++i) {
                const int r = wm + 16 * i + g;
                af[i][0] = As[r][c];
                af[i][1] = As[r + 8][c];
                af[i][2] = As[r][c + 4];
                af[i][3] = As[r + 8][c + 4];
            }
#pragma unroll
            for (int j = 0; j < S::WN; ++j) {
                const int n = wn + 8 * j + g;
                bfr[j][0] = Bs[n][c];
                bfr[j][1] = Bs[n][c + 4];
            }
#pragma unroll
            for (int i = 0; i < S::WM; ++i)
#pragma unroll
                for (int j = 0; j < S::WN; ++j) sincut_mma_bf16_16816(acc[i][j], af[i], bfr[j], acc[i][j]);
        }
        __syncthreads();
    }
}

// The passes for a block shape S, as the f32 ones (conv2d.cu), on the grid
// (ceil(columns / S::BN), ceil(rows / S::BM), splits, times the phases for the input gradient)
// with S::NT threads; a split writes its slice of the output as there.
template <class S>
__device__ __forceinline__ void tc_fwd(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
                                       int nb, int cin, int h, int wd, int cout, int k, int s, int p, int ho,
                                       int wo, int chunk) {
    const int K = cin * k * k, N = nb * ho * wo, npix = ho * wo;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    float acc[S::WM][S::WN][4] = {};
    if (k0 < k1) tc_gemm<S>(ConvFwdPlan{x, w, cin, h, wd, k, s, p, ho, wo, K, N}, cout, k0, k1, acc);
    float* out = y + (long long)blockIdx.z * N * cout;
    mma_tile_for_each<S>(acc, cout, N, [&](int m, int n, float v) {
        const int img = n / npix, pix = n % npix;
        out[((long long)img * cout + m) * npix + pix] = v;
    });
}

template <class S>
__device__ __forceinline__ void tc_bwd_input(const float* __restrict__ dy, const float* __restrict__ w,
                                             float* __restrict__ dx, int nb, int cin, int h, int wd, int cout,
                                             int k, int s, int p, int ho, int wo, int chunk) {
    const int phases = s * s, split = blockIdx.z / phases;
    const ConvBwdInPlan plan =
        ConvBwdInPlan::make(dy, w, nb, cin, h, wd, cout, k, s, p, ho, wo, blockIdx.z % phases);
    const int k0 = split * chunk, k1 = min(plan.K, k0 + chunk);
    float acc[S::WM][S::WN][4] = {};
    if (k0 < k1) tc_gemm<S>(plan, cin, k0, k1, acc);
    float* out = dx + (long long)split * nb * cin * h * wd;
    mma_tile_for_each<S>(acc, cin, plan.N, [&](int m, int n, float v) { out[plan.dx_offset(m, n)] = v; });
}

template <class S>
__device__ __forceinline__ void tc_bwd_weight(const float* __restrict__ x, const float* __restrict__ dy,
                                              float* __restrict__ part, int nb, int cin, int h, int wd, int cout,
                                              int k, int s, int p, int ho, int wo, int chunk) {
    const int K = nb * ho * wo, N = cin * k * k;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    float acc[S::WM][S::WN][4] = {};
    if (k0 < k1) tc_gemm<S>(ConvBwdWPlan{x, dy, cin, h, wd, cout, k, s, p, ho, wo, N}, cout, k0, k1, acc);
    float* out = part + (long long)blockIdx.z * cout * N;
    mma_tile_for_each<S>(acc, cout, N, [&](int m, int n, float v) { out[(long long)m * N + n] = v; });
}

// The kernels take the arguments of their f32 counterparts in conv2d.cu (the weight gradient's
// splits are added by conv2d_sum_splits there): 64x64 tiles under `_bf16`, 80x128 under
// `_m80_bf16`, 160x128 under `_m160_bf16`.
CONV_ENTRY_POINTS(_bf16, tc_fwd<TcTile64>, tc_bwd_input<TcTile64>, tc_bwd_weight<TcTile64>, (128), (128))
CONV_ENTRY_POINTS(_m80_bf16, tc_fwd<TcTile80>, tc_bwd_input<TcTile80>, tc_bwd_weight<TcTile80>, (256), (256))
CONV_ENTRY_POINTS(_m160_bf16, tc_fwd<TcTile160>, tc_bwd_input<TcTile160>, tc_bwd_weight<TcTile160>, (256), (256))

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
