// Plain per-channel bias (src/ops/bias.rs): x[:, c] += b[c]; db = sums over N, H, W.
extern "C" __global__ void bias_add(float* __restrict__ x, const float* __restrict__ b, long long n,
                                    int ch, long long plane) {
    SINCUT_GRID_STRIDE(i, n) x[i] = __fadd_rn(x[i], b[(i / plane) % ch]);
}

// gridDim.x == ch.
extern "C" __global__ void bias_grad(const float* __restrict__ dy, float* __restrict__ db, int n, int ch,
                                     long long plane) {
    sincut_channel_sums(dy, db, n, ch, plane);
}
