// PatchNCE with the batch's other patches as negatives (src/ops/patchnce.rs). q, k: (B, D).
// One block per row b; B is small (at most PNCE_MAX_B, checked by the launcher).
#define PNCE_MAX_B 1024

// Fills s[j] = q_b . k_j for j < B (float products, summed in double: exact products and a
// double sum round to the same f32 in any order, bar ties). One thread per j: a block
// reduction per j made B^2 of them per launch (a million at 64 patches and batch 16).
__device__ __forceinline__ void pnce_sims(const float* __restrict__ q, const float* __restrict__ k, int B,
                                          int D, int b, float* s) {
    for (int j = threadIdx.x; j < B; j += blockDim.x) {
        double acc = 0.0;
        for (int d = 0; d < D; ++d) acc += (double)(q[(long long)b * D + d] * k[(long long)j * D + d]);
        s[j] = (float)acc;
    }
    __syncthreads();
}

// Row logits [s_b, s_j (j = b masked to -10)] / tau into row (length B + 1); returns max and
// log-sum-exp pieces. Thread 0 only.
__device__ __forceinline__ void pnce_row(const float* s, int B, int b, float tau, float* row, float* m,
                                         float* lse) {
    row[0] = __fdiv_rn(s[b], tau);
    for (int j = 0; j < B; ++j) row[1 + j] = __fdiv_rn(j == b ? -10.f : s[j], tau);
    float mx = __int_as_float(0xff800000);  // -inf
    for (int j = 0; j <= B; ++j) mx = fmaxf(mx, row[j]);
    double sum = 0.0;
    for (int j = 0; j <= B; ++j) sum += (double)expf(__fsub_rn(row[j], mx));
    *m = mx;
    *lse = logf((float)sum);
}

extern "C" __global__ void patchnce_fwd(const float* __restrict__ q, const float* __restrict__ k,
                                        float* __restrict__ loss, int B, int D, float tau) {
    __shared__ float s[PNCE_MAX_B];
    __shared__ float row[PNCE_MAX_B + 1];
    const int b = blockIdx.x;
    pnce_sims(q, k, B, D, b, s);
    if (threadIdx.x == 0) {
        float m, lse;
        pnce_row(s, B, b, tau, row, &m, &lse);
        loss[b] = -__fsub_rn(__fsub_rn(row[0], m), lse);
    }
}

// dq_b = sum_j G[b, j] k_j, G[b, j] = dL/d(q_b . k_j); keys get no gradient (detached).
extern "C" __global__ void patchnce_bwd(const float* __restrict__ q, const float* __restrict__ k,
                                        const float* __restrict__ dloss, float* __restrict__ dq, int B, int D,
                                        float tau) {
    __shared__ float s[PNCE_MAX_B];
    __shared__ float row[PNCE_MAX_B + 1];
    const int b = blockIdx.x;
    pnce_sims(q, k, B, D, b, s);
    if (threadIdx.x == 0) {
        float m, lse;
        pnce_row(s, B, b, tau, row, &m, &lse);
        const float dl = dloss[b];
        // log_softmax backward: dr_j = go_j + p_j*dl with go = -dl at column 0 only. G reuses s.
        for (int j = 0; j <= B; ++j) {
            const float p = expf(__fsub_rn(__fsub_rn(row[j], m), lse));
            const float go = j == 0 ? -dl : 0.f;
            row[j] = __fadd_rn(go, __fmul_rn(p, dl));
        }
        for (int j = 0; j < B; ++j) s[j] = j == b ? __fdiv_rn(row[0], tau) : __fdiv_rn(row[1 + j], tau);
    }
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < B; ++j) acc = fmaf(s[j], k[(long long)j * D + d], acc);
        dq[(long long)b * D + d] = acc;
    }
}
