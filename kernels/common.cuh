// Shared by every kernel file: prepended to each source before NVRTC compiles it, so each
// module stays self-contained (no #include of project files, no search path needed).

// (float)sqrt(2): the same f32 constant as the CPU engine's c(SQRT_2).
#define SINCUT_SQRT2_F 1.41421356237309515f

// Reductions accumulate in double, as the CPU engine does for long sums, so GPU and CPU agree
// to f32 rounding whatever the summation order.
__device__ __forceinline__ double sincut_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). The result is valid in
// thread 0 only. Every thread of the block must call it.
__device__ __forceinline__ double sincut_block_sum(double v) {
    __shared__ double part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = sincut_warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    const int nw = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < nw) ? part[threadIdx.x] : 0.0;
    if (warp == 0) v = sincut_warp_sum(v);
    __syncthreads();  // part[] may be reused by the next call
    return v;
}

// Per-channel sums of an NCHW tensor: one block per channel (gridDim.x == ch).
__device__ __forceinline__ void sincut_channel_sums(const float* __restrict__ a, float* __restrict__ out,
                                                    int n, int ch, long long plane) {
    const int c = blockIdx.x;
    double acc = 0.0;
    for (int img = 0; img < n; ++img) {
        const float* p = a + ((long long)img * ch + c) * plane;
        for (long long i = threadIdx.x; i < plane; i += blockDim.x) acc += (double)p[i];
    }
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) out[c] = (float)acc;
}

// Second pass of a scalar reduction: one block sums the per-block partials (in a fixed order,
// so the result is deterministic) and writes (float)(sum / div).
__device__ __forceinline__ void sincut_finish_sum(const double* __restrict__ part, int np,
                                                  float* __restrict__ out, double div) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += part[i];
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) out[0] = (float)(acc / div);
}

#define SINCUT_GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)
