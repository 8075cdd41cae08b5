// Adam exactly as src/ops/adam.rs (PyTorch's _single_tensor_adam on CPU). The scalars are
// computed on the host in f64 and rounded to f32 as the CPU engine does; every device operation
// is an explicitly rounded intrinsic so nothing is contracted into an FMA: bit-identical results.
extern "C" __global__ void adam_step(float* __restrict__ param, const float* __restrict__ grad,
                                     float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq, long long n,
                                     float weight, int lerp_low, float beta2, float one_m_beta2,
                                     float bc2_sqrt, float eps, float neg_step) {
    SINCUT_GRID_STRIDE(i, n) {
        const float g = grad[i];
        const float m0 = exp_avg[i];
        // ATen's two-branch lerp (exactly g when beta1 = 0, i.e. weight = 1).
        const float m = lerp_low ? __fadd_rn(m0, __fmul_rn(weight, __fsub_rn(g, m0)))
                                 : __fsub_rn(g, __fmul_rn(__fsub_rn(g, m0), __fsub_rn(1.f, weight)));
        exp_avg[i] = m;
        const float v = __fadd_rn(__fmul_rn(exp_avg_sq[i], beta2), __fmul_rn(__fmul_rn(one_m_beta2, g), g));
        exp_avg_sq[i] = v;
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), eps);
        param[i] = __fadd_rn(param[i], __fdiv_rn(__fmul_rn(neg_step, m), denom));
    }
}
