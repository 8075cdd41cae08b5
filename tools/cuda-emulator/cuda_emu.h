// The CUDA dialect our kernels use, in plain C++, so that kernels/*.cu run on the CPU.
//
// The emulator's NVRTC (libnvrtc.cpp) compiles each kernel file with g++ after `-include`-ing
// this header. Each CUDA thread is a fiber: a block's threads run one after another on one OS
// thread, switching at __syncthreads and warp shuffles (cooperative scheduling, so barrier
// semantics hold exactly); blocks are spread over OS threads. __shared__ variables are
// thread_local statics, hence one copy per block being run. A barrier that some threads never
// reach is reported as a deadlock instead of hanging. A memory fault inside a kernel names the
// kernel, block and thread, then exits.
//
// This is a test tool, not a GPU: it proves indexing, bounds, barriers and launch arguments,
// not timing, memory-model subtleties or instruction-level accuracy.
#pragma once

#include <atomic>
#include <cmath>
#include <math.h>  // expf, logf, fmaf, ... in the global namespace, as in CUDA
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
using uint3 = dim3;

namespace sincut_emu {

struct Fiber;
struct BlockRun;

// What a running CUDA thread sees.
struct ThreadState {
    dim3 tid, bid, bdim, gdim;
    Fiber* fiber;
};
// Internal linkage (the header is included once per module): the compiler then reaches it with
// one TLS lookup per function instead of one per use.
static thread_local ThreadState* cur = nullptr;

}  // namespace sincut_emu

#define threadIdx (sincut_emu::cur->tid)
#define blockIdx (sincut_emu::cur->bid)
#define blockDim (sincut_emu::cur->bdim)
#define gridDim (sincut_emu::cur->gdim)
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))
#define __constant__ static const

// CUDA's 16-byte vector type (shared-memory vector loads: LDS.128 on a GPU).
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};

// ---- math: the CUDA names, with IEEE round-to-nearest (the host's behaviour) ----
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float a) { return a < 0.f ? 0.f : (a > 1.f ? 1.f : a); }
// The bit reinterpretations (__int_as_float, ...): one memcpy of same-sized types.
template <class To, class From>
inline To sincut_emu_bits(From v) {
    static_assert(sizeof(To) == sizeof(From), "reinterpretation between types of different sizes");
    To t;
    std::memcpy(&t, &v, sizeof t);
    return t;
}
inline float __int_as_float(int v) { return sincut_emu_bits<float>(v); }
inline int __float_as_int(float f) { return sincut_emu_bits<int>(f); }
inline unsigned __float_as_uint(float f) { return sincut_emu_bits<unsigned>(f); }
inline float __uint_as_float(unsigned v) { return sincut_emu_bits<float>(v); }
// CUDA's min/max are overloaded for every arithmetic type, mixing types by promotion.
template <class A, class B>
inline auto min(A a, B b) -> std::common_type_t<A, B> {
    using T = std::common_type_t<A, B>;
    return (T)b < (T)a ? (T)b : (T)a;
}
template <class A, class B>
inline auto max(A a, B b) -> std::common_type_t<A, B> {
    using T = std::common_type_t<A, B>;
    return (T)a < (T)b ? (T)b : (T)a;
}

namespace sincut_emu {

// ---- fibers: a stack and a saved stack pointer each ----
#if defined(__x86_64__)
extern "C" void sincut_emu_switch(void** save_sp, void* new_sp);
extern "C" void sincut_emu_trampoline();
// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
// then restores the same from new_sp (System V x86-64 ABI). The FP control words are not
// switched: no kernel changes them.
asm(R"(
    .text
    .globl sincut_emu_switch
    .hidden sincut_emu_switch
    .type sincut_emu_switch, @function
sincut_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size sincut_emu_switch, .-sincut_emu_switch
    .globl sincut_emu_trampoline
    .hidden sincut_emu_trampoline
    .type sincut_emu_trampoline, @function
sincut_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size sincut_emu_trampoline, .-sincut_emu_trampoline
)");
#else
#error "the CUDA emulator's fibers are written for x86-64"
#endif

constexpr size_t kStackBytes = 256 * 1024;

enum class Wait { None, Block, Warp, Done };

// A cp.async not yet landed: `bytes` from src, zeros to 16, in commit group `group`.
struct AsyncCopy {
    void* dst;
    const void* src;
    int bytes;
    unsigned group;
};

struct Fiber {
    void* sp = nullptr;
    char* stack = nullptr;  // mmap'd, lowest page is a guard
    ThreadState ts{};
    Wait wait = Wait::None;
    unsigned wait_gen = 0;
    int lane = 0, warp = 0;
    BlockRun* run = nullptr;
    std::vector<AsyncCopy> copies;  // this thread's cp.async in flight
    unsigned groups = 0;            // commit groups closed so far
};

struct Barrier {
    unsigned gen = 0;
    int arrived = 0;
    int live = 0;
};

using Thunk = void (*)(void**);

// One block being run by one OS thread.
struct BlockRun {
    void* sched_sp = nullptr;
    Thunk thunk = nullptr;
    void** params = nullptr;
    Barrier block;
    std::vector<Barrier> warps;
    std::vector<uint64_t> slots;  // shuffle exchange, 32 per warp
    std::vector<unsigned> mma;    // mma fragment exchange, 32 lanes x 6 words per warp
};

inline void fiber_main(Fiber* f);

// Fiber stacks are kept for the module's lifetime and shared by all launches.
struct StackPool {
    std::mutex mu;
    std::vector<char*> free;
    ~StackPool() {
        for (char* s : free) munmap(s, kStackBytes);
    }
    char* take() {
        {
            std::lock_guard<std::mutex> g(mu);
            if (!free.empty()) {
                char* s = free.back();
                free.pop_back();
                return s;
            }
        }
        void* m = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED) {
            std::fprintf(stderr, "cuda emulator: cannot map a fiber stack\n");
            std::abort();
        }
        mprotect(m, 4096, PROT_NONE);  // stack overflow faults instead of corrupting
        return static_cast<char*>(m);
    }
    void give(char* s) {
        std::lock_guard<std::mutex> g(mu);
        free.push_back(s);
    }
};
inline StackPool stacks;

inline void fiber_prepare(Fiber* f) {
    if (!f->stack) f->stack = stacks.take();
    f->copies.clear();  // copies never waited for do not land in the next block's memory
    f->groups = 0;
    // Frame popped by sincut_emu_switch: r15..r12, rbx, rbp, then the return address (the
    // trampoline), placed so that the trampoline's call sees a 16-byte aligned stack.
    uintptr_t top = (reinterpret_cast<uintptr_t>(f->stack) + kStackBytes) & ~uintptr_t(15);
    uint64_t* s = reinterpret_cast<uint64_t*>(top - 72);
    s[0] = 0;                                                   // r15
    s[1] = 0;                                                   // r14
    s[2] = reinterpret_cast<uint64_t>(&fiber_main);             // r13
    s[3] = reinterpret_cast<uint64_t>(f);                       // r12
    s[4] = 0;                                                   // rbx
    s[5] = 0;                                                   // rbp
    s[6] = reinterpret_cast<uint64_t>(&sincut_emu_trampoline);  // return address
    f->sp = s;
}

inline void yield_to_scheduler() {
    Fiber* f = cur->fiber;
    sincut_emu_switch(&f->sp, f->run->sched_sp);
}

inline void release_if_complete(Barrier& b) {
    if (b.arrived > 0 && b.arrived == b.live) {
        b.arrived = 0;
        ++b.gen;
    }
}

inline void fiber_main(Fiber* f) {
    cur = &f->ts;
    f->run->thunk(f->run->params);
    f->wait = Wait::Done;
    BlockRun* r = f->run;
    --r->block.live;
    release_if_complete(r->block);
    --r->warps[f->warp].live;
    release_if_complete(r->warps[f->warp]);
    sincut_emu_switch(&f->sp, r->sched_sp);
    __builtin_unreachable();
}

inline void arrive(Barrier& b, Wait kind) {
    Fiber* f = cur->fiber;
    ++b.arrived;
    if (b.arrived == b.live) {  // last one in: everyone may go on
        b.arrived = 0;
        ++b.gen;
        return;
    }
    f->wait = kind;
    f->wait_gen = b.gen;
    ThreadState* me = cur;
    yield_to_scheduler();
    cur = me;
}

inline void sync_block() { arrive(cur->fiber->run->block, Wait::Block); }
inline void sync_warp() {
    Fiber* f = cur->fiber;
    arrive(f->run->warps[f->warp], Wait::Warp);
}

// A warp-wide exchange: every lane publishes `bits`, then reads lane `src`'s (its own value
// when `src` is outside the warp or names a thread that does not exist).
inline uint64_t exchange(uint64_t bits, int src) {
    Fiber* f = cur->fiber;
    BlockRun* r = f->run;
    uint64_t* slots = &r->slots[size_t(f->warp) * 32];
    slots[f->lane] = bits;
    sync_warp();
    uint64_t out = bits;
    const unsigned nthreads = cur->bdim.x * cur->bdim.y * cur->bdim.z;
    if (src >= 0 && src < 32 && unsigned(f->warp * 32 + src) < nthreads) out = slots[src];
    sync_warp();  // nobody overwrites a slot before every lane has read
    return out;
}

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 64 bits");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

// ---- the kernel table, filled by registrations the emulator's NVRTC appends ----
struct Entry {
    Thunk thunk;
    int max_threads;  // from __launch_bounds__, 0 when none
};
inline std::map<std::string, Entry>& table() {
    static std::map<std::string, Entry> t;
    return t;
}
template <class... A, size_t... I>
inline void invoke(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}
template <class... A>
inline void invoke_all(void (*f)(A...), void** p) {
    invoke(f, p, std::index_sequence_for<A...>{});
}
template <auto F>
struct ThunkOf {
    static void call(void** p) { invoke_all(F, p); }
};
struct Register {
    template <auto F>
    static bool add(const char* name, int max_threads) {
        table()[name] = Entry{&ThunkOf<F>::call, max_threads};
        return true;
    }
};

// ---- fault reporting ----
static thread_local const char* running_kernel = nullptr;
inline char* alt_stack_for_this_thread() {
    static thread_local char* s = nullptr;
    if (!s) s = static_cast<char*>(std::malloc(64 * 1024));
    return s;
}
inline void on_fault(int sig, siginfo_t* info, void*) {
    char msg[512];
    int n;
    if (cur && running_kernel)
        n = std::snprintf(msg, sizeof msg,
                          "cuda emulator: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s at address %p\n",
                          running_kernel, cur->bid.x, cur->bid.y, cur->bid.z, cur->tid.x, cur->tid.y, cur->tid.z,
                          sig == SIGSEGV ? "invalid memory access" : "fault", info->si_addr);
    else
        n = std::snprintf(msg, sizeof msg, "cuda emulator: signal %d outside a kernel\n", sig);
    if (n > 0) (void)!write(2, msg, size_t(n));
    _exit(86);
}
inline void install_fault_handler() {
    stack_t ss{};
    ss.ss_sp = alt_stack_for_this_thread();
    ss.ss_size = 64 * 1024;
    sigaltstack(&ss, nullptr);
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa{};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
        sigaction(SIGFPE, &sa, nullptr);
        sigaction(SIGILL, &sa, nullptr);
    });
}

// Runs blocks [first, last) of a launch, one after another, on the calling OS thread.
inline bool run_blocks(const char* name, Thunk thunk, void** params, dim3 grid, dim3 block,
                       std::atomic<unsigned long long>& next, unsigned long long nblocks, std::string& err) {
    install_fault_handler();
    running_kernel = name;
    const unsigned nthreads = block.x * block.y * block.z;
    const unsigned nwarps = (nthreads + 31) / 32;
    std::vector<Fiber> fibers(nthreads);
    BlockRun run;
    run.thunk = thunk;
    run.params = params;
    run.warps.resize(nwarps);
    run.slots.assign(size_t(nwarps) * 32, 0);
    run.mma.assign(size_t(nwarps) * 32 * 6, 0);
    bool ok = true;
    for (;;) {
        const unsigned long long lin = next.fetch_add(1);
        if (lin >= nblocks || !ok) break;
        dim3 bid{unsigned(lin % grid.x), unsigned((lin / grid.x) % grid.y), unsigned(lin / (grid.x * grid.y))};
        run.block = Barrier{0, 0, int(nthreads)};
        for (unsigned w = 0; w < nwarps; ++w) run.warps[w] = Barrier{0, 0, int(std::min(32u, nthreads - w * 32))};
        for (unsigned t = 0; t < nthreads; ++t) {
            Fiber& f = fibers[t];
            f.ts.tid = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            f.ts.bid = bid;
            f.ts.bdim = block;
            f.ts.gdim = grid;
            f.ts.fiber = &f;
            f.wait = Wait::None;
            f.lane = int(t % 32);
            f.warp = int(t / 32);
            f.run = &run;
            fiber_prepare(&f);
        }
        unsigned done = 0;
        while (done < nthreads) {
            bool progress = false;
            for (unsigned t = 0; t < nthreads; ++t) {
                Fiber& f = fibers[t];
                if (f.wait == Wait::Done) continue;
                if (f.wait == Wait::Block && run.block.gen == f.wait_gen) continue;
                if (f.wait == Wait::Warp && run.warps[f.warp].gen == f.wait_gen) continue;
                f.wait = Wait::None;
                cur = &f.ts;
                sincut_emu_switch(&run.sched_sp, f.sp);
                cur = nullptr;
                if (f.wait == Wait::Done) ++done;
                progress = true;
            }
            if (!progress) {
                unsigned at_block = 0, at_warp = 0;
                for (auto& f : fibers) {
                    at_block += f.wait == Wait::Block;
                    at_warp += f.wait == Wait::Warp;
                }
                err = std::string("kernel ") + name + ": deadlock in block (" + std::to_string(bid.x) + "," +
                      std::to_string(bid.y) + "," + std::to_string(bid.z) + "): " + std::to_string(at_block) +
                      " threads wait at __syncthreads, " + std::to_string(at_warp) +
                      " at a warp collective, " + std::to_string(nthreads - done) +
                      " not finished (a barrier inside divergent code?)";
                ok = false;
                break;
            }
        }
    }
    running_kernel = nullptr;
    for (auto& f : fibers)
        if (f.stack) stacks.give(f.stack);
    return ok;
}


// OS threads that run blocks beside the launching thread; started with the module, joined
// when it is unloaded. SINCUT_EMU_THREADS sets the total (default: the machine's cores).
struct Workers {
    std::mutex mu;
    std::condition_variable start, finished;
    std::vector<std::thread> threads;
    std::function<void(unsigned)> job;
    unsigned generation = 0, wanted = 0, busy = 0;
    bool stop = false;
    Workers() {
        unsigned n = std::thread::hardware_concurrency();
        if (const char* w = std::getenv("SINCUT_EMU_THREADS")) n = unsigned(std::atoi(w));
        for (unsigned i = 1; i < std::max(n, 1u); ++i) threads.emplace_back([this, i] { loop(i); });
    }
    ~Workers() {
        {
            std::lock_guard<std::mutex> g(mu);
            stop = true;
        }
        start.notify_all();
        for (auto& t : threads) t.join();
    }
    size_t size() const { return threads.size(); }
    void loop(unsigned id) {
        unsigned seen = 0;
        for (;;) {
            std::function<void(unsigned)> j;
            {
                std::unique_lock<std::mutex> g(mu);
                start.wait(g, [&] { return stop || generation != seen; });
                if (stop) return;
                seen = generation;
                if (id > wanted) continue;
                j = job;
            }
            j(id);
            std::lock_guard<std::mutex> g(mu);
            if (--busy == 0) finished.notify_all();
        }
    }
    // Runs f(0) here and f(1..=extra) on workers; returns when all are done.
    void run(unsigned extra, const std::function<void(unsigned)>& f) {
        if (extra > 0) {
            std::lock_guard<std::mutex> g(mu);
            job = f;
            wanted = extra;
            busy = extra;
            ++generation;
        }
        if (extra > 0) start.notify_all();
        f(0);
        if (extra > 0) {
            std::unique_lock<std::mutex> g(mu);
            finished.wait(g, [&] { return busy == 0; });
        }
    }
};
inline Workers workers;

}  // namespace sincut_emu

inline void __syncthreads() { sincut_emu::sync_block(); }
// Lane l reads lane l + delta of its `width`-lane segment, or keeps its own value past the end.
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    const int lane = sincut_emu::cur->fiber->lane, end = lane / width * width + width;
    const int src = lane + int(delta) < end ? lane + int(delta) : lane;
    return sincut_emu::from_bits<T>(sincut_emu::exchange(sincut_emu::to_bits(v), src));
}
// Of the warp collectives only __shfl_down_sync, the bf16 mma and ldmatrix below are emulated,
// and no atomics: that is what kernels/ uses. A kernel using more fails to compile here, naming what
// to add.

// common.cuh tests this to use the emulated instructions below instead of inline PTX.
#define SINCUT_CUDA_EMU 1

namespace sincut_emu {

// f32 -> bf16 bits, round to nearest even (PTX cvt.rn); NaN stays a (quiet) NaN.
inline unsigned bf16_rn(float f) {
    const unsigned u = sincut_emu_bits<unsigned>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
inline float bf16_to_f32(unsigned h) { return sincut_emu_bits<float>((h & 0xffffu) << 16); }

// PTX `cvt.rn.bf16x2.f32 d, a, b`: a goes to the upper half of d, b to the lower half.
inline unsigned cvt_rn_bf16x2_f32(float a, float b) { return (bf16_rn(a) << 16) | bf16_rn(b); }

// PTX `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c` as a warp collective:
// every lane publishes its A and B fragments, then computes its own four outputs. The fragment
// layouts are the PTX ISA's (Matrix Fragments for mma.m16n8k16 with floating point type), with
// groupID g = lane >> 2 and threadID_in_group t = lane % 4; element i of a fragment lies in
// register i / 2, in its low half when i is even:
//   A (16x16, 8 elements a0..a7): row g for i in {0,1,4,5}, else g + 8;
//                                 col 2t + (i & 1), + 8 for i >= 4;
//   B (16x8, 4 elements b0..b3):  row (k) 2t + (i & 1), + 8 for i >= 2; col g;
//   C, D (16x8, 4 f32 c0..c3):    row g for i < 2, else g + 8; col 2t + (i & 1).
// The products of two bf16 values are exact in f32; they are added to c in k order in f32.
inline void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    Fiber* f = cur->fiber;
    BlockRun* r = f->run;
    if (r->warps[f->warp].live != 32) {
        std::fprintf(stderr, "cuda emulator: mma.sync in a warp without 32 active threads\n");
        std::abort();
    }
    unsigned* slots = &r->mma[size_t(f->warp) * 32 * 6];
    for (int j = 0; j < 4; ++j) slots[f->lane * 6 + j] = a[j];
    for (int j = 0; j < 2; ++j) slots[f->lane * 6 + 4 + j] = b[j];
    sync_warp();
    // The whole 16x16 A and 16x8 B, placed from every lane's fragment by the layouts above.
    float A[16][16], B[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3;
        const unsigned* s = &slots[lane * 6];
        for (int i = 0; i < 8; ++i) {
            const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
            const int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = bf16_to_f32(s[i / 2] >> (16 * (i & 1)));
        }
        for (int i = 0; i < 4; ++i) {
            const int row = 2 * t + (i & 1) + (i >= 2 ? 8 : 0);
            B[row][g] = bf16_to_f32(s[4 + i / 2] >> (16 * (i & 1)));
        }
    }
    sync_warp();  // nobody overwrites a slot before every lane has read
    const int g = f->lane >> 2, t = f->lane & 3;
    for (int i = 0; i < 4; ++i) {
        const int row = i < 2 ? g : g + 8, col = 2 * t + (i & 1);
        float acc = c[i];
        for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
        d[i] = acc;
    }
}

[[noreturn]] inline void misuse(const char* what) {
    std::fprintf(stderr, "cuda emulator: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s\n",
                 running_kernel ? running_kernel : "?", cur->bid.x, cur->bid.y, cur->bid.z, cur->tid.x, cur->tid.y,
                 cur->tid.z, what);
    std::abort();
}

// PTX `cp.async.cg.shared.global [dst], [src], 16, bytes`: queued; it lands (src read then,
// the rest of the 16 bytes zeroed) at the cp.async.wait_group that covers its group, so a
// kernel that reads the destination before waiting sees the old contents, as it may on a GPU.
inline void cp_async16(void* dst, const void* src, int bytes) {
    if (bytes != 0 && bytes != 16) misuse("cp.async with a source size other than 0 or 16");
    if ((reinterpret_cast<uintptr_t>(dst) | (bytes ? reinterpret_cast<uintptr_t>(src) : 0)) & 15)
        misuse("cp.async of 16 bytes at an address not 16-byte aligned");
    Fiber* f = cur->fiber;
    f->copies.push_back(AsyncCopy{dst, src, bytes, f->groups});
}
inline void cp_async_commit() { ++cur->fiber->groups; }
// PTX `cp.async.wait_group n`: every copy of the committed groups but the newest n lands.
inline void cp_async_wait(int n) {
    Fiber* f = cur->fiber;
    const unsigned limit = f->groups > unsigned(n) ? f->groups - unsigned(n) : 0;
    size_t kept = 0;
    for (size_t i = 0; i < f->copies.size(); ++i) {
        const AsyncCopy c = f->copies[i];
        if (c.group < limit) {
            std::memcpy(c.dst, c.src, size_t(c.bytes));
            std::memset(static_cast<char*>(c.dst) + c.bytes, 0, size_t(16 - c.bytes));
        } else {
            f->copies[kept++] = c;
        }
    }
    f->copies.resize(kept);
}

// PTX `ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16` as a warp collective: lane 8i + r
// publishes the address of row r of matrix i; register i of lane (g, t) = (lane/4, lane%4)
// gets that matrix's elements (g, 2t), (g, 2t+1), or with .trans (2t, g), (2t+1, g), the
// first in the low half.
inline void ldmatrix_x4(unsigned r[4], const void* row, bool trans) {
    Fiber* f = cur->fiber;
    BlockRun* run = f->run;
    if (run->warps[f->warp].live != 32) misuse("ldmatrix in a warp without 32 active threads");
    if (reinterpret_cast<uintptr_t>(row) & 15) misuse("ldmatrix row address not 16-byte aligned");
    uint64_t* slots = &run->slots[size_t(f->warp) * 32];
    slots[f->lane] = reinterpret_cast<uintptr_t>(row);
    sync_warp();
    const int g = f->lane >> 2, t = f->lane & 3;
    for (int i = 0; i < 4; ++i) {
        auto at = [&](int rr, int c) {
            uint16_t v;
            std::memcpy(&v, reinterpret_cast<const char*>(slots[8 * i + rr]) + 2 * c, 2);
            return unsigned(v);
        };
        r[i] = trans ? (at(2 * t, g) | at(2 * t + 1, g) << 16) : (at(g, 2 * t) | at(g, 2 * t + 1) << 16);
    }
    sync_warp();  // nobody overwrites a slot before every lane has read
}

}  // namespace sincut_emu

// Entry points the emulator's libcuda looks up with dlsym.
extern "C" __attribute__((visibility("default"))) int sincut_emu_has(const char* name) {
    return sincut_emu::table().count(name) ? 1 : 0;
}
extern "C" __attribute__((visibility("default"))) int sincut_emu_max_threads(const char* name) {
    auto it = sincut_emu::table().find(name);
    return it == sincut_emu::table().end() ? 0 : it->second.max_threads;
}

// Runs a whole launch (synchronously). Returns 0, or 1 with a message in err.
extern "C" __attribute__((visibility("default"))) int sincut_emu_launch(const char* name, unsigned gx, unsigned gy,
                                                                        unsigned gz, unsigned bx, unsigned by,
                                                                        unsigned bz, void** params, char* err,
                                                                        size_t errlen) {
    auto it = sincut_emu::table().find(name);
    std::string msg;
    if (it == sincut_emu::table().end()) {
        msg = std::string("no kernel named ") + name;
    } else {
        const dim3 grid{gx, gy, gz}, block{bx, by, bz};
        const unsigned long long nblocks = (unsigned long long)gx * gy * gz;
        std::atomic<unsigned long long> next{0};
        const unsigned nworkers = unsigned(std::min<unsigned long long>(sincut_emu::workers.size() + 1, nblocks));
        std::vector<std::string> errs(nworkers);
        std::atomic<bool> failed{false};
        auto work = [&](unsigned w) {
            if (!sincut_emu::run_blocks(name, it->second.thunk, params, grid, block, next, nblocks, errs[w]))
                failed = true;
        };
        sincut_emu::workers.run(nworkers - 1, work);
        if (failed)
            for (auto& e : errs)
                if (!e.empty()) {
                    msg = e;
                    break;
                }
    }
    if (msg.empty()) return 0;
    std::snprintf(err, errlen, "%s", msg.c_str());
    return 1;
}

// NVRTC's stand-in appends one line per kernel; `bound` is its __launch_bounds__ (0 if none).
#define SINCUT_EMU_REGISTER(fn, bound) \
    static const bool sincut_emu_registered_##fn = sincut_emu::Register::add<&fn>(#fn, (bound));
