//! An engine wrapper that times every op (synchronising before and after it), for benchmarks:
//! per op name the calls, the total time, and the achieved TFLOP/s (convolutions) or GB/s
//! (everything else, counting each input and output tensor once).

use super::Backend;
use crate::error::Result;
use crate::ops::adam::AdamConfig;
use crate::ops::blur::Blur;
use crate::ops::conv2d::conv_out_len;
use ndarray::Array4;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// What an op's time is measured against.
#[derive(Clone, Copy)]
enum Work {
    Flops(f64),
    Bytes(f64),
}

#[derive(Default)]
struct Stat {
    calls: u64,
    secs: f64,
    flops: f64,
    bytes: f64,
}

/// `inner` with per-op timing.
pub struct Profiled<'a, B: Backend> {
    inner: &'a B,
    stats: RefCell<BTreeMap<&'static str, Stat>>,
    /// The conv2d passes again, per (pass, layer): which shapes the conv time goes to.
    conv_layers: RefCell<BTreeMap<(&'static str, String), Stat>>,
}

/// The entries of `stats`, the most time first.
fn slowest_first<K: Ord>(stats: &BTreeMap<K, Stat>) -> Vec<(&K, &Stat)> {
    let mut rows: Vec<_> = stats.iter().collect();
    rows.sort_by(|a, b| b.1.secs.total_cmp(&a.1.secs));
    rows
}

/// A conv layer as the per-layer table names it: batch, input channels and size, output
/// channels, kernel, stride.
fn layer_name(
    n: usize,
    cin: usize,
    hw: (usize, usize),
    cout: usize,
    k: usize,
    st: usize,
) -> String {
    format!("{n}×{cin}×{}×{} → {cout}, k{k} s{st}", hw.0, hw.1)
}

impl<'a, B: Backend> Profiled<'a, B> {
    pub fn new(inner: &'a B) -> Self {
        Profiled {
            inner,
            stats: RefCell::new(BTreeMap::new()),
            conv_layers: RefCell::new(BTreeMap::new()),
        }
    }

    fn elems(&self, t: &B::Tensor) -> f64 {
        self.inner.shape(t).iter().product::<usize>() as f64
    }

    /// Bytes of f32 tensors read or written.
    fn bytes(&self, ts: &[&B::Tensor]) -> Work {
        Work::Bytes(4.0 * ts.iter().map(|t| self.elems(t)).sum::<f64>())
    }

    fn timed<R>(&self, name: &'static str, work: Work, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.inner.sync()?;
        let t = Instant::now();
        let r = f()?;
        self.inner.sync()?;
        let secs = t.elapsed().as_secs_f64();
        let mut stats = self.stats.borrow_mut();
        let s = stats.entry(name).or_default();
        s.calls += 1;
        s.secs += secs;
        match work {
            Work::Flops(v) => s.flops += v,
            Work::Bytes(v) => s.bytes += v,
        }
        Ok(r)
    }

    /// `timed`, also recorded under (pass, layer) for [`Profiled::conv_table`].
    fn timed_conv<R>(
        &self,
        pass: &'static str,
        layer: String,
        work: Work,
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let before = self.stats.borrow().get(pass).map_or(0.0, |s| s.secs);
        let r = self.timed(pass, work, f)?;
        let secs = self.stats.borrow()[pass].secs - before;
        let mut layers = self.conv_layers.borrow_mut();
        let s = layers.entry((pass, layer)).or_default();
        s.calls += 1;
        s.secs += secs;
        if let Work::Flops(v) = work {
            s.flops += v;
        }
        Ok(r)
    }

    /// The conv2d passes per layer shape, the `top` slowest (by total time) first: pass,
    /// layer, calls, ms, achieved TFLOP/s.
    pub fn conv_table(&self, top: usize) -> String {
        let layers = self.conv_layers.borrow();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<34} {:>6} {:>9} {:>13}",
            "pass", "layer (N×Cin×H×W → Cout)", "calls", "ms", "TFLOP/s"
        );
        for ((pass, layer), s) in slowest_first(&layers).into_iter().take(top) {
            let _ = writeln!(
                out,
                "{:<24} {:<34} {:>6} {:>9.2} {:>13.2}",
                pass,
                layer,
                s.calls,
                s.secs * 1e3,
                s.flops / s.secs.max(1e-12) / 1e12
            );
        }
        out
    }

    /// 2·(output elements of conv2d)·Cin·k² for x (N,Cin,·,·), w (Cout,Cin,k,k), output (N,Cout,Ho,Wo).
    fn conv_flops(&self, out_nchw: [usize; 4], w: [usize; 4]) -> Work {
        let per_out = (w[1] * w[2] * w[3]) as f64;
        Work::Flops(2.0 * out_nchw.iter().product::<usize>() as f64 * per_out)
    }

    /// A forward conv's work and layer name (`conv2d`, `conv2d_bias_lrelu`).
    fn conv2d_work(&self, x: &B::Tensor, w: &B::Tensor, st: usize, pad: usize) -> (Work, String) {
        let ws = self.shape(w);
        let [n, _, h, wd] = self.shape(x);
        let out = [
            n,
            ws[0],
            conv_out_len(h, ws[2], st, pad),
            conv_out_len(wd, ws[3], st, pad),
        ];
        (
            self.conv_flops(out, ws),
            layer_name(n, ws[1], (h, wd), ws[0], ws[2], st),
        )
    }

    /// The table: op, calls, total ms, share, achieved rate; slowest first.
    pub fn table(&self) -> String {
        let stats = self.stats.borrow();
        let total: f64 = stats.values().map(|s| s.secs).sum();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<34} {:>6} {:>10} {:>6} {:>14}",
            "op", "calls", "ms", "share", "achieved"
        );
        for (name, s) in slowest_first(&stats) {
            let rate = if s.flops > 0.0 {
                format!("{:.2} TFLOP/s", s.flops / s.secs / 1e12)
            } else {
                format!("{:.1} GB/s", s.bytes / s.secs / 1e9)
            };
            let _ = writeln!(
                out,
                "{:<34} {:>6} {:>10.2} {:>5.1}% {:>14}",
                name,
                s.calls,
                s.secs * 1e3,
                100.0 * s.secs / total.max(1e-12),
                rate
            );
        }
        let _ = writeln!(
            out,
            "{:<34} {:>6} {:>10.2}",
            "total (synchronised)",
            "",
            total * 1e3
        );
        out
    }
}

impl<B: Backend> Backend for Profiled<'_, B> {
    type Elem = B::Elem;
    type Tensor = B::Tensor;

    fn shape(&self, t: &B::Tensor) -> [usize; 4] {
        self.inner.shape(t)
    }
    fn upload(&self, a: &Array4<B::Elem>) -> Result<B::Tensor> {
        let w = Work::Bytes(4.0 * a.len() as f64);
        self.timed("upload", w, || self.inner.upload(a))
    }
    fn download(&self, t: &B::Tensor) -> Result<Array4<B::Elem>> {
        self.timed("download", self.bytes(&[t]), || self.inner.download(t))
    }
    fn zeros(&self, s: [usize; 4]) -> Result<B::Tensor> {
        let w = Work::Bytes(4.0 * s.iter().product::<usize>() as f64);
        self.timed("zeros", w, || self.inner.zeros(s))
    }
    fn copy(&self, t: &B::Tensor) -> Result<B::Tensor> {
        self.timed("copy", self.bytes(&[t, t]), || self.inner.copy(t))
    }
    fn reshape(&self, t: B::Tensor, s: [usize; 4]) -> Result<B::Tensor> {
        self.inner.reshape(t, s)
    }
    fn batch_slice(&self, x: &B::Tensor, r0: usize, n: usize) -> Result<B::Tensor> {
        let [b, ..] = self.shape(x);
        let w = Work::Bytes(8.0 * self.elems(x) * n as f64 / b.max(1) as f64);
        self.timed("batch_slice", w, || self.inner.batch_slice(x, r0, n))
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    fn scale(&self, x: &B::Tensor, s: f64) -> Result<B::Tensor> {
        self.timed("scale", self.bytes(&[x, x]), || self.inner.scale(x, s))
    }
    fn add_into(&self, d: &mut B::Tensor, off: usize, s: &B::Tensor) -> Result<()> {
        let w = self.bytes(&[s, s, s]);
        self.timed("add_into", w, || self.inner.add_into(d, off, s))
    }
    fn swap01(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.timed("swap01", self.bytes(&[x, x]), || self.inner.swap01(x))
    }
    fn to_windows(&self, x: &B::Tensor, s: usize) -> Result<B::Tensor> {
        self.timed("to_windows", self.bytes(&[x, x]), || {
            self.inner.to_windows(x, s)
        })
    }
    fn from_windows(&self, win: &B::Tensor, n: usize, h: usize, w: usize) -> Result<B::Tensor> {
        let wk = self.bytes(&[win, win]);
        self.timed("from_windows", wk, || self.inner.from_windows(win, n, h, w))
    }
    fn gather_positions(
        &self,
        f: &B::Tensor,
        r0: usize,
        b: usize,
        ids: &[usize],
    ) -> Result<B::Tensor> {
        let w = Work::Bytes(8.0 * (ids.len() * b * self.shape(f)[1]) as f64);
        self.timed("gather_positions", w, || {
            self.inner.gather_positions(f, r0, b, ids)
        })
    }
    fn scatter_add_positions(
        &self,
        d: &mut B::Tensor,
        r0: usize,
        ids: &[usize],
        rows: &B::Tensor,
    ) -> Result<()> {
        let w = self.bytes(&[rows, rows, rows]);
        self.timed("scatter_add_positions", w, || {
            self.inner.scatter_add_positions(d, r0, ids, rows)
        })
    }
    fn sum_squares(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.timed("sum_squares", self.bytes(&[x]), || {
            self.inner.sum_squares(x)
        })
    }

    fn conv2d(&self, x: &B::Tensor, w: &B::Tensor, st: usize, pad: usize) -> Result<B::Tensor> {
        let (work, layer) = self.conv2d_work(x, w, st, pad);
        self.timed_conv("conv2d", layer, work, || self.inner.conv2d(x, w, st, pad))
    }
    fn conv2d_bias_lrelu(
        &self,
        x: &B::Tensor,
        w: &B::Tensor,
        st: usize,
        pad: usize,
        bias: &B::Tensor,
    ) -> Result<B::Tensor> {
        let (work, layer) = self.conv2d_work(x, w, st, pad);
        self.timed_conv("conv2d_bias_lrelu", layer, work, || {
            self.inner.conv2d_bias_lrelu(x, w, st, pad, bias)
        })
    }
    fn conv2d_backward_input(
        &self,
        dy: &B::Tensor,
        w: &B::Tensor,
        st: usize,
        pad: usize,
        in_hw: (usize, usize),
    ) -> Result<B::Tensor> {
        let (ws, n) = (self.shape(w), self.shape(dy)[0]);
        let work = self.conv_flops(self.shape(dy), ws);
        let layer = layer_name(n, ws[1], in_hw, ws[0], ws[2], st);
        self.timed_conv("conv2d_backward_input", layer, work, || {
            self.inner.conv2d_backward_input(dy, w, st, pad, in_hw)
        })
    }
    fn conv2d_backward_weight(
        &self,
        x: &B::Tensor,
        dy: &B::Tensor,
        k: usize,
        st: usize,
        pad: usize,
    ) -> Result<B::Tensor> {
        let [n, cin, h, wd] = self.shape(x);
        let work = self.conv_flops(self.shape(dy), [0, cin, k, k]);
        let layer = layer_name(n, cin, (h, wd), self.shape(dy)[1], k, st);
        self.timed_conv("conv2d_backward_weight", layer, work, || {
            self.inner.conv2d_backward_weight(x, dy, k, st, pad)
        })
    }
    fn conv_transpose2d(&self, x: &B::Tensor, w: &B::Tensor, st: usize) -> Result<B::Tensor> {
        // The adjoint of a conv whose output is x: 2·|x|·Cout·k².
        let ws = self.shape(w);
        let work = self.conv_flops(self.shape(x), [0, ws[1], ws[2], ws[3]]);
        self.timed("conv_transpose2d", work, || {
            self.inner.conv_transpose2d(x, w, st)
        })
    }
    fn conv_transpose2d_backward_input(
        &self,
        dy: &B::Tensor,
        w: &B::Tensor,
        st: usize,
    ) -> Result<B::Tensor> {
        // It is conv2d(dy, w read as (Cin, Cout, k, k), stride st, padding 0).
        let ws = self.shape(w);
        let [n, _, h, wd] = self.shape(dy);
        let out = [
            n,
            ws[0],
            conv_out_len(h, ws[2], st, 0),
            conv_out_len(wd, ws[3], st, 0),
        ];
        let work = self.conv_flops(out, ws);
        self.timed("conv_transpose2d_backward_input", work, || {
            self.inner.conv_transpose2d_backward_input(dy, w, st)
        })
    }
    fn conv_transpose2d_backward_weight(
        &self,
        x: &B::Tensor,
        dy: &B::Tensor,
        k: usize,
        st: usize,
    ) -> Result<B::Tensor> {
        let cout = self.shape(dy)[1];
        let work = self.conv_flops(self.shape(x), [0, cout, k, k]);
        self.timed("conv_transpose2d_backward_weight", work, || {
            self.inner.conv_transpose2d_backward_weight(x, dy, k, st)
        })
    }

    fn blur(&self, b: &Blur, x: &B::Tensor) -> Result<B::Tensor> {
        self.timed("blur", self.bytes(&[x, x]), || self.inner.blur(b, x))
    }
    fn blur_backward(&self, b: &Blur, dy: &B::Tensor, in_hw: (usize, usize)) -> Result<B::Tensor> {
        let w = self.bytes(&[dy, dy]);
        self.timed("blur_backward", w, || {
            self.inner.blur_backward(b, dy, in_hw)
        })
    }
    fn fused_lrelu(&self, x: &mut B::Tensor, bias: &B::Tensor) -> Result<()> {
        let w = self.bytes(&[x, x]);
        self.timed("fused_lrelu", w, || self.inner.fused_lrelu(x, bias))
    }
    fn fused_lrelu_backward(
        &self,
        y: &B::Tensor,
        dy: &B::Tensor,
    ) -> Result<(B::Tensor, B::Tensor)> {
        let w = self.bytes(&[y, y, y, y]);
        self.timed("fused_lrelu_backward", w, || {
            self.inner.fused_lrelu_backward(y, dy)
        })
    }
    fn fused_lrelu_tangent(&self, y: &B::Tensor, t: &mut B::Tensor) -> Result<()> {
        let w = self.bytes(&[y, y, y]);
        self.timed("fused_lrelu_tangent", w, || {
            self.inner.fused_lrelu_tangent(y, t)
        })
    }
    fn add_bias(&self, x: &mut B::Tensor, bias: &B::Tensor) -> Result<()> {
        let w = self.bytes(&[x, x]);
        self.timed("add_bias", w, || self.inner.add_bias(x, bias))
    }
    fn bias_grad(&self, dy: &B::Tensor) -> Result<B::Tensor> {
        self.timed("bias_grad", self.bytes(&[dy]), || self.inner.bias_grad(dy))
    }
    fn demod(&self, w: &B::Tensor) -> Result<B::Tensor> {
        self.timed("demod", self.bytes(&[w, w]), || self.inner.demod(w))
    }
    fn demod_backward(&self, w: &B::Tensor, g: &B::Tensor) -> Result<B::Tensor> {
        let wk = self.bytes(&[w, g, w]);
        self.timed("demod_backward", wk, || self.inner.demod_backward(w, g))
    }
    fn noise(&self, x: &mut B::Tensor, w: &B::Tensor, n: &B::Tensor) -> Result<()> {
        let wk = self.bytes(&[x, x, n]);
        self.timed("noise", wk, || self.inner.noise(x, w, n))
    }
    fn noise_backward_weight(&self, dy: &B::Tensor, n: &B::Tensor) -> Result<B::Tensor> {
        let w = self.bytes(&[dy, n]);
        self.timed("noise_backward_weight", w, || {
            self.inner.noise_backward_weight(dy, n)
        })
    }
    fn residual(&self, a: &B::Tensor, b: &B::Tensor) -> Result<B::Tensor> {
        let w = self.bytes(&[b, b, b]);
        self.timed("residual", w, || self.inner.residual(a, b))
    }
    fn residual_backward(&self, dy: &mut B::Tensor) -> Result<()> {
        let w = self.bytes(&[dy, dy]);
        self.timed("residual_backward", w, || self.inner.residual_backward(dy))
    }
    fn relu(&self, x: &mut B::Tensor) -> Result<()> {
        let w = self.bytes(&[x, x]);
        self.timed("relu", w, || self.inner.relu(x))
    }
    fn relu_backward(&self, y: &B::Tensor, dy: &mut B::Tensor) -> Result<()> {
        let w = self.bytes(&[y, y, y]);
        self.timed("relu_backward", w, || self.inner.relu_backward(y, dy))
    }
    fn l2norm(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.timed("l2norm", self.bytes(&[x, x]), || self.inner.l2norm(x))
    }
    fn l2norm_backward(&self, x: &B::Tensor, dy: &B::Tensor) -> Result<B::Tensor> {
        let w = self.bytes(&[x, dy, x]);
        self.timed("l2norm_backward", w, || self.inner.l2norm_backward(x, dy))
    }

    fn patchnce(&self, q: &B::Tensor, k: &B::Tensor, tau: f64) -> Result<B::Tensor> {
        let w = self.bytes(&[q, k]);
        self.timed("patchnce", w, || self.inner.patchnce(q, k, tau))
    }
    fn patchnce_backward(
        &self,
        q: &B::Tensor,
        k: &B::Tensor,
        tau: f64,
        dloss: &B::Tensor,
    ) -> Result<B::Tensor> {
        let w = self.bytes(&[q, k, q]);
        self.timed("patchnce_backward", w, || {
            self.inner.patchnce_backward(q, k, tau, dloss)
        })
    }
    fn softplus_mean(&self, logits: &B::Tensor, negate: bool) -> Result<B::Tensor> {
        let w = self.bytes(&[logits]);
        self.timed("softplus_mean", w, || {
            self.inner.softplus_mean(logits, negate)
        })
    }
    fn softplus_mean_backward(&self, logits: &B::Tensor, negate: bool) -> Result<B::Tensor> {
        let w = self.bytes(&[logits, logits]);
        self.timed("softplus_mean_backward", w, || {
            self.inner.softplus_mean_backward(logits, negate)
        })
    }
    fn l1_mean(&self, a: &B::Tensor, b: &B::Tensor) -> Result<B::Tensor> {
        self.timed("l1_mean", self.bytes(&[a, b]), || self.inner.l1_mean(a, b))
    }
    fn l1_mean_backward(&self, a: &B::Tensor, b: &B::Tensor) -> Result<B::Tensor> {
        let w = self.bytes(&[a, b, a]);
        self.timed("l1_mean_backward", w, || self.inner.l1_mean_backward(a, b))
    }
    fn adam(
        &self,
        param: &mut B::Tensor,
        grad: &B::Tensor,
        exp_avg: &mut B::Tensor,
        exp_avg_sq: &mut B::Tensor,
        step: u64,
        lr: f64,
        cfg: &AdamConfig,
    ) -> Result<()> {
        // Reads param, grad and both moments; writes param and both moments.
        let w = self.bytes(&[grad, grad, grad, grad, grad, grad, grad]);
        self.timed("adam", w, || {
            self.inner
                .adam(param, grad, exp_avg, exp_avg_sq, step, lr, cfg)
        })
    }
    fn read(&self, t: &B::Tensor) -> Result<Vec<f64>> {
        self.timed("read (losses)", self.bytes(&[t]), || self.inner.read(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    #[test]
    fn profiled_engine_computes_the_same_and_counts_ops() {
        let e = CpuBackend::<f32>::new();
        let p = Profiled::new(&e);
        let x = Array4::from_shape_fn((2, 3, 5, 5), |(a, b, c, d)| (a + b * c) as f32 - d as f32);
        let w = Array4::from_shape_fn((4, 3, 3, 3), |(a, b, c, d)| {
            (a * b) as f32 * 0.1 - (c + d) as f32 * 0.05
        });
        assert_eq!(
            p.conv2d(&x, &w, 1, 1).unwrap(),
            e.conv2d(&x, &w, 1, 1).unwrap()
        );
        assert_eq!(p.scale(&x, 0.5).unwrap(), e.scale(&x, 0.5).unwrap());
        let t = p.table();
        assert!(
            t.contains("conv2d") && t.contains("TFLOP/s") && t.contains("scale"),
            "{t}"
        );
        let stats = p.stats.borrow();
        assert_eq!(stats["conv2d"].calls, 1);
        // 2·(2·4·5·5 outputs)·(3·3·3) multiply-adds.
        assert_eq!(stats["conv2d"].flops, 2.0 * 200.0 * 27.0);
        drop(stats);
        // The per-layer table has the same call under its layer, and the same work.
        p.conv2d_backward_weight(&x, &p.conv2d(&x, &w, 2, 1).unwrap(), 3, 2, 1)
            .unwrap();
        let layers = p.conv_layers.borrow();
        let fwd = &layers[&("conv2d", "2×3×5×5 → 4, k3 s1".to_string())];
        assert_eq!((fwd.calls, fwd.flops), (1, 2.0 * 200.0 * 27.0));
        assert_eq!(
            layers[&("conv2d", "2×3×5×5 → 4, k3 s2".to_string())].calls,
            1
        );
        // Weight gradient of a stride-2 conv: 2·(2·4·3·3 outputs)·(3·3·3).
        let bw = &layers[&("conv2d_backward_weight", "2×3×5×5 → 4, k3 s2".to_string())];
        assert_eq!(bw.flops, 2.0 * 72.0 * 27.0);
        let t = p.conv_table(10);
        assert!(t.contains("2×3×5×5 → 4, k3 s2"), "{t}");
    }
}
