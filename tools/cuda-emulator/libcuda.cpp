// The emulator's CUDA driver: the part of the driver API that cudarc and sincut call, on the
// CPU. "Device memory" is host memory, each allocation ending exactly at an inaccessible page
// and filled with 0xFF bytes (NaN as f32) so that reads past the end fault and reads of
// unwritten memory show; freed memory is unmapped, so later use faults too. Copies are checked
// against the allocations they touch. Modules are the shared objects the emulator's NVRTC
// builds; launches run synchronously, so every stream is in order and events measure host
// time. Build and use: scripts/cuda-emulator.sh.
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace {

typedef int CUresult;
constexpr CUresult OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_INITIALIZED = 3, INVALID_IMAGE = 200,
                   INVALID_HANDLE = 400, NOT_FOUND = 500, LAUNCH_OUT_OF_RESOURCES = 701, LAUNCH_FAILED = 719,
                   NOT_SUPPORTED = 801;

struct Alloc {
    char* map;
    size_t map_len, size;
};
struct Module {
    void* handle;
    int (*has)(const char*);
    int (*max_threads)(const char*);
    int (*launch)(const char*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void**, char*, size_t);
};
struct Function {
    Module* module;
    std::string name;
};
struct Event {
    std::chrono::steady_clock::time_point t;
};

std::mutex mu;
std::map<uintptr_t, Alloc> allocs;  // by user pointer
size_t used = 0, used_high = 0;
bool initialised = false;
int ctx_token, stream_token, pool_token;
const size_t kPage = 4096;
const size_t kTotalMemory = size_t(16) << 30;  // what the emulated device claims to have

void fail(const std::string& msg) { std::fprintf(stderr, "cuda emulator: %s\n", msg.c_str()); }

// The allocation holding [p, p + len), if any.
const Alloc* find(uintptr_t p, size_t len) {
    auto it = allocs.upper_bound(p);
    if (it == allocs.begin()) return nullptr;
    --it;
    if (p < it->first || p + len > it->first + it->second.size) return nullptr;
    return &it->second;
}

CUresult check_range(uintptr_t p, size_t len, const char* what) {
    std::lock_guard<std::mutex> g(mu);
    if (len == 0) return OK;
    if (!find(p, len)) {
        char at[32];
        std::snprintf(at, sizeof at, "%#llx", (unsigned long long)p);
        fail(std::string(what) + ": " + std::to_string(len) + " bytes at " + at +
             " are not inside one live allocation");
        return INVALID_VALUE;
    }
    return OK;
}

CUresult allocate(unsigned long long* out, size_t size) {
    if (!out) return INVALID_VALUE;
    if (size == 0) return INVALID_VALUE;
    const size_t body = (size + kPage - 1) / kPage * kPage;
    const size_t map_len = body + kPage;
    void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return OUT_OF_MEMORY;
    char* base = static_cast<char*>(m);
    mprotect(base + body, kPage, PROT_NONE);
    char* user = base + body - size;  // the last byte touches the guard page
    std::memset(user, 0xff, size);
    std::lock_guard<std::mutex> g(mu);
    if (used + size > kTotalMemory) {
        munmap(m, map_len);
        return OUT_OF_MEMORY;
    }
    allocs[reinterpret_cast<uintptr_t>(user)] = Alloc{base, map_len, size};
    used += size;
    if (used > used_high) used_high = used;
    *out = reinterpret_cast<uintptr_t>(user);
    return OK;
}

CUresult release(unsigned long long p) {
    std::lock_guard<std::mutex> g(mu);
    auto it = allocs.find(p);
    if (it == allocs.end()) {
        fail("free of a pointer that is not a live allocation");
        return INVALID_VALUE;
    }
    used -= it->second.size;
    munmap(it->second.map, it->second.map_len);
    allocs.erase(it);
    return OK;
}

const char* error_name(CUresult r) {
    switch (r) {
        case OK: return "CUDA_SUCCESS";
        case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
        case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
        case NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
        case INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
        case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
        case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
        case LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
        case LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
        case NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
        default: return "CUDA_ERROR_UNKNOWN";
    }
}

}  // namespace

extern "C" {

typedef unsigned long long CUdeviceptr;
typedef int CUdevice;
typedef void* CUcontext;
typedef void* CUstream;
typedef void* CUmemoryPool;
typedef Module* CUmodule;
typedef Function* CUfunction;
typedef Event* CUevent;

CUresult cuInit(unsigned) {
    initialised = true;
    return OK;
}
CUresult cuDriverGetVersion(int* v) {
    *v = 12080;
    return OK;
}
CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return OK;
}
CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (!initialised) return NOT_INITIALIZED;
    if (ordinal != 0) return INVALID_VALUE;
    *d = 0;
    return OK;
}
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    std::snprintf(name, size_t(len), "sincut CPU emulator");
    return OK;
}
CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice) {
    switch (attr) {
        case 1: *v = 1024; break;          // max threads per block
        case 2: *v = 1024; break;          // max block dim x
        case 3: *v = 1024; break;          // max block dim y
        case 4: *v = 64; break;            // max block dim z
        case 5: *v = 2147483647; break;    // max grid dim x
        case 6: *v = 65535; break;         // max grid dim y
        case 7: *v = 65535; break;         // max grid dim z
        case 8: *v = 48 * 1024; break;     // shared memory per block
        case 10: *v = 32; break;           // warp size
        case 16: *v = 132; break;          // multiprocessors (an H100's count)
        case 75: *v = 9; break;            // compute capability major
        case 76: *v = 0; break;            // compute capability minor
        case 115: *v = 1; break;           // memory pools supported
        default: *v = 0;
    }
    return OK;
}
CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = kTotalMemory;
    return OK;
}
CUresult cuDeviceGetUuid(void* uuid, CUdevice) {
    std::memset(uuid, 0x5e, 16);
    return OK;
}
CUresult cuDeviceGetUuid_v2(void* uuid, CUdevice d) { return cuDeviceGetUuid(uuid, d); }
CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice) {
    *c = &ctx_token;
    return OK;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return OK; }
CUresult cuCtxSetCurrent(CUcontext) { return OK; }
CUresult cuCtxGetCurrent(CUcontext* c) {
    *c = initialised ? &ctx_token : nullptr;
    return OK;
}
CUresult cuCtxGetDevice(CUdevice* d) {
    *d = 0;
    return OK;
}
CUresult cuCtxSynchronize() { return OK; }
CUresult cuCtxPushCurrent_v2(CUcontext) { return OK; }
CUresult cuCtxPopCurrent_v2(CUcontext* c) {
    if (c) *c = &ctx_token;
    return OK;
}

CUresult cuStreamCreate(CUstream* s, unsigned) {
    *s = &stream_token;
    return OK;
}
CUresult cuStreamCreateWithPriority(CUstream* s, unsigned, int) { return cuStreamCreate(s, 0); }
CUresult cuStreamDestroy_v2(CUstream) { return OK; }
CUresult cuStreamSynchronize(CUstream) { return OK; }
CUresult cuStreamQuery(CUstream) { return OK; }
CUresult cuStreamWaitEvent(CUstream, CUevent, unsigned) { return OK; }
CUresult cuStreamIsCapturing(CUstream, int* status) {
    *status = 0;
    return OK;
}
CUresult cuStreamBeginCapture_v2(CUstream, int) {
    fail("stream capture (CUDA graphs) is not emulated");
    return NOT_SUPPORTED;
}
CUresult cuLaunchHostFunc(CUstream, void (*fn)(void*), void* data) {
    fn(data);
    return OK;
}

CUresult cuEventCreate(CUevent* e, unsigned) {
    *e = new Event{std::chrono::steady_clock::now()};
    return OK;
}
CUresult cuEventRecord(CUevent e, CUstream) {
    e->t = std::chrono::steady_clock::now();
    return OK;
}
CUresult cuEventSynchronize(CUevent) { return OK; }
CUresult cuEventQuery(CUevent) { return OK; }
CUresult cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return OK;
}
CUresult cuEventElapsedTime_v2(float* ms, CUevent a, CUevent b) { return cuEventElapsedTime(ms, a, b); }
CUresult cuEventDestroy_v2(CUevent e) {
    delete e;
    return OK;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t size) { return allocate(p, size); }
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t size, CUstream) { return allocate(p, size); }
CUresult cuMemFree_v2(CUdeviceptr p) { return release(p); }
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream) { return release(p); }
CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::mutex> g(mu);
    *free_bytes = kTotalMemory - used;
    *total = kTotalMemory;
    return OK;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t n) {
    if (CUresult r = check_range(dst, n, "copy to the device")) return r;
    std::memcpy(reinterpret_cast<void*>(dst), src, n);
    return OK;
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t n, CUstream) {
    return cuMemcpyHtoD_v2(dst, src, n);
}
CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t n) {
    if (CUresult r = check_range(src, n, "copy from the device")) return r;
    std::memcpy(dst, reinterpret_cast<void*>(src), n);
    return OK;
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t n, CUstream) { return cuMemcpyDtoH_v2(dst, src, n); }
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    if (CUresult r = check_range(src, n, "device copy source")) return r;
    if (CUresult r = check_range(dst, n, "device copy destination")) return r;
    std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<void*>(src), n);
    return OK;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream) {
    return cuMemcpyDtoD_v2(dst, src, n);
}
CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
    if (CUresult r = check_range(dst, n, "memset")) return r;
    std::memset(reinterpret_cast<void*>(dst), v, n);
    return OK;
}
CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, CUstream) { return cuMemsetD8_v2(dst, v, n); }
CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned v, size_t n) {
    if (CUresult r = check_range(dst, n * 4, "memset")) return r;
    unsigned* p = reinterpret_cast<unsigned*>(dst);
    for (size_t i = 0; i < n; ++i) p[i] = v;
    return OK;
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, CUstream) { return cuMemsetD32_v2(dst, v, n); }

// The pool's attributes: the release threshold is accepted, the used-memory figures are the
// emulator's own bookkeeping (bytes requested, not pages mapped).
CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* p, CUdevice) {
    *p = &pool_token;
    return OK;
}
CUresult cuDeviceGetMemPool(CUmemoryPool* p, CUdevice d) { return cuDeviceGetDefaultMemPool(p, d); }
CUresult cuMemPoolSetAttribute(CUmemoryPool, int attr, void* value) {
    std::lock_guard<std::mutex> g(mu);
    if (attr == 8 || attr == 6) {  // USED_MEM_HIGH, RESERVED_MEM_HIGH: may only be reset to 0
        if (*static_cast<unsigned long long*>(value) != 0) return INVALID_VALUE;
        used_high = used;
    }
    return OK;
}
CUresult cuMemPoolGetAttribute(CUmemoryPool, int attr, void* value) {
    std::lock_guard<std::mutex> g(mu);
    unsigned long long* v = static_cast<unsigned long long*>(value);
    switch (attr) {
        case 4: *v = ~0ull; break;
        case 5: case 7: *v = used; break;
        case 6: case 8: *v = used_high; break;
        default: *static_cast<int*>(value) = 0;
    }
    return OK;
}
CUresult cuMemPoolTrimTo(CUmemoryPool, size_t) { return OK; }

CUresult cuModuleLoadData(CUmodule* out, const void* image) {
    const unsigned char* b = static_cast<const unsigned char*>(image);
    if (!b || std::memcmp(b, ELFMAG, SELFMAG) != 0 || b[EI_CLASS] != ELFCLASS64) {
        fail("module image is not an ELF64 shared object (not built by the emulator's NVRTC?)");
        return INVALID_IMAGE;
    }
    Elf64_Ehdr h;
    std::memcpy(&h, b, sizeof h);
    if (h.e_machine != EM_X86_64) {
        fail("module image is a real cubin: the emulator runs only what its own NVRTC built");
        return INVALID_IMAGE;
    }
    const size_t len = size_t(h.e_shoff) + size_t(h.e_shnum) * h.e_shentsize;
    // A fresh file name for every load: the dynamic loader treats a name it has seen as the same
    // library. The file is removed at once; the mapping stays.
    const char* tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/sincut-emu-module-XXXXXX";
    const int fd = mkstemp(path.data());
    const bool staged = fd >= 0 && write(fd, b, len) == ssize_t(len);
    if (fd >= 0) close(fd);
    if (!staged) {
        fail("cannot stage a module in " + path);
        unlink(path.c_str());
        return INVALID_IMAGE;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!std::getenv("SINCUT_EMU_KEEP_MODULES")) unlink(path.c_str());  // kept: for profilers
    if (!handle) {
        fail(std::string("dlopen: ") + dlerror());
        return INVALID_IMAGE;
    }
    Module* m = new Module{handle, nullptr, nullptr, nullptr};
    m->has = reinterpret_cast<int (*)(const char*)>(dlsym(handle, "sincut_emu_has"));
    m->max_threads = reinterpret_cast<int (*)(const char*)>(dlsym(handle, "sincut_emu_max_threads"));
    m->launch = reinterpret_cast<decltype(m->launch)>(dlsym(handle, "sincut_emu_launch"));
    if (!m->has || !m->launch || !m->max_threads) {
        fail("module lacks the emulator's entry points");
        dlclose(handle);
        delete m;
        return INVALID_IMAGE;
    }
    *out = m;
    return OK;
}
CUresult cuModuleUnload(CUmodule m) {
    if (!m) return INVALID_HANDLE;
    dlclose(m->handle);
    delete m;
    return OK;
}
CUresult cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
    if (!m) return INVALID_HANDLE;
    if (!m->has(name)) return NOT_FOUND;
    *f = new Function{m, name};
    return OK;
}
CUresult cuFuncGetAttribute(int* v, int attr, CUfunction f) {
    *v = attr == 0 ? f->module->max_threads(f->name.c_str()) : 0;
    return OK;
}
CUresult cuFuncSetAttribute(CUfunction, int, int) { return OK; }
CUresult cuFuncSetCacheConfig(CUfunction, int) { return OK; }

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared_bytes, CUstream, void** params, void** extra) {
    if (!f) return INVALID_HANDLE;
    const std::string& name = f->name;
    if (extra) {
        fail(name + ": launch with `extra` arguments is not emulated");
        return NOT_SUPPORTED;
    }
    if (shared_bytes) {
        fail(name + ": dynamic shared memory is not emulated");
        return NOT_SUPPORTED;
    }
    const unsigned long long threads = (unsigned long long)bx * by * bz;
    if (!gx || !gy || !gz || !bx || !by || !bz || gy > 65535 || gz > 65535 || bz > 64 || threads > 1024) {
        fail(name + ": invalid launch shape grid (" + std::to_string(gx) + "," + std::to_string(gy) + "," +
             std::to_string(gz) + ") block (" + std::to_string(bx) + "," + std::to_string(by) + "," +
             std::to_string(bz) + ")");
        return INVALID_VALUE;
    }
    const int bound = f->module->max_threads(name.c_str());
    if (bound > 0 && threads > (unsigned long long)bound) {
        fail(name + ": block of " + std::to_string(threads) + " threads exceeds __launch_bounds__(" +
             std::to_string(bound) + ")");
        return LAUNCH_OUT_OF_RESOURCES;
    }
    char err[1024] = {0};
    if (f->module->launch(name.c_str(), gx, gy, gz, bx, by, bz, params, err, sizeof err) != 0) {
        fail(err);
        return LAUNCH_FAILED;
    }
    return OK;
}

CUresult cuGetErrorName(CUresult r, const char** s) {
    *s = error_name(r);
    return OK;
}
CUresult cuGetErrorString(CUresult r, const char** s) {
    *s = error_name(r);
    return OK;
}

}  // extern "C"
