//! The C allocator's settings for training and prediction.
//!
//! libtorch takes its tensors from the C allocator (glibc's `malloc`). glibc serves every block
//! above a threshold (at most 32 MiB) with a fresh `mmap` and returns it with `munmap` when freed, so
//! a ResNet50 step at batch 32, whose activations are 10-100 MiB each, maps and faults in gigabytes
//! of new pages on every step, and gives them back a moment later. Measured with `conceptree-bench
//! train` (5 steps, channels-last): 6.3 million page faults and 31 s of kernel time against 71 s of
//! user time. Serving those blocks from the heap instead (no `mmap` for single blocks, no trimming)
//! lets each step reuse the previous step's memory: 1.2 million faults, 8 s in the kernel, for a
//! higher peak RSS (freed memory stays with the process until it ends). See BENCHMARKS.md.
//!
//! Prediction with a large trunk gains the same way (ResNet50 at 224 px, batch 64: 2.8 million
//! faults down to 0.4 million, 41 s to 29 s for 128 images), for a higher peak RSS that does not
//! grow with the number of images.
//!
//! It acts on the main arena, that is on blocks the main thread allocates: the trainer's forward
//! and backward passes and `predict`'s forward pass run there. glibc gives other threads arenas of
//! their own, which map blocks above 64 MiB whatever this says. The trainer and `predict` ask for
//! this; it is process-wide and set once.

/// Whether the environment sets glibc's allocator (`GLIBC_TUNABLES`, or a `MALLOC_*_` variable):
/// an explicit setting from the user wins, and [`keep_freed_memory`] leaves it alone.
pub fn left_to_the_user() -> bool {
    std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k == "GLIBC_TUNABLES" || (k.starts_with("MALLOC_") && k.ends_with('_'))
    })
}

/// Keep freed memory for reuse instead of returning it to the system (glibc only; elsewhere nothing).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc <malloc.h>
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_MAX: i32 = -4;
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            if !left_to_the_user() {
                // SAFETY: mallopt only changes glibc's allocation policy; it is thread-safe
                unsafe {
                    mallopt(M_MMAP_MAX, 0);
                    mallopt(M_TRIM_THRESHOLD, i32::MAX);
                }
            }
        });
    }
}
