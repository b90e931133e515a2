//! libtorch's CUDA library, loaded when a command may use a device rather than at start-up.
//!
//! The PyPI wheel's `libtorch_cuda.so` brings cuBLAS, cuBLASLt, cuDNN, NCCL, nvJitLink and more;
//! mapping and relocating them costs about 230 MiB of resident memory before `main` runs
//! (`libtorch_cpu.so` alone: ~110 MiB). Commands that never run a model (`data stats`, `data
//! ceiling`, `evaluate`, `ontology ...`) should not pay that, so the binary is not linked against
//! it (build.rs) and [`load`] opens it with `dlopen(RTLD_NOW | RTLD_GLOBAL)`: its static
//! initialisers register the CUDA hooks with `libtorch_cpu`, exactly as when it is linked.
//!
//! **Order matters.** libtorch asks for its CUDA hooks once and keeps the answer
//! (`at::detail::getCUDAHooks` holds them in a function-local static), and some CPU calls ask too
//! (`manual_seed`, `Cuda::is_available`, device guards). So [`load`] must run before the first
//! libtorch call of a process that may use CUDA: `main` calls it first for every command that may
//! (all but the light ones listed there), `conceptree-bench` at its start, and
//! [`crate::train::DeviceChoice::resolve`] as a backstop for library users.
//!
//! A CPU-only libtorch has no `libtorch_cuda.so`; then [`load`] reports that and nothing changes.
use std::path::PathBuf;
use std::sync::OnceLock;

/// What [`load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaLib {
    /// `libtorch_cuda.so` is loaded (from this path).
    Loaded(PathBuf),
    /// libtorch has no CUDA library (a CPU-only build): nothing to load.
    CpuOnly,
    /// The library is there but could not be loaded (the loader's message).
    Failed(String),
}

/// The directory of the `libtorch_cpu.so` this process has loaded (from `/proc/self/maps`), else
/// the one the build found libtorch in (recorded by build.rs). The first matters when the binary
/// runs on another machine with `LD_LIBRARY_PATH` pointing at that machine's libtorch.
pub(crate) fn libtorch_dir() -> Option<PathBuf> {
    let loaded = mapped_library("libtorch_cpu.so").and_then(|p| p.parent().map(PathBuf::from));
    loaded.or_else(|| option_env!("CONCEPTREE_LIBTORCH_DIR").map(PathBuf::from))
}

/// The `libtorch_cuda.so` beside the loaded `libtorch_cpu.so` ([`libtorch_dir`]), where there is one
/// (a CPU-only libtorch has none).
pub fn library_path() -> Option<PathBuf> {
    libtorch_dir().map(|d| d.join("libtorch_cuda.so")).filter(|p| p.exists())
}

/// The path of the file named `name` this process has mapped (from `/proc/self/maps`; `None`
/// where it is not mapped or that cannot be read).
fn mapped_library(name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let suffix = format!("/{name}");
    let path = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with(&suffix))?;
    Some(PathBuf::from(path))
}

/// Load `libtorch_cuda.so` (the one beside the loaded `libtorch_cpu.so`) once per process; later
/// calls return the first result. Call it before any other libtorch call in a process that may
/// use CUDA; see the module notes.
pub fn load() -> &'static CudaLib {
    static LIB: OnceLock<CudaLib> = OnceLock::new();
    LIB.get_or_init(|| {
        library_path().map_or(CudaLib::CpuOnly, |path| open(&path))
    })
}

/// Whether this process has `libtorch_cuda.so` mapped (from `/proc/self/maps`; false where that
/// cannot be read).
pub fn is_mapped() -> bool {
    mapped_library("libtorch_cuda.so").is_some()
}

#[cfg(unix)]
fn open(path: &std::path::Path) -> CudaLib {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    extern "C" {
        fn dlopen(filename: *const std::ffi::c_char, flag: i32) -> *mut std::ffi::c_void;
        fn dlerror() -> *const std::ffi::c_char;
    }
    // <dlfcn.h> on Linux
    const RTLD_NOW: i32 = 2;
    const RTLD_GLOBAL: i32 = 0x100;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return CudaLib::Failed(format!("{} has a NUL byte in its path", path.display()));
    };
    // SAFETY: dlopen with a valid NUL-terminated path; the handle is kept for the life of the process.
    let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a NUL-terminated message owned by the loader.
        let msg = unsafe { dlerror() };
        let msg = if msg.is_null() { "unknown error".to_string() } else { unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned() };
        return CudaLib::Failed(format!("{}: {msg}", path.display()));
    }
    CudaLib::Loaded(path.to_path_buf())
}

#[cfg(not(unix))]
fn open(path: &std::path::Path) -> CudaLib {
    CudaLib::Failed(format!("{}: loading on demand is implemented for Unix only", path.display()))
}

impl std::fmt::Display for CudaLib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CudaLib::Loaded(p) => write!(f, "loaded on demand ({})", p.display()),
            CudaLib::CpuOnly => f.write_str("none (CPU-only libtorch)"),
            CudaLib::Failed(m) => write!(f, "failed to load: {m}"),
        }
    }
}
