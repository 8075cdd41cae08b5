// Residual sum (a + b)/sqrt(2) as src/ops/residual.rs: a true division by the f32 sqrt(2).
// __f*_rn intrinsics keep the CPU's rounding steps (no contraction).
extern "C" __global__ void residual_fwd(float* __restrict__ out, const float* __restrict__ a,
                                        const float* __restrict__ b, long long n) {
    SINCUT_GRID_STRIDE(i, n) out[i] = __fdiv_rn(__fadd_rn(a[i], b[i]), SINCUT_SQRT2_F);
}

extern "C" __global__ void residual_bwd(float* __restrict__ dy, long long n) {
    SINCUT_GRID_STRIDE(i, n) dy[i] = __fdiv_rn(dy[i], SINCUT_SQRT2_F);
}
