// Fused bias + leaky ReLU (src/ops/fused_lrelu.rs): y = leaky_relu(x + b, 0.2)*sqrt(2)
// (sincut_flrelu in common.cuh).
extern "C" __global__ void flrelu_fwd(float* __restrict__ x, const float* __restrict__ b, long long n,
                                      int ch, long long plane) {
    SINCUT_GRID_STRIDE(i, n) x[i] = sincut_flrelu(x[i], b[(i / plane) % ch]);
}

// g <- slope(y)*g in place: the backward's dx and the R1 tangent (same steps: g*sqrt(2), then
// *0.2 where y <= 0).
__device__ __forceinline__ float flrelu_slope_times(float y, float g) {
    const float s = __fmul_rn(g, SINCUT_SQRT2_F);
    return y > 0.f ? s : __fmul_rn(s, 0.2f);
}

extern "C" __global__ void flrelu_slope(const float* __restrict__ y, float* __restrict__ g, long long n) {
    SINCUT_GRID_STRIDE(i, n) g[i] = flrelu_slope_times(y[i], g[i]);
}

// The backward in one pass: dx = slope(y)*g (as flrelu_slope; g is left as it is) and the
// first pass of the bias gradient, the per-channel sums of dx (sincut_channel_partials).
extern "C" __global__ void flrelu_backward_partial(const float* __restrict__ y, const float* __restrict__ g,
                                                   float* __restrict__ dx, double* __restrict__ part, int ch,
                                                   long long plane, long long total, int span) {
    sincut_channel_partials(
        [=](long long i) {
            const float d = flrelu_slope_times(y[i], g[i]);
            dx[i] = d;
            return d;
        },
        part, ch, plane, total, span);
}

// The backward as above, for a gradient that bf16 NHWC convs read next: the same dx, and also
// dx as (nb, hw, c) bf16, the copy nchw_to_nhwc_bf16 (conv2d_nhwc_bf16.cu) would make from it,
// without reading dx again. Grid (nb * tiles, ceil(c / 32)), 256 threads: block (x, y) takes
// channels 32y.. of image x / tiles, pixels 256 (x % tiles).., in tiles of 32 x 32 through
// shared memory (reads along pixels, bf16 writes along channels), and writes each channel's
// partial sum to part[channel * gridDim.x + x] for channel_sums_finish.
extern "C" __global__ void __launch_bounds__(256)
    flrelu_backward_nhwc_partial(const float* __restrict__ y, const float* __restrict__ g, float* __restrict__ dx,
                                 unsigned short* __restrict__ dx_nhwc, double* __restrict__ part, int c, int hw,
                                 int tiles) {
    __shared__ float tile[32][33];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const long long img = blockIdx.x / tiles;
    const int p_first = (blockIdx.x % tiles) * 256, c0 = blockIdx.y * 32;
    double acc[4] = {0.0, 0.0, 0.0, 0.0};  // channels c0 + ty + 8k, over this thread's pixels
    for (int p0 = p_first; p0 < p_first + 256 && p0 < hw; p0 += 32) {  // the same for the block
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const int i = ty + 8 * k, ch = c0 + i, px = p0 + tx;
            float d = 0.f;
            if (ch < c && px < hw) {
                const long long e = (img * c + ch) * hw + px;
                d = flrelu_slope_times(y[e], g[e]);
                dx[e] = d;
            }
            tile[i][tx] = d;
            acc[k] += (double)d;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const int i = ty + 8 * k, px = p0 + i, ch = c0 + tx;
            if (px < hw && ch < c)
                dx_nhwc[(img * hw + px) * c + ch] = (unsigned short)(sincut_pack_bf16x2(tile[tx][i], 0.f) & 0xffffu);
        }
        __syncthreads();  // the tile is refilled for the next 32 pixels
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const double v = sincut_warp_sum(acc[k]);  // a warp is one channel's row of the tile
        const int ch = c0 + ty + 8 * k;
        if (tx == 0 && ch < c) part[(long long)ch * gridDim.x + blockIdx.x] = v;
    }
}
