// Non-saturating GAN terms (src/ops/gan_loss.rs): mean softplus(+-x), PyTorch threshold 20.
__device__ __forceinline__ float sincut_softplus(float u) { return u > 20.f ? u : log1pf(expf(u)); }

extern "C" __global__ void softplus_partial(const float* __restrict__ x, long long n, int negate,
                                            double* __restrict__ part) {
    double acc = 0.0;
    SINCUT_GRID_STRIDE(i, n) {
        const float u = negate ? -x[i] : x[i];
        acc += (double)sincut_softplus(u);
    }
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" __global__ void softplus_finish(const double* __restrict__ part, int np, float* __restrict__ out,
                                           double count) {
    sincut_finish_sum(part, np, out, count);
}

// d(mean softplus(+-x))/dx with g = 1/n in f32 (from the host): g*z/(z + 1), z = e^u.
extern "C" __global__ void softplus_bwd(const float* __restrict__ x, float* __restrict__ dx, long long n,
                                        int negate, float g) {
    SINCUT_GRID_STRIDE(i, n) {
        const float u = negate ? -x[i] : x[i];
        float d;
        if (u > 20.f) {
            d = g;
        } else {
            const float z = expf(u);
            d = __fdiv_rn(__fmul_rn(g, z), __fadd_rn(z, 1.f));
        }
        dx[i] = negate ? -d : d;
    }
}
