//! Adam with parameter groups and a checkpointable state.
//!
//! The update is PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad), step for step:
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g²`, `p -= lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
//! It is written here rather than taken from libtorch's C++ optimizer so that its moments can be
//! saved in a checkpoint and restored exactly (`--resume`), which libtorch's C API does not expose.
use std::collections::HashMap;

use tch::{Kind, Tensor};

/// One parameter under optimisation.
struct Slot {
    name: String,
    param: Tensor,
    group: usize,
    m: Tensor,
    v: Tensor,
    step: i64,
}

/// Adam over named parameters in learning-rate groups.
pub struct Adam {
    slots: Vec<Slot>,
    lrs: Vec<f64>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Adam {
    /// `groups[g]` = (named parameters, learning rate). Parameters get `requires_grad` set.
    pub fn new(groups: Vec<(Vec<(String, Tensor)>, f64)>) -> Adam {
        let mut slots = Vec::new();
        let mut lrs = Vec::new();
        for (g, (params, lr)) in groups.into_iter().enumerate() {
            lrs.push(lr);
            for (name, p) in params {
                let m = tch::no_grad(|| p.zeros_like());
                let v = tch::no_grad(|| p.zeros_like());
                slots.push(Slot { name, param: p, group: g, m, v, step: 0 });
            }
        }
        Adam { slots, lrs, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Number of scalar parameters under optimisation.
    pub fn numel(&self) -> i64 {
        self.slots.iter().map(|s| s.param.numel() as i64).sum()
    }

    /// Names of the parameters under optimisation.
    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Reset the gradients of the optimised parameters.
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                s.step += 1;
                let t = s.step as i32;
                let lr = self.lrs[s.group];
                // In place, as torch's single-tensor Adam: m.lerp_(g, 1-b1), v.lerp_(g², 1-b2),
                // p.addcdiv_(m, sqrt(v)/sqrt(bc2) + eps, value = -lr/bc1). Few passes, few temporaries.
                let _ = s.m.lerp_(&g, 1.0 - b1);
                let _ = s.v.lerp_(&(&g * &g), 1.0 - b2);
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let mut denom = s.v.sqrt();
                let _ = denom.g_div_scalar_(bc2.sqrt());
                let _ = denom.g_add_scalar_(eps);
                let _ = s.param.addcdiv_(&(&s.m * (-lr / bc1)), &denom);
            }
        });
    }

    /// Optimizer state as named tensors (`adam.m.<param>`, `adam.v.<param>`, `adam.step.<param>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for s in &self.slots {
            out.push((format!("adam.m.{}", s.name), s.m.shallow_clone()));
            out.push((format!("adam.v.{}", s.name), s.v.shallow_clone()));
            out.push((format!("adam.step.{}", s.name), Tensor::from(s.step)));
        }
        out
    }

    /// Restore state saved by [`Adam::state`]; every optimised parameter must be present.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<(), String> {
        for s in &mut self.slots {
            let get = |k: String| state.get(&k).ok_or_else(|| format!("optimizer state lacks '{k}'"));
            let m = get(format!("adam.m.{}", s.name))?;
            let v = get(format!("adam.v.{}", s.name))?;
            let step = get(format!("adam.step.{}", s.name))?;
            if m.size() != s.param.size() || v.size() != s.param.size() {
                return Err(format!("optimizer state for '{}' has the wrong shape", s.name));
            }
            tch::no_grad(|| {
                s.m.copy_(&m.to_kind(Kind::Float).to_device(s.m.device()));
                s.v.copy_(&v.to_kind(Kind::Float).to_device(s.v.device()));
            });
            s.step = step.int64_value(&[]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn matches_pytorch_adam_on_a_hand_checked_case() {
        // torch: p = tensor([1., -2.], requires_grad=True); opt = Adam([p], lr=0.1)
        // for _ in range(2): opt.zero_grad(); (p**2).sum().backward(); opt.step()
        // -> after step 1: [0.9, -1.9] (m̂/sqrt(v̂) = ±1 exactly);
        //    step 2 by hand for p[0]: g=1.8, m=0.36, v=0.007236, m̂=0.36/0.19=1.894737,
        //    v̂=0.007236/0.001999=3.619810, p = 0.9 - 0.1*1.894737/1.902580 = 0.800412;
        //    for p[1]: g=-3.8, m=-0.74, v=0.030424 -> p = -1.9 + 0.1*3.894737/3.901232 = -1.800166.
        let p = Tensor::from_slice(&[1f32, -2.0]).set_requires_grad(true);
        let mut opt = Adam::new(vec![(vec![("p".into(), p.shallow_clone())], 0.1)]);
        for want in [[0.9f32, -1.9], [0.800412, -1.800166]] {
            opt.zero_grad();
            let loss = (&p * &p).sum(Kind::Float);
            loss.backward();
            opt.step();
            let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
            assert!((got[0] - want[0]).abs() < 1e-5 && (got[1] - want[1]).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let run = |split: bool| -> Vec<f32> {
            tch::manual_seed(0);
            let p = Tensor::randn([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
            let mut opt = Adam::new(vec![(vec![("p".into(), p.shallow_clone())], 0.05)]);
            let target = Tensor::from_slice(&[0.3f32, -0.1, 0.7]);
            for i in 0..6 {
                if split && i == 3 {
                    let st: HashMap<String, Tensor> = opt.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
                    opt = Adam::new(vec![(vec![("p".into(), p.shallow_clone())], 0.05)]);
                    opt.load_state(&st).unwrap();
                }
                opt.zero_grad();
                (&p - &target).square().sum(Kind::Float).backward();
                opt.step();
            }
            Vec::try_from(&p.detach()).unwrap()
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn parameters_without_gradient_do_not_move() {
        let a = Tensor::from_slice(&[1f32]).set_requires_grad(true);
        let b = Tensor::from_slice(&[5f32]).set_requires_grad(true);
        let mut opt = Adam::new(vec![(vec![("a".into(), a.shallow_clone()), ("b".into(), b.shallow_clone())], 0.1)]);
        opt.zero_grad();
        (&a * 2.0).sum(Kind::Float).backward();
        opt.step();
        assert_eq!(f32::try_from(&b.detach()).unwrap(), 5.0);
        assert!(f32::try_from(&a.detach()).unwrap() < 1.0);
    }
}
