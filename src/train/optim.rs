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
    /// Its learning rate; `None`: frozen (no update, its moments kept as they are).
    lr: Option<f64>,
    m: Tensor,
    v: Tensor,
    step: i64,
}

/// Adam over named parameters, each with its learning rate (or frozen).
pub struct Adam {
    slots: Vec<Slot>,
    /// One scratch buffer per device, as large as the largest parameter: the step's temporaries
    /// (g², then the denominator) live in it instead of fresh allocations, which on CPU cost a
    /// page fault per 4 KiB of every large parameter, every step.
    scratch: Vec<Tensor>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Adam {
    /// `groups[g]` = (named parameters, learning rate). Parameters get `requires_grad` set.
    pub fn new(groups: Vec<(Vec<(String, Tensor)>, f64)>) -> Adam {
        let mut slots = Vec::new();
        for (params, lr) in groups {
            for (name, p) in params {
                let m = tch::no_grad(|| p.zeros_like());
                let v = tch::no_grad(|| p.zeros_like());
                slots.push(Slot { name, param: p, lr: Some(lr), m, v, step: 0 });
            }
        }
        let mut scratch: Vec<Tensor> = Vec::new();
        for s in &slots {
            let (d, n) = (s.param.device(), s.param.numel() as i64);
            match scratch.iter_mut().find(|t| t.device() == d) {
                Some(t) if t.numel() as i64 >= n => {}
                Some(t) => *t = Tensor::empty([n], (Kind::Float, d)),
                None => scratch.push(Tensor::empty([n], (Kind::Float, d))),
            }
        }
        Adam { slots, scratch, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Give each parameter the learning rate `lr_of(name)`, or freeze it (`None`). The moments
    /// and step counts stay: an optimizer reconfigured this way carries its state across stages.
    pub(crate) fn configure(&mut self, lr_of: impl Fn(&str) -> Option<f64>) {
        for s in &mut self.slots {
            s.lr = lr_of(&s.name);
        }
    }

    /// Number of scalar parameters being optimised (frozen ones not counted).
    pub fn numel(&self) -> i64 {
        self.slots.iter().filter(|s| s.lr.is_some()).map(|s| s.param.numel() as i64).sum()
    }

    /// Names of the parameters under optimisation.
    pub fn names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.name.as_str()).collect()
    }

    /// Reset the gradients of the optimised parameters.
    pub(crate) fn zero_grad(&mut self) {
        for s in self.slots.iter_mut().filter(|s| s.lr.is_some()) {
            let mut g = s.param.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// The defined gradients of the optimised parameters (shallow handles: changing them changes the grads).
    pub(crate) fn grads(&self) -> Vec<Tensor> {
        self.slots.iter().filter(|s| s.lr.is_some()).map(|s| s.param.grad()).filter(|g| g.defined()).collect()
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            for s in &mut self.slots {
                let Some(lr) = s.lr else { continue };
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                s.step += 1;
                let t = s.step as i32;
                // In place, as torch's single-tensor Adam: m.lerp_(g, 1-b1), v.lerp_(g², 1-b2),
                // p.addcdiv_(m, sqrt(v)/sqrt(bc2) + eps, value = -lr/bc1); tch's addcdiv_ has no
                // `value`, so it is folded into the denominator. No allocation: the temporaries
                // are a view of the scratch buffer with the parameter's shape and strides.
                let flat = self.scratch.iter().find(|t| t.device() == g.device()).expect("a scratch buffer per device");
                let mut tmp = flat.as_strided(s.param.size(), s.param.stride(), 0);
                let _ = s.m.lerp_(&g, 1.0 - b1);
                let _ = g.mul_out(&tmp, &g);
                let _ = s.v.lerp_(&tmp, 1.0 - b2);
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let _ = s.v.sqrt_out(&tmp);
                let _ = tmp.g_div_scalar_(bc2.sqrt());
                let _ = tmp.g_add_scalar_(eps);
                let _ = tmp.g_mul_scalar_(-bc1 / lr);
                let _ = s.param.addcdiv_(&s.m, &tmp);
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
    pub(crate) fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<(), String> {
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

/// Dynamic loss scaling for fp16 mixed precision, with `torch.amp.GradScaler`'s defaults and rules.
///
/// fp16 gradients of small losses underflow to zero; the loss is multiplied by `scale` before
/// `backward`, the gradients divided by it before the optimizer step. A step whose gradients hold
/// an inf or NaN is skipped and the scale halved; after `growth_interval` good steps in a row the
/// scale doubles.
#[derive(Debug, Clone, PartialEq)]
pub struct GradScaler {
    pub scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: u32,
    /// Good steps since the scale last changed.
    pub good_steps: u32,
    /// Steps skipped because of non-finite gradients (reported per epoch).
    pub skipped: u64,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000, good_steps: 0, skipped: 0 }
    }
}

impl GradScaler {
    /// The loss to call `backward` on.
    pub(crate) fn scale(&self, loss: &Tensor) -> Tensor {
        loss * self.scale
    }

    /// Divide the gradients of `opt`'s parameters by the scale, in place. Returns a 0-d bool tensor
    /// on their device, true when every gradient is finite (read it back once, with the loss).
    ///
    /// A gradient's sum is non-finite when any element is inf or NaN (or when finite elements sum
    /// past f32's range, which is treated the same way: the step is skipped).
    pub(crate) fn unscale_(&self, opt: &Adam) -> Tensor {
        let inv = 1.0 / self.scale;
        tch::no_grad(|| {
            let sums: Vec<Tensor> = opt
                .grads()
                .into_iter()
                .map(|mut g| {
                    let _ = g.g_mul_scalar_(inv);
                    g.sum(Kind::Float)
                })
                .collect();
            if sums.is_empty() {
                return Tensor::from(true);
            }
            Tensor::stack(&sums, 0).sum(Kind::Float).isfinite()
        })
    }

    /// Adjust the scale after a step: back off (and count a skipped step) when the gradients were
    /// not finite, grow after `growth_interval` good steps.
    pub fn update(&mut self, grads_finite: bool) {
        if grads_finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= self.growth_factor;
                self.good_steps = 0;
            }
        } else {
            self.scale *= self.backoff_factor;
            self.good_steps = 0;
            self.skipped += 1;
        }
    }

    /// State for a checkpoint (`amp.scale`, `amp.good_steps`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        vec![("amp.scale".into(), Tensor::from(self.scale)), ("amp.good_steps".into(), Tensor::from(self.good_steps as i64))]
    }

    /// Restore [`GradScaler::state`]; a checkpoint written without mixed precision leaves the defaults.
    pub(crate) fn load_state(&mut self, state: &HashMap<String, Tensor>) {
        if let (Some(s), Some(g)) = (state.get("amp.scale"), state.get("amp.good_steps")) {
            self.scale = s.double_value(&[]);
            self.good_steps = g.int64_value(&[]) as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reconfiguring_keeps_the_state_and_frozen_parameters_stay() {
        // two parameters; stage 1 trains only a, stage 2 both: a's moments and step count carry
        // over (its third update equals three uninterrupted ones), b starts at step 1
        let a = Tensor::from_slice(&[1f32]).set_requires_grad(true);
        let b = Tensor::from_slice(&[2f32]).set_requires_grad(true);
        let mut opt = Adam::new(vec![(vec![("a".into(), a.shallow_clone()), ("b".into(), b.shallow_clone())], 0.1)]);
        opt.configure(|n| (n == "a").then_some(0.1));
        assert_eq!(opt.numel(), 1);
        let step = |opt: &mut Adam| {
            opt.zero_grad();
            ((&a * &a) + (&b * &b)).sum(Kind::Float).backward();
            opt.step();
        };
        step(&mut opt);
        step(&mut opt);
        assert_eq!(f32::try_from(&b.detach()).unwrap(), 2.0, "frozen in stage 1");
        opt.configure(|_| Some(0.1));
        step(&mut opt);
        let steps: HashMap<String, i64> = opt.state().into_iter().filter(|(k, _)| k.starts_with("adam.step.")).map(|(k, t)| (k, t.int64_value(&[]))).collect();
        assert_eq!((steps["adam.step.a"], steps["adam.step.b"]), (3, 1));
        // the same three steps of a alone, uninterrupted
        let a2 = Tensor::from_slice(&[1f32]).set_requires_grad(true);
        let mut alone = Adam::new(vec![(vec![("a".into(), a2.shallow_clone())], 0.1)]);
        for _ in 0..3 {
            alone.zero_grad();
            (&a2 * &a2).sum(Kind::Float).backward();
            alone.step();
        }
        assert_eq!(f32::try_from(&a.detach()).unwrap(), f32::try_from(&a2.detach()).unwrap());
        // b's first update is Adam's first: -lr * sign(g) = 2 - 0.1
        assert!((f32::try_from(&b.detach()).unwrap() - 1.9).abs() < 1e-6);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let run = |split: bool| -> Vec<f32> {
            let p = Tensor::from_slice(&[1.2f32, -0.4, 0.05]).set_requires_grad(true);
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

    /// One scaled step on `p` with loss `f(p)`: returns (grads finite, p after).
    fn scaled_step(scaler: &mut GradScaler, opt: &mut Adam, loss: Tensor) -> bool {
        opt.zero_grad();
        scaler.scale(&loss).backward();
        let finite = bool::try_from(scaler.unscale_(opt)).unwrap();
        if finite {
            opt.step();
        }
        scaler.update(finite);
        finite
    }

    #[test]
    fn grad_scaler_unscales_exactly_and_steps_like_plain_adam() {
        // Powers of two scale and unscale exactly, so the scaled run equals the plain one bit for bit.
        let run = |scaled: bool| -> (Vec<f32>, Vec<f32>) {
            let p = Tensor::from_slice(&[1f32, -2.0, 0.5]).set_requires_grad(true);
            let mut opt = Adam::new(vec![(vec![("p".into(), p.shallow_clone())], 0.1)]);
            let mut scaler = GradScaler::default();
            let mut grads = Vec::new();
            for _ in 0..3 {
                let loss = (&p * &p * 3.0).sum(Kind::Float);
                if scaled {
                    assert!(scaled_step(&mut scaler, &mut opt, loss));
                } else {
                    opt.zero_grad();
                    loss.backward();
                    opt.step();
                }
                grads = Vec::try_from(&p.grad()).unwrap();
            }
            (Vec::try_from(&p.detach()).unwrap(), grads)
        };
        let (p_plain, g_plain) = run(false);
        let (p_scaled, g_scaled) = run(true);
        assert_eq!(p_plain, p_scaled);
        assert_eq!(g_plain, g_scaled, "gradients after unscale_ are the true gradients");
    }

    #[test]
    fn grad_scaler_skips_non_finite_steps_and_backs_off() {
        let p = Tensor::from_slice(&[1f32, 2.0]).set_requires_grad(true);
        let mut opt = Adam::new(vec![(vec![("p".into(), p.shallow_clone())], 0.1)]);
        let mut scaler = GradScaler { growth_interval: 2, ..Default::default() };
        // inf gradient: step skipped, parameters and moments untouched, scale halved
        let inf = Tensor::from_slice(&[f32::INFINITY, 1.0]);
        assert!(!scaled_step(&mut scaler, &mut opt, (&p * &inf).sum(Kind::Float)));
        assert_eq!(Vec::<f32>::try_from(&p.detach()).unwrap(), vec![1.0, 2.0]);
        assert_eq!((scaler.scale, scaler.skipped, scaler.good_steps), (32768.0, 1, 0));
        // NaN gradient: the same
        let nan = Tensor::from_slice(&[f32::NAN, 1.0]);
        assert!(!scaled_step(&mut scaler, &mut opt, (&p * &nan).sum(Kind::Float)));
        assert_eq!((scaler.scale, scaler.skipped), (16384.0, 2));
        // a gradient that overflows only once scaled (1e35 * 16384 > f32::MAX): skipped, then fine at a lower scale
        let big = Tensor::from_slice(&[1e35f32, 0.0]);
        assert!(!scaled_step(&mut scaler, &mut opt, (&p * &big).sum(Kind::Float)));
        scaler.scale = 1.0;
        assert!(scaled_step(&mut scaler, &mut opt, (&p * &big).sum(Kind::Float)));
        // two good steps in a row double the scale
        assert!(scaled_step(&mut scaler, &mut opt, p.square().sum(Kind::Float)));
        assert_eq!((scaler.scale, scaler.good_steps), (2.0, 0));
        // state round trip
        let st: HashMap<String, Tensor> = scaler.state().into_iter().collect();
        let mut back = GradScaler::default();
        back.load_state(&st);
        assert_eq!((back.scale, back.good_steps), (scaler.scale, scaler.good_steps));
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
