// Identity loss mean|a - b| (src/ops/l1.rs): difference and |.| in f32, long sum in double.
extern "C" __global__ void l1_partial(const float* __restrict__ a, const float* __restrict__ b, long long n,
                                      double* __restrict__ part) {
    double acc = 0.0;
    SINCUT_GRID_STRIDE(i, n) acc += (double)fabsf(__fsub_rn(a[i], b[i]));
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" __global__ void l1_finish(const double* __restrict__ part, int np, float* __restrict__ out,
                                     double count) {
    sincut_finish_sum(part, np, out, count);
}

// d/da: sign(a - b)*g with g = 1/n (f32, from the host), 0 where equal.
extern "C" __global__ void l1_bwd(const float* __restrict__ a, const float* __restrict__ b,
                                  float* __restrict__ da, long long n, float g) {
    SINCUT_GRID_STRIDE(i, n) {
        const float d = __fsub_rn(a[i], b[i]);
        da[i] = d > 0.f ? g : (d < 0.f ? -g : 0.f);
    }
}
