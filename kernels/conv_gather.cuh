// Gather plans of conv2d's three implicit GEMMs (C = A*B over K), shared by the f32 tile
// (conv2d.cu) and the bf16 tensor-core tile (conv2d_bf16.cu). A plan splits each gather into
// what depends on the K index (`Ent`, decomposed once per K step into a shared table by a few
// threads) and what depends on the output column (`Col`, decomposed once per thread before the
// K loop), so the loop itself does no integer division:
//   ent(kk, ok)  the K index kk (ok: kk inside this block's K range)
//   col(n)       the column n of C (ok: n < N)
//   a(m, ent)    A(m, kk), for m < M and ent.ok only
//   b(col, ent)  B(kk, n), for ent.ok only (0 where col is not ok or the tap is padding)
// Included by name: src/cuda/kernels.rs inlines it (NVRTC gets no include path).

// Forward: A = w (Cout, K) row-major, K = (ci, kh, kw); B = im2col(x), column n = output pixel
// (img, oh, ow).
struct ConvFwdPlan {
    const float* x;
    const float* w;
    int cin, h, wd, k, s, p, ho, wo, K, N;
    struct Ent {
        int a, b, kh, kw;  // a: column of w; b: (ci*h + kh)*wd + kw
        bool ok;
    };
    struct Col {
        long long off;  // x offset of (img, 0, oh*s - p, ow*s - p)
        int ih0, iw0;
        bool ok;
    };
    __device__ Ent ent(int kk, bool ok) const {
        const int kw = kk % k, q = kk / k, kh = q % k, ci = q / k;
        return Ent{kk, (ci * h + kh) * wd + kw, kh, kw, ok};
    }
    __device__ float a(int m, const Ent& e) const { return w[(long long)m * K + e.a]; }
    __device__ Col col(int n) const {
        if (n >= N) return Col{0, 0, 0, false};
        const int npix = ho * wo, img = n / npix, r = n % npix, oh = r / wo, ow = r % wo;
        const int ih0 = oh * s - p, iw0 = ow * s - p;
        return Col{(long long)img * cin * h * wd + (long long)ih0 * wd + iw0, ih0, iw0, true};
    }
    __device__ float b(const Col& c, const Ent& e) const {
        const int ih = c.ih0 + e.kh, iw = c.iw0 + e.kw;
        if (!c.ok || (unsigned)ih >= (unsigned)h || (unsigned)iw >= (unsigned)wd) return 0.f;
        return x[c.off + e.b];
    }
};

// Input gradient: A(ci, r) = w[co][ci][kh][kw] with r = (co, kh, kw); B(r, n) = dy at the
// output pixel (oh, ow) with oh*s + kh - p = ih (likewise w), n = input pixel (img, ih, iw).
// With ih + p = s*hq + hr and kh = s*khq + khr, that pixel exists iff hr == khr, and then
// oh = hq - khq: no division in the loop.
struct ConvBwdInPlan {
    const float* dy;
    const float* w;
    int cin, h, wd, cout, k, s, p, ho, wo, N;
    struct Ent {
        int a, b, hq, hr, wq, wr;  // a: w offset of (co, 0, kh, kw); b: co*ho*wo
        bool ok;
    };
    struct Col {
        long long off;  // img*cout*ho*wo
        int hq, hr, wq, wr;
        bool ok;
    };
    __device__ Ent ent(int kk, bool ok) const {
        const int kw = kk % k, q = kk / k, kh = q % k, co = q / k;
        return Ent{co * cin * k * k + kh * k + kw, co * ho * wo, kh / s, kh % s, kw / s, kw % s, ok};
    }
    __device__ float a(int m, const Ent& e) const { return w[e.a + (long long)m * k * k]; }
    __device__ Col col(int n) const {
        if (n >= N) return Col{0, 0, 0, 0, 0, false};
        const int npix = h * wd, img = n / npix, r = n % npix, ih = r / wd, iw = r % wd;
        return Col{(long long)img * cout * ho * wo, (ih + p) / s, (ih + p) % s, (iw + p) / s, (iw + p) % s, true};
    }
    __device__ float b(const Col& c, const Ent& e) const {
        if (!c.ok || c.hr != e.hr || c.wr != e.wr) return 0.f;
        const int oh = c.hq - e.hq, ow = c.wq - e.wq;
        if ((unsigned)oh >= (unsigned)ho || (unsigned)ow >= (unsigned)wo) return 0.f;
        return dy[c.off + e.b + oh * wo + ow];
    }
};

// Weight gradient: K = output pixels (img, oh, ow); A(co, pix) = dy; B(pix, r) = x at
// (img, ci, oh*s + kh - p, ow*s + kw - p), column r = (ci, kh, kw).
struct ConvBwdWPlan {
    const float* x;
    const float* dy;
    int cin, h, wd, cout, k, s, p, ho, wo, N;
    struct Ent {
        long long a, b;  // a: dy offset of (img, 0, oh, ow); b: x offset of image img
        int ihs, iws;    // oh*s - p, ow*s - p
        bool ok;
    };
    struct Col {
        long long off;  // ci*h*wd
        int kh, kw;
        bool ok;
    };
    __device__ Ent ent(int kk, bool ok) const {
        const int npix = ho * wo, img = kk / npix, pix = kk % npix, oh = pix / wo, ow = pix % wo;
        return Ent{(long long)img * cout * npix + pix, (long long)img * cin * h * wd, oh * s - p, ow * s - p, ok};
    }
    __device__ float a(int m, const Ent& e) const { return dy[e.a + (long long)m * ho * wo]; }
    __device__ Col col(int n) const {
        if (n >= N) return Col{0, 0, 0, false};
        const int kw = n % k, q = n / k, kh = q % k, ci = q / k;
        return Col{(long long)ci * h * wd, kh, kw, true};
    }
    __device__ float b(const Col& c, const Ent& e) const {
        const int ih = e.ihs + c.kh, iw = e.iws + c.kw;
        if (!c.ok || (unsigned)ih >= (unsigned)h || (unsigned)iw >= (unsigned)wd) return 0.f;
        return x[e.b + c.off + (long long)ih * wd + iw];
    }
};
