// D's windows (src/ops/windows.rs): crops (N,C,H,W) <-> windows (N*ty*tx, C, S, S), crop-major,
// row-major within a crop. Pure permutations; one thread per element of the output.
__device__ __forceinline__ long long window_src(long long i, int ch, int s, int ty, int tx) {
    // i indexes the windows tensor: (window, c, r, col); returns the crops tensor's index.
    const long long col = i % s, r = (i / s) % s, c = (i / ((long long)s * s)) % ch;
    const long long win = i / ((long long)s * s * ch);
    const long long b = win % tx, a = (win / tx) % ty, img = win / ((long long)tx * ty);
    const long long h = (long long)ty * s, w = (long long)tx * s;
    return ((img * ch + c) * h + a * s + r) * w + b * s + col;
}

extern "C" __global__ void crops_to_windows(const float* __restrict__ x, float* __restrict__ out, long long n,
                                            int ch, int s, int ty, int tx) {
    SINCUT_GRID_STRIDE(i, n) out[i] = x[window_src(i, ch, s, ty, tx)];
}

extern "C" __global__ void windows_to_crops(const float* __restrict__ win, float* __restrict__ out, long long n,
                                            int ch, int s, int ty, int tx) {
    SINCUT_GRID_STRIDE(i, n) out[window_src(i, ch, s, ty, tx)] = win[i];
}
