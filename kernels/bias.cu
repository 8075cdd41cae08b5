// Plain per-channel bias (src/ops/bias.rs): x[:, c] += b[c]; db = sums over N, H, W.
extern "C" __global__ void bias_add(float* __restrict__ x, const float* __restrict__ b, long long n,
                                    int ch, long long plane) {
    SINCUT_GRID_STRIDE(i, n) x[i] = __fadd_rn(x[i], b[(i / plane) % ch]);
}

// Per-channel sums of dy, first pass (sincut_channel_partials).
extern "C" __global__ void bias_grad_partial(const float* __restrict__ dy, double* __restrict__ part, int ch,
                                             long long plane, long long total, int span) {
    sincut_channel_partials([=](long long i) { return dy[i]; }, part, ch, plane, total, span);
}

// Second pass of every per-channel sum (the fused leaky ReLU's too): block c adds channel c's
// np partials in order and rounds once.
extern "C" __global__ void channel_sums_finish(const double* __restrict__ part, int np, float* __restrict__ out) {
    sincut_finish_sum(part + (long long)blockIdx.x * np, np, out + blockIdx.x, 1.0);
}
