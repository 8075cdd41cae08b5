// (A, B, H, W) -> (B, A, H, W) (src/ops/permute.rs); one thread per output element.
extern "C" __global__ void swap01(const float* __restrict__ x, float* __restrict__ y, int a_len, int b_len,
                                  long long plane) {
    const long long n = (long long)a_len * b_len * plane;
    SINCUT_GRID_STRIDE(i, n) {
        const long long hw = i % plane;
        const long long ba = i / plane;  // b * A + a
        const long long a = ba % a_len, b = ba / a_len;
        y[i] = x[(a * b_len + b) * plane + hw];
    }
}
