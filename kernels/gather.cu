// PatchNCE's patch rows (src/ops/gather.rs), position-major: rows[i*b + j, c] =
// f[r0 + j, c, ids[i]], and the adjoint d[r0 + j, c, ids[i]] += rows[i*b + j, c]. The host
// passes f and d already offset to row r0; plane = H*W.
extern "C" __global__ void gather_positions(const float* __restrict__ f, const int* __restrict__ ids,
                                            float* __restrict__ rows, int np, int b, int ch, long long plane) {
    const long long per = (long long)b * ch;
    SINCUT_GRID_STRIDE(i, per * np) rows[i] = f[(i % per) * plane + ids[i / per]];
}

// One thread per (row j, channel c) adds every position's row in order: deterministic, and a
// position listed twice cannot race with itself.
extern "C" __global__ void scatter_add_positions(float* __restrict__ d, const int* __restrict__ ids,
                                                 const float* __restrict__ rows, int np, int b, int ch,
                                                 long long plane) {
    const long long per = (long long)b * ch;
    SINCUT_GRID_STRIDE(r, per) {
        for (int i = 0; i < np; ++i) d[r * plane + ids[i]] = __fadd_rn(d[r * plane + ids[i]], rows[i * per + r]);
    }
}
