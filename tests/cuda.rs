//! libtorch's CUDA library is loaded on demand (src/cuda.rs). Its own main (`harness = false`):
//! the check needs the process's first libtorch call to come after `cuda::load`, which libtest's
//! other tests and threads would not guarantee.
use conceptree::cuda::{self, CudaLib};
use tch::{Device, Kind, Tensor};

fn main() {
    // the test binary links libtorch_cpu only; nothing has mapped the CUDA library yet
    assert!(!cuda::is_mapped(), "libtorch_cuda.so is mapped before cuda::load");
    let wheel_has_cuda = cuda::library_path().is_some();
    let lib = cuda::load();
    println!("libtorch_cuda: {lib}");
    match lib {
        CudaLib::Loaded(p) => {
            assert!(wheel_has_cuda && p.ends_with("libtorch_cuda.so"), "{p:?}");
            assert!(cuda::is_mapped(), "loaded, yet not in /proc/self/maps");
            // libtorch's CUDA hooks are the real ones (the stub it falls back to, and keeps, when
            // asked before the load throws "Cannot query CUDA version without ATen_cuda library")
            let cudart = tch::utils::version_cudart();
            assert!(cudart > 0, "CUDA runtime version {cudart}");
            println!("CUDA runtime {cudart}");
            // and its kernels are registered: a CUDA tensor is made, or refused for want of a driver
            // or device, never for want of a CUDA backend. Without the load libtorch says "Could not
            // run 'aten::empty.memory_format' with arguments from the 'CUDA' backend".
            match Tensor::f_zeros([1], (Kind::Float, Device::Cuda(0))) {
                Ok(t) => assert_eq!(t.device(), Device::Cuda(0)),
                Err(e) => {
                    let e = e.to_string();
                    assert!(!e.contains("from the 'CUDA' backend") && !e.contains("not linked with support"), "CUDA backend missing after load: {e}");
                    println!("no CUDA device here: {}", e.lines().next().unwrap_or(""));
                }
            }
        }
        CudaLib::CpuOnly => assert!(!wheel_has_cuda, "the wheel has libtorch_cuda.so, yet load found none"),
        CudaLib::Failed(m) => panic!("libtorch_cuda.so could not be loaded: {m}"),
    }
    // the second call returns the first result and loads nothing more
    assert_eq!(cuda::load(), lib);
    println!("test cuda ... ok");
}
