// PatchNCE's patch rows (src/ops/gather.rs): rows[b, c] = f[r0 + b, c, pos] and the adjoint
// d[r0 + b, c, pos] += rows[b, c]. The host passes f and d already offset to row r0 and pos.
extern "C" __global__ void gather_position(const float* __restrict__ f, float* __restrict__ rows, int b, int ch,
                                           long long plane) {
    const long long n = (long long)b * ch;
    SINCUT_GRID_STRIDE(i, n) rows[i] = f[i * plane];
}

extern "C" __global__ void scatter_add_position(float* __restrict__ d, const float* __restrict__ rows, int b,
                                                int ch, long long plane) {
    const long long n = (long long)b * ch;
    SINCUT_GRID_STRIDE(i, n) d[i * plane] = __fadd_rn(d[i * plane], rows[i]);
}
