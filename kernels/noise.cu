// Noise injection (src/ops/noise.rs): y = x + w*n, n of shape (N,1,H,W) broadcast over channels,
// w a scalar that lives on the device (a parameter). The product is rounded before the add.
extern "C" __global__ void noise_fwd(float* __restrict__ x, const float* __restrict__ w,
                                     const float* __restrict__ nz, long long total, int ch, long long plane) {
    const float wv = w[0];
    SINCUT_GRID_STRIDE(i, total) {
        const long long img = i / (plane * ch), p = i % plane;
        x[i] = __fadd_rn(x[i], __fmul_rn(wv, nz[img * plane + p]));
    }
}

// dL/dw = sum dy*n, first pass: one double partial per block.
extern "C" __global__ void noise_wgrad_partial(const float* __restrict__ dy, const float* __restrict__ nz,
                                               long long total, int ch, long long plane,
                                               double* __restrict__ part) {
    double acc = 0.0;
    SINCUT_GRID_STRIDE(i, total) {
        const long long img = i / (plane * ch), p = i % plane;
        acc += (double)dy[i] * (double)nz[img * plane + p];
    }
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" __global__ void noise_wgrad_finish(const double* __restrict__ part, int np, float* __restrict__ out) {
    sincut_finish_sum(part, np, out, 1.0);
}
