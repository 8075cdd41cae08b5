// Fused bias + leaky ReLU (src/ops/fused_lrelu.rs): y = leaky_relu(x + b, 0.2)*sqrt(2)
// (sincut_flrelu in common.cuh).
extern "C" __global__ void flrelu_fwd(float* __restrict__ x, const float* __restrict__ b, long long n,
                                      int ch, long long plane) {
    SINCUT_GRID_STRIDE(i, n) x[i] = sincut_flrelu(x[i], b[(i / plane) % ch]);
}

// g <- slope(y)*g in place: the backward's dx and the R1 tangent (same steps: g*sqrt(2), then
// *0.2 where y <= 0).
extern "C" __global__ void flrelu_slope(const float* __restrict__ y, float* __restrict__ g, long long n) {
    SINCUT_GRID_STRIDE(i, n) {
        const float s = __fmul_rn(g[i], SINCUT_SQRT2_F);
        g[i] = y[i] > 0.f ? s : __fmul_rn(s, 0.2f);
    }
}

// The backward in one pass: dx = slope(y)*g (as flrelu_slope; g is left as it is) and the
// first pass of the bias gradient, the per-channel sums of dx (sincut_channel_partials).
extern "C" __global__ void flrelu_backward_partial(const float* __restrict__ y, const float* __restrict__ g,
                                                   float* __restrict__ dx, double* __restrict__ part, int ch,
                                                   long long plane, long long total, int span) {
    sincut_channel_partials(
        [=](long long i) {
            const float s = __fmul_rn(g[i], SINCUT_SQRT2_F);
            const float d = y[i] > 0.f ? s : __fmul_rn(s, 0.2f);
            dx[i] = d;
            return d;
        },
        part, ch, plane, total, span);
}
