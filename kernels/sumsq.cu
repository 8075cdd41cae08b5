// Sum of squares (src/ops/sumsq.rs): each square and the sum in double, rounded once to f32.
extern "C" __global__ void sumsq_partial(const float* __restrict__ x, long long n, double* __restrict__ part) {
    double acc = 0.0;
    SINCUT_GRID_STRIDE(i, n) {
        const double v = (double)x[i];
        acc += v * v;
    }
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" __global__ void sumsq_finish(const double* __restrict__ part, int np, float* __restrict__ out) {
    sincut_finish_sum(part, np, out, 1.0);
}
