// Shared by every kernel file: prepended to each source before NVRTC compiles it, so each
// module stays self-contained (no #include of project files, no search path needed).

// (float)sqrt(2): the same f32 constant as the CPU engine's c(SQRT_2).
#define SINCUT_SQRT2_F 1.41421356237309515f

// Bias + leaky ReLU (slope 0.2) times sqrt(2) of one element, in PyTorch's rounding steps (add,
// scale by 0.2, scale by sqrt(2)): fused_lrelu.cu and the bf16 conv's fused epilogue.
__device__ __forceinline__ float sincut_flrelu(float x, float b) {
    const float u = __fadd_rn(x, b);
    const float a = u > 0.f ? u : __fmul_rn(u, 0.2f);
    return __fmul_rn(a, SINCUT_SQRT2_F);
}

// Reductions accumulate in double, as the CPU engine does for long sums, so GPU and CPU agree
// to f32 rounding whatever the summation order.
__device__ __forceinline__ double sincut_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). The result is valid in
// thread 0 only. Every thread of the block must call it.
__device__ __forceinline__ double sincut_block_sum(double v) {
    __shared__ double part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = sincut_warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    const int nw = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < nw) ? part[threadIdx.x] : 0.0;
    if (warp == 0) v = sincut_warp_sum(v);
    __syncthreads();  // part[] may be reused by the next call
    return v;
}

// Per-channel sums of an NCHW tensor of `total` = N*plane elements per channel, first pass.
// Grid (pieces, ch): channel c's elements, in (image, pixel) order, are cut into pieces of
// `span`; block (x, c) sums piece x and writes part[c * gridDim.x + x]. Many blocks per channel
// keep enough loads in flight (with one block per channel the leaky ReLU's backward ran at
// 0.75 TB/s on an H200), and a piece may span images, so that small planes (a linear layer's
// (N, C, 1, 1)) are not a block per element. `value(i)` returns element i of the tensor, and
// may update it (the leaky ReLU's backward does).
template <class Value>
__device__ __forceinline__ void sincut_channel_partials(Value value, double* __restrict__ part, int ch,
                                                        long long plane, long long total, int span) {
    const int c = blockIdx.y;
    const long long start = (long long)blockIdx.x * span;
    const long long end = start + span < total ? start + span : total;
    double acc = 0.0;
    if (plane >= blockDim.x) {
        // Image by image: one division per image the piece touches.
        for (long long e = start; e < end;) {
            const long long img = e / plane, stop = (img + 1) * plane < end ? (img + 1) * plane : end;
            const long long base = (img * ch + c) * plane - img * plane;  // element e at base + e
            for (long long i = e + threadIdx.x; i < stop; i += blockDim.x) acc += (double)value(base + i);
            e = stop;
        }
    } else {
        for (long long e = start + threadIdx.x; e < end; e += blockDim.x) {
            const long long img = e / plane;
            acc += (double)value((img * ch + c) * plane + (e - img * plane));
        }
    }
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) part[(long long)c * gridDim.x + blockIdx.x] = acc;
}

// Second pass of a scalar reduction: one block sums the per-block partials (in a fixed order,
// so the result is deterministic) and writes (float)(sum / div).
__device__ __forceinline__ void sincut_finish_sum(const double* __restrict__ part, int np,
                                                  float* __restrict__ out, double div) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) acc += part[i];
    acc = sincut_block_sum(acc);
    if (threadIdx.x == 0) out[0] = (float)(acc / div);
}

#define SINCUT_GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

// ---- bf16 tensor cores (sm_80 and newer; the bf16 conv kernels only) ----
// Under the CPU emulator (tools/cuda-emulator/cuda_emu.h defines SINCUT_CUDA_EMU) the two PTX
// instructions are emulated functions with the same semantics; on older GPUs they trap (the
// launchers refuse bf16 below sm_80, so this is never reached).

// Two f32 rounded to bf16 (nearest even) and packed: `lo` in bits 0-15, `hi` in bits 16-31,
// the order in which mma takes two consecutive elements of a fragment register.
__device__ __forceinline__ unsigned sincut_pack_bf16x2(float lo, float hi) {
#if defined(SINCUT_CUDA_EMU)
    return sincut_emu::cvt_rn_bf16x2_f32(hi, lo);
#elif __CUDA_ARCH__ >= 800
    unsigned r;
    // cvt.rn.bf16x2.f32 d, a, b puts a in the upper half, b in the lower.
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#else
    __trap();
    return 0u;
#endif
}

// D = A*B + C for one 16x8x16 tile, warp-wide (all 32 lanes, converged): A 16x16 row-major and
// B 16x8 column-major in bf16, C and D in f32, fragments as the PTX ISA lays them out for
// mma.m16n8k16 (g = lane/4, t = lane%4): a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..2t+1],
// a[2] = A[g][2t+8..2t+9], a[3] = A[g+8][2t+8..2t+9]; b[0] = B[2t..2t+1][g],
// b[1] = B[2t+8..2t+9][g]; c, d: [g][2t], [g][2t+1], [g+8][2t], [g+8][2t+1] (low half = lower
// column / row index).
__device__ __forceinline__ void sincut_mma_bf16_16816(float d[4], const unsigned a[4], const unsigned b[2],
                                                      const float c[4]) {
#if defined(SINCUT_CUDA_EMU)
    sincut_emu::mma_m16n8k16_bf16(d, a, b, c);
#elif __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#else
    __trap();
#endif
}

// ---- asynchronous copies and matrix loads (sm_80 and newer; the NHWC bf16 conv kernels) ----
// The emulator implements both as the PTX ISA documents them: a cp.async lands at the
// wait_group that covers its group (not before), and ldmatrix is a warp collective.

// A shared-memory address as cp.async and ldmatrix take it: 32 bits on a GPU (computed once
// from a pointer, then moved by byte offsets, so the loop does no generic-to-shared
// conversion), a plain pointer under the emulator. `base + bytes` works for both.
#if defined(SINCUT_CUDA_EMU)
typedef char* sincut_smem_t;
__device__ __forceinline__ sincut_smem_t sincut_smem_base(const void* p) { return (char*)p; }
#else
typedef unsigned sincut_smem_t;
__device__ __forceinline__ sincut_smem_t sincut_smem_base(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
#endif

// Copies 16 bytes from global `src` to shared `dst` (both 16-byte aligned) without waiting:
// the first `bytes` (0 or 16) from src, the rest zero, so a padding tap costs no branch.
__device__ __forceinline__ void sincut_cp_async16(sincut_smem_t dst, const void* src, int bytes) {
#if defined(SINCUT_CUDA_EMU)
    sincut_emu::cp_async16(dst, src, bytes);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
#else
    __trap();
#endif
}

// Closes the group of this thread's cp.async issued since the last commit.
__device__ __forceinline__ void sincut_cp_async_commit() {
#if defined(SINCUT_CUDA_EMU)
    sincut_emu::cp_async_commit();
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits until at most N of this thread's committed groups are still in flight (their data is
// then in shared memory for this thread; a barrier makes it so for the block).
template <int N>
__device__ __forceinline__ void sincut_cp_async_wait() {
#if defined(SINCUT_CUDA_EMU)
    sincut_emu::cp_async_wait(N);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

// ldmatrix.x4 (warp-wide, converged): four 8x8 matrices of 16-bit elements; lane 8i + r gives
// the address of row r of matrix i (16-byte aligned, 16 contiguous bytes). Register i of lane
// (g = lane/4, t = lane%4) receives matrix i's elements (g, 2t) and (g, 2t+1), or with TRANS
// (2t, g) and (2t+1, g); the first in the low half.
template <bool TRANS>
__device__ __forceinline__ void sincut_ldmatrix_x4(unsigned r[4], sincut_smem_t row) {
#if defined(SINCUT_CUDA_EMU)
    sincut_emu::ldmatrix_x4(r, row, TRANS);
#elif __CUDA_ARCH__ >= 800
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(row)
                     : "memory");
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(row)
                     : "memory");
#else
    __trap();
#endif
}
