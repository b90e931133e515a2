//! Mixed precision: CUDA autocast (fp16, through tch) and CPU autocast (bf16, through libtorch).
//!
//! tch 0.24 only switches CUDA autocast (`tch::autocast`). libtorch's CPU autocast runs
//! convolutions and matrix products in bfloat16, which CPUs with AMX or AVX-512-BF16 execute
//! several times faster than fp32 (ResNet50 training 2.4x on the development machine, see
//! BENCHMARKS.md); on CPUs without bf16 instructions it can be slower, which is why it is opt-in
//! (`--amp`). The switches are libtorch's own C++ functions in `libtorch_cpu` (declared in
//! `ATen/autocast_mode.h`), called here by their C++ symbol names since tch has no binding:
//! both arguments are one-byte scalars (`c10::DeviceType` is an `int8_t` enum, then `bool`), so
//! the C calling convention is the C++ one. A wrong name fails at link time, not at run time.
use tch::Device;

/// `c10::DeviceType::CPU`.
const CPU: i8 = 0;

#[link(name = "torch_cpu")]
extern "C" {
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn is_autocast_enabled(device_type: i8) -> bool;
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn set_autocast_enabled(device_type: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast17increment_nestingEv"]
    fn increment_nesting() -> i32;
    #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
    fn decrement_nesting() -> i32;
    #[link_name = "_ZN2at8autocast11clear_cacheEv"]
    fn clear_cache();
}

/// Restores CPU autocast to its previous state when dropped (also when `f` panics).
struct CpuAutocast {
    previous: bool,
}

impl CpuAutocast {
    fn enter() -> CpuAutocast {
        // SAFETY: plain libtorch calls with scalar arguments; they touch thread-local state only.
        unsafe {
            let previous = is_autocast_enabled(CPU);
            set_autocast_enabled(CPU, true);
            increment_nesting();
            CpuAutocast { previous }
        }
    }
}

impl Drop for CpuAutocast {
    fn drop(&mut self) {
        // SAFETY: as in `enter`. The weight-cast cache is cleared when the outermost region ends,
        // as torch.autocast does.
        unsafe {
            if decrement_nesting() == 0 {
                clear_cache();
            }
            set_autocast_enabled(CPU, self.previous);
        }
    }
}

/// Whether CPU autocast is on for this thread.
pub fn cpu_autocast_enabled() -> bool {
    // SAFETY: see `CpuAutocast::enter`.
    unsafe { is_autocast_enabled(CPU) }
}

/// How a run computes: "fp32", or mixed precision as [`autocast`] and the trainer do it.
pub fn precision_label(device: Device, amp: bool) -> &'static str {
    match (amp, device.is_cuda()) {
        (false, _) => "fp32",
        (true, true) => "mixed fp16 (dynamic loss scaling)",
        (true, false) => "mixed bf16",
    }
}

/// Run `f` under autocast for `device` when `enabled`: fp16 on CUDA, bf16 on CPU.
pub fn autocast<T>(device: Device, enabled: bool, f: impl FnOnce() -> T) -> T {
    if !enabled {
        return f();
    }
    if device.is_cuda() {
        return tch::autocast(true, f);
    }
    let _guard = CpuAutocast::enter();
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn cpu_autocast_runs_convolutions_in_bf16_and_restores_the_state() {
        let x = Tensor::randn([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let conv = || x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert!(!cpu_autocast_enabled());
        let y = autocast(Device::Cpu, true, || {
            assert!(cpu_autocast_enabled());
            // nested regions keep it on
            let inner = autocast(Device::Cpu, true, conv);
            assert!(cpu_autocast_enabled());
            inner
        });
        assert_eq!(y.kind(), Kind::BFloat16);
        assert!(!cpu_autocast_enabled(), "switched off again after the region");
        let full = conv();
        assert_eq!(full.kind(), Kind::Float);
        // the same convolution, to bf16 precision (8 bits of mantissa)
        let err = f64::try_from((y.to_kind(Kind::Float) - &full).abs().max()).unwrap();
        let scale = f64::try_from(full.abs().max()).unwrap();
        assert!(err <= 0.02 * scale, "bf16 error {err} vs magnitude {scale}");
        assert_eq!(autocast(Device::Cpu, false, conv).kind(), Kind::Float);
    }

    #[test]
    fn cpu_autocast_is_restored_after_a_panic() {
        let r = std::panic::catch_unwind(|| autocast(Device::Cpu, true, || panic!("inside")));
        assert!(r.is_err());
        assert!(!cpu_autocast_enabled());
    }
}
