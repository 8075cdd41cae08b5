// Row L2 normalisation y = x/(||x|| + 1e-7) of (rows, dim) (src/ops/l2norm.rs), one block per row.
// Squares summed in double, rounded to f32 and square-rooted in f32 as the CPU does.
__device__ __forceinline__ float l2n_norm(const float* __restrict__ x, int dim) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) acc += (double)x[i] * (double)x[i];
    __shared__ float r;
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) r = __fsqrt_rn((float)acc);
    __syncthreads();
    return r;
}

extern "C" __global__ void l2norm_fwd(const float* __restrict__ x, float* __restrict__ y, int dim) {
    const long long base = (long long)blockIdx.x * dim;
    const float d = __fadd_rn(l2n_norm(x + base, dim), 1e-7f);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) y[base + i] = __fdiv_rn(x[base + i], d);
}

// dx = dy/d - x*<dy, x>/(d*d*r), with the second term 0 at x = 0 (no derivative there).
extern "C" __global__ void l2norm_bwd(const float* __restrict__ x, const float* __restrict__ dy,
                                      float* __restrict__ dx, int dim) {
    const long long base = (long long)blockIdx.x * dim;
    const float r = l2n_norm(x + base, dim);
    const float d = __fadd_rn(r, 1e-7f);
    double acc = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) acc += (double)x[base + i] * (double)dy[base + i];
    __shared__ float xdy;
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) xdy = (float)acc;
    __syncthreads();
    const float coef = r > 0.f ? __fdiv_rn(xdy, __fmul_rn(__fmul_rn(d, d), r)) : 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        dx[base + i] = __fsub_rn(__fdiv_rn(dy[base + i], d), __fmul_rn(coef, x[base + i]));
}
