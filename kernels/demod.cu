// Demodulated weight (src/ops/demod.rs), one block per output channel o of w (Cout, len):
// d = 1/sqrt(s*s*sum(w[o]^2) + 1e-8), w'[o] = w[o]*s*d. s = 1/sqrt(Cin*k*k) in f32 from the host.
__device__ __forceinline__ float demod_d(const float* __restrict__ wo, int len, float s) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < len; i += blockDim.x) acc += (double)wo[i] * (double)wo[i];
    __shared__ float ss;
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) ss = (float)acc;
    __syncthreads();
    return __fdiv_rn(1.f, __fsqrt_rn(__fadd_rn(__fmul_rn(__fmul_rn(s, s), ss), 1e-8f)));
}

extern "C" __global__ void demod_fwd(const float* __restrict__ w, float* __restrict__ out, int len, float s) {
    const long long base = (long long)blockIdx.x * len;
    const float d = demod_d(w + base, len, s);
    for (int i = threadIdx.x; i < len; i += blockDim.x) out[base + i] = __fmul_rn(__fmul_rn(w[base + i], s), d);
}

// dL/dw = a*g - a^3*<g, w>*w per output channel, a = s*d (g = dL/dw').
extern "C" __global__ void demod_bwd(const float* __restrict__ w, const float* __restrict__ g,
                                     float* __restrict__ out, int len, float s) {
    const long long base = (long long)blockIdx.x * len;
    const float d = demod_d(w + base, len, s);
    double acc = 0.0;
    for (int i = threadIdx.x; i < len; i += blockDim.x) acc += (double)g[base + i] * (double)w[base + i];
    __shared__ float gw;
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) gw = (float)acc;
    __syncthreads();
    const float a = __fmul_rn(s, d);
    const float b = __fmul_rn(__fmul_rn(__fmul_rn(a, a), a), gw);
    for (int i = threadIdx.x; i < len; i += blockDim.x)
        out[base + i] = __fsub_rn(__fmul_rn(a, g[base + i]), __fmul_rn(b, w[base + i]));
}
