//! Adam exactly as PyTorch's (no weight decay, no amsgrad), official SinCUT β = (0, 0.99).

use crate::tensor::{Real, c};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// One update of `param` in place. `step` is the 1-based step count of this update.
pub fn adam_update<T: Real>(
    param: &mut [T],
    grad: &[T],
    exp_avg: &mut [T],
    exp_avg_sq: &mut [T],
    step: u64,
    lr: f64,
    cfg: &AdamConfig,
) {
    let n = param.len();
    assert!(
        grad.len() == n && exp_avg.len() == n && exp_avg_sq.len() == n,
        "adam_update: lengths"
    );
    assert!(step >= 1, "adam_update: step is 1-based");
    // Python-side scalars (f64), as torch.optim.Adam's _single_tensor_adam computes them.
    let bias_correction1 = 1.0 - cfg.beta1.powf(step as f64);
    let bias_correction2 = 1.0 - cfg.beta2.powf(step as f64);
    let step_size = lr / bias_correction1;
    let bc2_sqrt: T = c(bias_correction2.sqrt());
    let weight: T = c(1.0 - cfg.beta1);
    let beta2: T = c(cfg.beta2);
    let one_m_beta2: T = c(1.0 - cfg.beta2);
    let eps: T = c(cfg.eps);
    let neg_step: T = c(-step_size);
    let half: T = c(0.5);
    let one = T::one();
    for i in 0..n {
        let g = grad[i];
        // exp_avg.lerp_(grad, 1 − β1), with ATen's two-branch lerp (exactly g when β1 = 0).
        let m0 = exp_avg[i];
        let m = if weight.abs() < half {
            m0 + weight * (g - m0)
        } else {
            g - (g - m0) * (one - weight)
        };
        exp_avg[i] = m;
        // exp_avg_sq.mul_(β2).addcmul_(g, g, value = 1 − β2).
        let v = exp_avg_sq[i] * beta2 + one_m_beta2 * g * g;
        exp_avg_sq[i] = v;
        // denom = (v.sqrt() / √bc2).add_(eps); param.addcdiv_(m, denom, value = −step_size),
        // in the order of PyTorch's CPU kernel (the fixtures' device): p + (value·m)/denom.
        let denom = v.sqrt() / bc2_sqrt + eps;
        param[i] = param[i] + (neg_step * m) / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps on three scalars; expectations worked out in f64 from the textbook Adam update
    /// m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², p −= lr/(1−β1ᵗ)·m/(√v/√(1−β2ᵗ) + ε).
    fn two_steps(cfg: AdamConfig, lr: f64, expect: [[f64; 3]; 2]) {
        let grads = [[0.5, -2.0, 1e-3], [-0.25, 0.75, 0.0]];
        let mut p = vec![1.0f64, -0.5, 2.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        let mut p32 = vec![1.0f32, -0.5, 2.0];
        let (mut m32, mut v32) = (vec![0.0f32; 3], vec![0.0f32; 3]);
        for (t, g) in grads.iter().enumerate() {
            adam_update(&mut p, g, &mut m, &mut v, t as u64 + 1, lr, &cfg);
            let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
            adam_update(&mut p32, &g32, &mut m32, &mut v32, t as u64 + 1, lr, &cfg);
            for i in 0..3 {
                let e = expect[t][i];
                assert!(
                    (p[i] - e).abs() < 1e-13,
                    "f64 step {} [{i}]: {} vs {e}",
                    t + 1,
                    p[i]
                );
                assert!(
                    (p32[i] as f64 - e).abs() < 1e-6,
                    "f32 step {} [{i}]: {} vs {e}",
                    t + 1,
                    p32[i]
                );
            }
        }
    }

    #[test]
    fn two_steps_default_betas() {
        let cfg = AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        // Step 1 by hand: m = 0.05, v = 2.5e-4, lr/bc1 = 1, denom = 0.5 + 1e-8 → p = 0.900000002.
        two_steps(
            cfg,
            0.1,
            [
                [0.900000002, -0.4000000005, 1.90000099999],
                [0.8733662987078463, -0.3634042116845332, 1.832996122405518],
            ],
        );
    }

    #[test]
    fn two_steps_sincut_betas() {
        let cfg = AdamConfig {
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
        };
        two_steps(
            cfg,
            0.002,
            [
                [0.99800000004, -0.49800000001, 1.9980000199998],
                [0.9992668222960231, -0.49899501244113287, 1.9980000199998],
            ],
        );
    }

    #[test]
    fn beta1_zero_keeps_grad_exactly() {
        let cfg = AdamConfig {
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
        };
        let g = [0.1f32, -3.7, 1e-20];
        let mut p = [0.0f32; 3];
        let mut m = [5.0f32, -1.0, 2.0];
        let mut v = [0.0f32; 3];
        adam_update(&mut p, &g, &mut m, &mut v, 3, 1e-3, &cfg);
        assert_eq!(m, g);
    }
}
