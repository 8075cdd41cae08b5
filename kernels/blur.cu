// The [1,3,3,1] separable blur of src/ops/blur.rs (upfirdn2d with up = down = 1):
// out[i, j] = sum_a k[a] * (sum_b k[b] * src[i + off + a, j + off + b]), zero outside src.
// Forward uses off = -pad0; the backward (adjoint) the same correlation with off = pad0 - 3
// (the kernel is symmetric). Rows first, then columns, in the CPU's order and rounding.
extern "C" __global__ void blur_apply(const float* __restrict__ src, float* __restrict__ out, int planes,
                                      int h, int w, int ho, int wo, int off, float k0, float k1, float k2,
                                      float k3) {
    const long long total = (long long)planes * ho * wo;
    const float k[4] = {k0, k1, k2, k3};
    SINCUT_GRID_STRIDE(idx, total) {
        const long long row = idx / wo, pl = row / ho;
        const int j = (int)(idx - row * wo);
        const int i = (int)(row - pl * ho);
        const float* x = src + pl * h * w;
        float acc = 0.f;
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int r = i + off + a;
            if (r < 0 || r >= h) continue;
            float t = 0.f;
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const int cc = j + off + b;
                const float v = (cc >= 0 && cc < w) ? x[(long long)r * w + cc] : 0.f;
                const float p = __fmul_rn(k[b], v);
                t = (b == 0) ? p : __fadd_rn(t, p);
            }
            acc = __fadd_rn(acc, __fmul_rn(k[a], t));
        }
        out[idx] = acc;
    }
}
