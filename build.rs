//! Build script: make the binary find libtorch without LD_LIBRARY_PATH, and record where it is.
//!
//! torch-sys links libtorch with the linker's default `--as-needed`, which drops
//! `libtorch_cuda.so` (nothing references its symbols directly). That is what we want: the CUDA
//! library and everything it pulls in cost ~230 MiB of resident memory at start-up, so commands that
//! may use a GPU load it at run time (`src/cuda.rs`, from the directory recorded here as
//! `CONCEPTREE_LIBTORCH_DIR`), and the others never map it. An rpath to libtorch's `lib/` directory
//! lets the binary run from a plain shell.
//!
//! libtorch is located like torch-sys does it: `$LIBTORCH/lib`, or the `torch` package of the
//! active Python (`LIBTORCH_USE_PYTORCH=1`, interpreter `python` inside a virtualenv, else `python3`).
use std::path::PathBuf;
use std::process::Command;

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LIBTORCH_LIB") {
        return Some(PathBuf::from(dir).join("lib"));
    }
    if let Ok(dir) = std::env::var("LIBTORCH") {
        return Some(PathBuf::from(dir).join("lib"));
    }
    let python = if std::env::var_os("VIRTUAL_ENV").is_some() { "python" } else { "python3" };
    let out = Command::new(python)
        .args(["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

fn main() {
    // The commit a binary was built from, recorded in every run's provenance.json.
    if let Ok(out) = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output() {
        if out.status.success() {
            let dirty = Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]).output().map(|o| !o.stdout.is_empty()).unwrap_or(false);
            let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("cargo:rustc-env=CONCEPTREE_GIT_COMMIT={commit}{}", if dirty { "-dirty" } else { "" });
        }
    }
    // where git keeps HEAD and the index: `.git/` in a clone, elsewhere in a worktree (whose `.git`
    // is a file; a path that does not exist would rerun this script, and rebuild the crate, every time)
    for file in ["HEAD", "index"] {
        let path = Command::new("git").args(["rev-parse", "--git-path", file]).output().ok().filter(|o| o.status.success());
        let path = path.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).filter(|p| !p.is_empty());
        println!("cargo:rerun-if-changed={}", path.unwrap_or_else(|| format!(".git/{file}")));
    }
    for var in ["LIBTORCH", "LIBTORCH_LIB", "LIBTORCH_USE_PYTORCH", "VIRTUAL_ENV"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let Some(lib) = libtorch_lib_dir() else {
        println!("cargo:warning=conceptree: libtorch not found; the binary will need LD_LIBRARY_PATH");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-env=CONCEPTREE_LIBTORCH_DIR={}", lib.display());
}
