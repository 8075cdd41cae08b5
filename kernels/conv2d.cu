// conv2d (src/ops/conv2d.rs) as implicit GEMM: the im2col matrix is never stored, each tile
// gathers its elements from the NCHW tensors (zero outside the padded input). All three
// passes share one shared-memory tiled GEMM: a block computes a 64x64 tile of C = A*B over
// K in steps of 16; each of the 256 threads owns 4x4 outputs strided by 16 (conflict-free
// shared reads, coalesced stores). conv_transpose2d is conv2d's adjoint and reuses these.
#define CONV_BM 64
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

// A(m, kk), B(kk, n) are gathers; kk runs over [k0, k1). acc += A*B for this block's tile.
template <class LoadA, class LoadB>
__device__ __forceinline__ void conv_gemm_tile(const LoadA& la, const LoadB& lb, int M, int N, int k0, int k1,
                                               float acc[4][4]) {
    __shared__ float As[CONV_BK][CONV_BM + 1];
    __shared__ float Bs[CONV_BK][CONV_BN + 1];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * CONV_BM, n0 = blockIdx.x * CONV_BN;
    // The running sums live in shared memory (each thread its own 16 words, so no barrier),
    // the partial in registers: the fold costs no registers, so occupancy stays as it was.
    __shared__ float Cs[16][CONV_NT];
#pragma unroll
    for (int r = 0; r < 16; ++r) Cs[r][tid] = 0.f;
    float part[4][4] = {};
    int steps = 0;
    for (int kb = k0; kb < k1; kb += CONV_BK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int e = tid + i * CONV_NT;
            // A tile: consecutive threads walk K (weights and dy rows are contiguous along K).
            const int am = e / CONV_BK, ak = e % CONV_BK;
            const int gm = m0 + am, gka = kb + ak;
            As[ak][am] = (gm < M && gka < k1) ? la(gm, gka) : 0.f;
            // B tile: consecutive threads walk N (output pixels, contiguous in memory).
            const int bk = e / CONV_BN, bn = e % CONV_BN;
            const int gn = n0 + bn, gkb = kb + bk;
            Bs[bk][bn] = (gn < N && gkb < k1) ? lb(gkb, gn) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < CONV_BK; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) part[i][j] = fmaf(a[i], b[j], part[i][j]);
        }
        __syncthreads();
        if (++steps == CONV_FOLD || kb + CONV_BK >= k1) {
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    Cs[i * 4 + j][tid] += part[i][j];
                    part[i][j] = 0.f;
                }
            steps = 0;
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += Cs[i * 4 + j][tid];
}

// Row-major matrix (rows, ld).
struct DenseA {
    const float* p;
    int ld;
    __device__ float operator()(int m, int kk) const { return p[(long long)m * ld + kk]; }
};

// im2col of x: row r = (ci, kh, kw), column n = (img, oh, ow).
struct Im2col {
    const float* x;
    int cin, h, w, k, s, p, ho, wo;
    __device__ float operator()(int r, int n) const {
        const int kw = r % k, kh = (r / k) % k, ci = r / (k * k);
        const int ow = n % wo, oh = (n / wo) % ho, img = n / (wo * ho);
        const int ih = oh * s + kh - p, iw = ow * s + kw - p;
        if (ih < 0 || ih >= h || iw < 0 || iw >= w) return 0.f;
        return x[(((long long)img * cin + ci) * h + ih) * w + iw];
    }
};

// Same gather, transposed: (pixel, r).
struct Im2colT {
    Im2col g;
    __device__ float operator()(int n, int r) const { return g(r, n); }
};

// w (Cout, Cin, k, k) read as A(ci, (co, kh, kw)) for the input gradient.
struct WeightT {
    const float* w;
    int cin, k;
    __device__ float operator()(int ci, int r) const {
        const int kw = r % k, kh = (r / k) % k, co = r / (k * k);
        return w[(((long long)co * cin + ci) * k + kh) * k + kw];
    }
};

// dy scattered back: row r = (co, kh, kw), column n = input pixel (img, ih, iw); the output
// pixel (oh, ow) with oh*s + kh - p = ih, if it exists.
struct Col2imB {
    const float* dy;
    int cout, h, w, k, s, p, ho, wo;
    __device__ float operator()(int r, int n) const {
        const int kw = r % k, kh = (r / k) % k, co = r / (k * k);
        const int iw = n % w, ih = (n / w) % h, img = n / (w * h);
        const int th = ih + p - kh, tw = iw + p - kw;
        if (th < 0 || tw < 0 || th % s != 0 || tw % s != 0) return 0.f;
        const int oh = th / s, ow = tw / s;
        if (oh >= ho || ow >= wo) return 0.f;
        return dy[(((long long)img * cout + co) * ho + oh) * wo + ow];
    }
};

// dy as A(co, pixel) with pixel = (img, oh, ow).
struct DyRows {
    const float* dy;
    int cout, npix;
    __device__ float operator()(int co, int n) const {
        const int img = n / npix, pix = n % npix;
        return dy[((long long)img * cout + co) * npix + pix];
    }
};

// Stores the tile into an NCHW tensor whose column n = (img, pixel of `npix`).
__device__ __forceinline__ void conv_store_nchw(float* out, const float acc[4][4], int M, int N, int npix) {
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int m0 = blockIdx.y * CONV_BM, n0 = blockIdx.x * CONV_BN;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + ty + 16 * i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tx + 16 * j;
            if (n >= N) continue;
            const int img = n / npix, pix = n % npix;
            out[((long long)img * M + m) * npix + pix] = acc[i][j];
        }
    }
}

// y (N, Cout, Ho, Wo) = conv(x (N, Cin, H, W), w (Cout, Cin, k, k)).
// Grid: (ceil(N*Ho*Wo / 64), ceil(Cout / 64)).
extern "C" __global__ void __launch_bounds__(CONV_NT)
    conv2d_fwd(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int nb, int cin,
               int h, int wd, int cout, int k, int s, int p, int ho, int wo) {
    const int K = cin * k * k, N = nb * ho * wo;
    float acc[4][4] = {};
    conv_gemm_tile(DenseA{w, K}, Im2col{x, cin, h, wd, k, s, p, ho, wo}, cout, N, 0, K, acc);
    conv_store_nchw(y, acc, cout, N, ho * wo);
}

// dx (N, Cin, H, W) from dy (N, Cout, Ho, Wo). Grid: (ceil(N*H*W / 64), ceil(Cin / 64)).
extern "C" __global__ void __launch_bounds__(CONV_NT)
    conv2d_bwd_input(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx, int nb,
                     int cin, int h, int wd, int cout, int k, int s, int p, int ho, int wo) {
    const int K = cout * k * k, N = nb * h * wd;
    float acc[4][4] = {};
    conv_gemm_tile(WeightT{w, cin, k}, Col2imB{dy, cout, h, wd, k, s, p, ho, wo}, cin, N, 0, K, acc);
    conv_store_nchw(dx, acc, cin, N, h * wd);
}

// dw (Cout, Cin*k*k) = dy (Cout, pixels) * im2col(x)^T, split over K = N*Ho*Wo: blockIdx.z
// takes pixels [z*chunk, (z+1)*chunk) and writes part[z] (Cout, Cin*k*k); conv2d_sum_splits
// adds the splits. Grid: (ceil(Cin*k*k / 64), ceil(Cout / 64), splits); chunk % 16 == 0.
extern "C" __global__ void __launch_bounds__(CONV_NT)
    conv2d_bwd_weight(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ part, int nb,
                      int cin, int h, int wd, int cout, int k, int s, int p, int ho, int wo, int chunk) {
    const int K = nb * ho * wo, N = cin * k * k;
    const int k0 = blockIdx.z * chunk, k1 = min(K, k0 + chunk);
    float acc[4][4] = {};
    if (k0 < k1)
        conv_gemm_tile(DyRows{dy, cout, ho * wo}, Im2colT{Im2col{x, cin, h, wd, k, s, p, ho, wo}}, cout, N, k0, k1,
                       acc);
    // Row-major (Cout, N) slice of split z.
    float* out = part + (long long)blockIdx.z * cout * N;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int m0 = blockIdx.y * CONV_BM, n0 = blockIdx.x * CONV_BN;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = m0 + ty + 16 * i;
        if (m >= cout) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tx + 16 * j;
            if (n < N) out[(long long)m * N + n] = acc[i][j];
        }
    }
}

// out[i] = sum over splits of part[z][i], in split order (deterministic), in double.
extern "C" __global__ void conv2d_sum_splits(const float* __restrict__ part, float* __restrict__ out, int splits,
                                             long long len) {
    SINCUT_GRID_STRIDE(i, len) {
        double acc = 0.0;
        for (int z = 0; z < splits; ++z) acc += (double)part[(long long)z * len + i];
        out[i] = (float)acc;
    }
}
