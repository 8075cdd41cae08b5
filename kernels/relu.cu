// ReLU as src/ops/relu.rs: clamp_min(x, 0) (NaN propagates); backward zeroes dy where y <= 0.
extern "C" __global__ void relu_fwd(float* __restrict__ x, long long n) {
    SINCUT_GRID_STRIDE(i, n) {
        const float v = x[i];
        if (v < 0.f) x[i] = 0.f;
    }
}

extern "C" __global__ void relu_bwd(const float* __restrict__ y, float* __restrict__ dy, long long n) {
    SINCUT_GRID_STRIDE(i, n) {
        if (y[i] <= 0.f) dy[i] = 0.f;
    }
}
