// The emulator's NVRTC: the few entry points sincut calls, "compiling" a kernel file with the
// host C++ compiler into a shared object (after -include cuda_emu.h), which the emulator's
// libcuda then loads as if it were a cubin. -fno-gnu-unique keeps each module's statics (its
// kernel table, its shared memory) its own and lets it be unloaded. The shared object is an ELF file, so sincut's
// cubin cache handles it like a real one. Build and use: scripts/cuda-emulator.sh.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Program {
    std::string src, name, log;
    std::vector<char> binary;
};

std::string own_dir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&own_dir), &info) && info.dli_fname) {
        std::string p = info.dli_fname;
        auto s = p.rfind('/');
        if (s != std::string::npos) return p.substr(0, s);
    }
    return ".";
}

std::string quote(const std::string& s) {
    std::string o = "'";
    for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return o + "'";
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

}  // namespace

extern "C" {

typedef int nvrtcResult;
typedef Program* nvrtcProgram;

const char* nvrtcGetErrorString(nvrtcResult r) {
    switch (r) {
        case 0: return "NVRTC_SUCCESS";
        case 3: return "NVRTC_ERROR_INVALID_INPUT";
        case 4: return "NVRTC_ERROR_INVALID_PROGRAM";
        case 6: return "NVRTC_ERROR_COMPILATION";
        default: return "NVRTC_ERROR (emulator)";
    }
}

// A version no real NVRTC has, so that sincut's cubin cache keys never collide with real ones.
nvrtcResult nvrtcVersion(int* major, int* minor) {
    *major = 99;
    *minor = 0;
    return 0;
}

nvrtcResult nvrtcCreateProgram(nvrtcProgram* prog, const char* src, const char* name, int, const char* const*,
                               const char* const*) {
    if (!prog || !src) return 3;
    *prog = new Program{src, name ? name : "kernel.cu", "", {}};
    return 0;
}

nvrtcResult nvrtcDestroyProgram(nvrtcProgram* prog) {
    if (!prog || !*prog) return 4;
    delete *prog;
    *prog = nullptr;
    return 0;
}

nvrtcResult nvrtcCompileProgram(nvrtcProgram p, int nopts, const char* const* opts) {
    if (!p) return 4;
    std::vector<std::string> includes;
    for (int i = 0; i < nopts; ++i) {
        std::string o = opts[i];
        const std::string ip = "--include-path=";
        if (o.rfind(ip, 0) == 0) includes.push_back(o.substr(ip.size()));
    }
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/sincut-emu-XXXXXX";
    std::vector<char> d(dir.begin(), dir.end());
    d.push_back(0);
    if (!mkdtemp(d.data())) {
        p->log = "emulator NVRTC: cannot create a temporary directory";
        return 6;
    }
    dir = d.data();
    std::string src = dir + "/" + p->name, so = dir + "/module.so", log = dir + "/log.txt";
    std::string pre = dir + "/scan.ii";
    const char* cxx = std::getenv("SINCUT_EMU_CXX");
    // Every extern "C" __global__ function becomes an entry of the module's kernel table. They
    // are found in the preprocessed source (without cuda_emu.h, which defines __global__ away),
    // so a macro may write a family of entry points.
    {
        std::ofstream f(src, std::ios::binary);
        f << p->src;
    }
    std::string scan_cmd = std::string(cxx && *cxx ? cxx : "c++") + " -E -P -x c++";
    for (auto& i : includes) scan_cmd += " -I" + quote(i);
    scan_cmd += " " + quote(src) + " -o " + quote(pre) + " > " + quote(log) + " 2>&1";
    std::string scanned;
    if (std::system(scan_cmd.c_str()) != 0 || !read_file(pre, scanned)) {
        read_file(log, p->log);
        p->log = "emulator NVRTC: `" + scan_cmd + "` failed:\n" + p->log;
        unlink(src.c_str());
        unlink(pre.c_str());
        unlink(log.c_str());
        rmdir(dir.c_str());
        return 6;
    }
    unlink(pre.c_str());
    std::string reg = "\n// registrations added by the emulator's NVRTC\n";
    std::regex kernel(R"(__global__\s+void\s+(?:__launch_bounds__\s*\(([^,)]*)[^)]*\)\s*)?([A-Za-z_]\w*)\s*\()");
    for (auto it = std::sregex_iterator(scanned.begin(), scanned.end(), kernel); it != std::sregex_iterator(); ++it) {
        const std::string bound = (*it)[1].matched ? (*it)[1].str() : "0";
        reg += "SINCUT_EMU_REGISTER(" + (*it)[2].str() + ", " + bound + ")\n";
    }
    {
        std::ofstream f(src, std::ios::binary);
        f << p->src << reg;
    }
    std::string cmd = std::string(cxx && *cxx ? cxx : "c++") +
                      " -std=c++17 -O2 -march=native -fPIC -shared -ffp-contract=off -fno-strict-aliasing -fno-gnu-unique -pthread" +
                      " -include " + quote(own_dir() + "/cuda_emu.h");
    for (auto& i : includes) cmd += " -I" + quote(i);
    cmd += " -x c++ " + quote(src) + " -o " + quote(so) + " > " + quote(log) + " 2>&1";
    const int rc = std::system(cmd.c_str());
    read_file(log, p->log);
    std::string bin;
    const bool ok = rc == 0 && read_file(so, bin);
    if (ok) p->binary.assign(bin.begin(), bin.end());
    unlink(src.c_str());
    unlink(so.c_str());
    unlink(log.c_str());
    rmdir(dir.c_str());
    if (!ok) {
        p->log = "emulator NVRTC: `" + cmd + "` failed:\n" + p->log;
        return 6;
    }
    return 0;
}

nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram p, size_t* size) {
    if (!p) return 4;
    *size = p->log.size() + 1;
    return 0;
}
nvrtcResult nvrtcGetProgramLog(nvrtcProgram p, char* out) {
    if (!p) return 4;
    std::memcpy(out, p->log.c_str(), p->log.size() + 1);
    return 0;
}
nvrtcResult nvrtcGetCUBINSize(nvrtcProgram p, size_t* size) {
    if (!p) return 4;
    *size = p->binary.size();
    return 0;
}
nvrtcResult nvrtcGetCUBIN(nvrtcProgram p, char* out) {
    if (!p) return 4;
    std::memcpy(out, p->binary.data(), p->binary.size());
    return 0;
}
nvrtcResult nvrtcGetPTXSize(nvrtcProgram p, size_t* size) { return nvrtcGetCUBINSize(p, size); }
nvrtcResult nvrtcGetPTX(nvrtcProgram p, char* out) { return nvrtcGetCUBIN(p, out); }

}  // extern "C"
