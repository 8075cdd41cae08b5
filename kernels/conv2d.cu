// conv2d (src/ops/conv2d.rs) as implicit GEMM: the im2col matrix is never stored, each tile
// gathers its elements from the NCHW tensors (zero outside the padded input) through the plans
// of conv_gather.cuh. All three passes share one shared-memory tiled GEMM: a block computes a
// (16*TM)x64 tile of C = A*B over K in steps of 16; each of the 256 threads owns a TMx4 block
// of outputs (rows TM*ty.., columns 4tx..). TM = 4 (64-row tiles) in general, TM = 5 (80-row
// tiles, the `_m80` kernels) where the rows are a multiple of 80: the official widths 80 and
// 160 then fill every row, where 64-row tiles would compute 128 and 192. Per K index a thread
// reads B with one 16-byte shared load (conflict-free) and A with one (TM = 4) or five (TM = 5)
// broadcast loads, for 4*TM FMAs. conv_transpose2d is conv2d's adjoint and reuses these.
#define CONV_BN 64
#define CONV_BK 16
#define CONV_NT 256
// K-steps summed into a fresh register partial before it is added to the running sum
// (blocked summation): an output is a chain of CONV_FOLD*CONV_BK + K/(CONV_FOLD*CONV_BK)
// roundings instead of K. One running f32 sum over all of K (6144 products in D's first
// linear layer, 3456 in its last conv) rounded 3.5-4.6x as much as the CPU's GEMM (which sums
// K in blocks of 256), and in a deep leaky-ReLU network more rounding means more
// pre-activations within reach of 0 taking the other slope.
#define CONV_FOLD 4

#include "conv_gather.cuh"

// acc += A*B over kk in [k0, k1) for this block's tile, with A and B gathered through the plan
// `p` (conv_gather.cuh). Staging roles are fixed for the whole K loop: a thread stages K index
// ak of rows am + 16i of A (consecutive threads walk K: weights and dy rows are contiguous
// along K) and K indices bk + 4i of column bn of B (consecutive threads walk output pixels,
// contiguous in memory), so its column is decomposed once, before the loop, and each K step's
// indices once, by the first CONV_BK threads, into a shared table.
// Software pipeline: a thread loads its elements of step i+1 into registers (and the table of
// step i+1 is built) before it multiplies step i out of shared memory, so the global loads'
// latency overlaps the FMAs; the register copy costs TM+4 registers. (The gather's zero padding
// and bounds make this simpler than cp.async, which the bf16 tile could not use anyway: it
// rounds while staging.) The summation order is that of the unpipelined loop.
template <int TM, class P>
__device__ __forceinline__ void conv_gemm_tile(const P& p, int M, int k0, int k1, float acc[TM][4]) {
    constexpr int BM = 16 * TM;
    // Rows padded by 4 words: 16-byte aligned for the vector loads, and the column-wise staging
    // stores of A hit each bank at most twice.
    __shared__ __align__(16) float As[CONV_BK][BM + 4];
    __shared__ __align__(16) float Bs[CONV_BK][CONV_BN + 4];
    // The K tables of this step and the next.
    __shared__ typename P::Ent tab[2][CONV_BK];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * CONV_BN;
    const int ak = tid % CONV_BK, am = tid / CONV_BK;
    const int bn = tid % CONV_BN, bk = tid / CONV_BN;
    const typename P::Col col = p.col(n0 + bn);
    // The running sums live in shared memory (each thread its own 4*TM words, so no barrier),
    // the partial in registers: the fold costs no registers.
    __shared__ float Cs[4 * TM][CONV_NT];
#pragma unroll
    for (int r = 0; r < 4 * TM; ++r) Cs[r][tid] = 0.f;
    float part[TM][4] = {};
    // This thread's staged elements of the next step.
    float ra[TM], rb[4];
    const auto gather = [&](const typename P::Ent* t) {
        const typename P::Ent e = t[ak];
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int gm = m0 + am + 16 * i;
            ra[i] = (e.ok && gm < M) ? p.a(gm, e) : 0.f;
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const typename P::Ent eb = t[bk + 4 * i];
            rb[i] = eb.ok ? p.b(col, eb) : 0.f;
        }
    };
    if (tid < CONV_BK) tab[0][tid] = p.ent(k0 + tid, k0 + tid < k1);
    __syncthreads();
    gather(tab[0]);
    int steps = 0, buf = 0;
    for (int kb = k0; kb < k1; kb += CONV_BK, buf ^= 1) {
        const int next = kb + CONV_BK;
        // As/Bs are free: the barrier at the end of the previous step ordered its reads. The
        // other table was last read by the gather of the step before, also ordered by it.
#pragma unroll
        for (int i = 0; i < TM; ++i) As[ak][am + 16 * i] = ra[i];
#pragma unroll
        for (int i = 0; i < 4; ++i) Bs[bk + 4 * i][bn] = rb[i];
        if (next < k1 && tid < CONV_BK) tab[buf ^ 1][tid] = p.ent(next + tid, next + tid < k1);
        __syncthreads();
        if (next < k1) gather(tab[buf ^ 1]);
#pragma unroll
        for (int kk = 0; kk < CONV_BK; ++kk) {
            float a[TM];
            if constexpr (TM == 4) {
                const float4 a4 = *reinterpret_cast<const float4*>(&As[kk][4 * ty]);
                a[0] = a4.x, a[1] = a4.y, a[2] = a4.z, a[3] = a4.w;
            } else {
#pragma unroll
                for (int i = 0; i < TM; ++i) a[i] = As[kk][TM * ty + i];
            }
            const float4 b4 = *reinterpret_cast<const float4*>(&Bs[kk][4 * tx]);
            const float b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) part[i][j] = fmaf(a[i], b[j], part[i][j]);
        }
        if (++steps == CONV_FOLD || next >= k1) {
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    Cs[i * 4 + j][tid] += part[i][j];
                    part[i][j] = 0.f;
                }
            steps = 0;
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += Cs[i * 4 + j][tid];
}

// Calls f(m, n, value) for each of this thread's outputs inside M x N.
template <int TM, class F>
__device__ __forceinline__ void conv_for_each(const float acc[TM][4], int M, int N, F f) {
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int m0 = blockIdx.y * 16 * TM, n0 = blockIdx.x * CONV_BN;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + TM * ty + i;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + 4 * tx + j;
            if (m < M && n < N) f(m, n, acc[i][j]);
        }
    }
}

// Split K (the launcher's choice where the grid alone would leave SMs idle, e.g. D's linear
// layer: 6 blocks over K = 6144): blockIdx.z's split takes K indices [split*chunk,
// (split+1)*chunk) and writes its own slice of `out`, which conv2d_sum_splits adds up; with one
// split (chunk >= K) the slice is the output itself. chunk % the K step == 0.

// y (N, Cout, Ho, Wo) = conv(x (N, Cin, H, W), w (Cout, Cin, k, k)).
// Grid: (ceil(N*Ho*Wo / 64), ceil(Cout / (16*TM)), splits).
template <int TM>
__device__ __forceinline__ void conv2d_fwd_tile(const float* __restrict__ x, const float* __restrict__ w,
                                                float* __restrict__ y, int nb, int cin, int h, int wd, int cout,
                                                int k, int s, int p, int ho, int wo, int chunk) {
    const int K = cin * k * k, N = nb * ho * wo, npix = ho * wo;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    float acc[TM][4] = {};
    if (k0 < k1)
        conv_gemm_tile<TM>(ConvFwdPlan{x, w, cin, h, wd, k, s, p, ho, wo, K, N}, cout, k0, k1, acc);
    float* out = y + (long long)blockIdx.z * N * cout;
    conv_for_each<TM>(acc, cout, N, [&](int m, int n, float v) {
        const int img = n / npix, pix = n % npix;
        out[((long long)img * cout + m) * npix + pix] = v;
    });
}

// dx (N, Cin, H, W) from dy (N, Cout, Ho, Wo), one stride phase (ConvBwdInPlan) and one split
// per blockIdx.z = split*s*s + phase. Every pixel of dx is in exactly one phase, so each split
// writes a whole slice. Grid: (ceil(most pixels of a phase / 64), ceil(Cin / (16*TM)),
// s*s*splits).
template <int TM>
__device__ __forceinline__ void conv2d_bwd_input_tile(const float* __restrict__ dy, const float* __restrict__ w,
                                                      float* __restrict__ dx, int nb, int cin, int h, int wd,
                                                      int cout, int k, int s, int p, int ho, int wo, int chunk) {
    const int phases = s * s, split = blockIdx.z / phases;
    const ConvBwdInPlan plan =
        ConvBwdInPlan::make(dy, w, nb, cin, h, wd, cout, k, s, p, ho, wo, blockIdx.z % phases);
    const int k0 = split * chunk, k1 = min(plan.K, k0 + chunk);
    float acc[TM][4] = {};
    if (k0 < k1) conv_gemm_tile<TM>(plan, cin, k0, k1, acc);
    float* out = dx + (long long)split * nb * cin * h * wd;
    conv_for_each<TM>(acc, cin, plan.N, [&](int m, int n, float v) { out[plan.dx_offset(m, n)] = v; });
}

// dw (Cout, Cin*k*k) = dy (Cout, pixels) * im2col(x)^T, split over K = N*Ho*Wo: blockIdx.z
// takes pixels [z*chunk, (z+1)*chunk) and writes part[z] (Cout, Cin*k*k); conv2d_sum_splits
// adds the splits. Grid: (ceil(Cin*k*k / 64), ceil(Cout / (16*TM)), splits); chunk % 16 == 0.
template <int TM>
__device__ __forceinline__ void conv2d_bwd_weight_tile(const float* __restrict__ x, const float* __restrict__ dy,
                                                       float* __restrict__ part, int nb, int cin, int h, int wd,
                                                       int cout, int k, int s, int p, int ho, int wo, int chunk) {
    const int K = nb * ho * wo, N = cin * k * k;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    float acc[TM][4] = {};
    if (k0 < k1)
        conv_gemm_tile<TM>(ConvBwdWPlan{x, dy, cin, h, wd, cout, k, s, p, ho, wo, N}, cout, k0, k1, acc);
    // Row-major (Cout, N) slice of split z.
    float* out = part + (long long)blockIdx.z * cout * N;
    conv_for_each<TM>(acc, cout, N, [&](int m, int n, float v) { out[(long long)m * N + n] = v; });
}

// The entry points: TM = 4 under the plain names, TM = 5 with `_m80` (rows a multiple of 80).
// The input gradient asks for 3 blocks per SM: left to itself ptxas held it to 64 registers
// and spilled.
CONV_ENTRY_POINTS(, conv2d_fwd_tile<4>, conv2d_bwd_input_tile<4>, conv2d_bwd_weight_tile<4>, (CONV_NT), (CONV_NT, 3))
CONV_ENTRY_POINTS(_m80, conv2d_fwd_tile<5>, conv2d_bwd_input_tile<5>, conv2d_bwd_weight_tile<5>, (CONV_NT),
                  (CONV_NT, 3))

// out[i] = sum over splits of part[z][i], in split order (deterministic), in double.
extern "C" __global__ void conv2d_sum_splits(const float* __restrict__ part, float* __restrict__ out, int splits,
                                             long long len) {
    SINCUT_GRID_STRIDE(i, len) {
        double acc = 0.0;
        for (int z = 0; z < splits; ++z) acc += (double)part[(long long)z * len + i];
        out[i] = (float)acc;
    }
}
