//! The one check every command that writes runs before it writes anything: no output is one of
//! the command's own inputs, two outputs are never the same file, an output folder holds none of
//! the inputs, and nothing is written into a training run the command did not create (whatever
//! the flags, `--force` included).
//!
//! A command describes what it reads and writes as a [`Plan`] and calls [`Plan::check`]. Paths are
//! compared after resolving symbolic links and `..` (the part of a path that does not exist yet is
//! taken as written), and files that exist are also compared by device and inode, so a hard link
//! or a symlinked folder cannot hide an input.
//!
//! The one exception to "never into a run": a command that reads a run (`predict --model R`) may add
//! files of its own to it (`--out R/test.csv`, as the demo does), never one of the run's own files
//! ([`super::names::RUN_FILES`]).
use std::path::{Component, Path, PathBuf};

use super::names::{is_run_dir, is_run_file};

/// Why a command's outputs were refused; every variant is bad input (exit code 2) and names both
/// paths with their options.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{out_flag} {out} is {in_flag} {input}, which this command reads: it would be written over; choose another {out_flag}")]
    IsInput { out_flag: &'static str, out: PathBuf, in_flag: &'static str, input: PathBuf },
    #[error("{out_flag} {out} holds {in_flag} {input}, which this command reads; choose a folder that holds none of the command's inputs")]
    HoldsInput { out_flag: &'static str, out: PathBuf, in_flag: &'static str, input: PathBuf },
    #[error("{out_flag} {out} lies in {in_flag} {input}, which this command reads; write it outside that folder")]
    InsideInput { out_flag: &'static str, out: PathBuf, in_flag: &'static str, input: PathBuf },
    #[error("{a_flag} {a} and {b_flag} {b} are the same file; give each output its own path")]
    SameOutput { a_flag: &'static str, a: PathBuf, b_flag: &'static str, b: PathBuf },
    #[error("{out_flag} {out} is in the training run {}, which this command did not create; a run is never written into by another command (--force included): choose a path outside it", run.display())]
    IntoRun { out_flag: &'static str, out: PathBuf, run: PathBuf },
    #[error("{out_flag} {out} is the run directory itself, which this command reads; a run is never written into by another command (--force included): choose another folder")]
    RunItself { out_flag: &'static str, out: PathBuf },
    #[error("{out_flag} {out} would replace {name}, one of the files of the run {}; choose another file name", run.display())]
    RunFile { out_flag: &'static str, out: PathBuf, name: String, run: PathBuf },
}

impl crate::classify::Classify for OutputError {
    fn is_bad_input(&self) -> bool {
        match self {
            OutputError::IsInput { .. } | OutputError::HoldsInput { .. } | OutputError::InsideInput { .. } | OutputError::SameOutput { .. } | OutputError::IntoRun { .. } | OutputError::RunItself { .. } | OutputError::RunFile { .. } => true,
        }
    }
}

/// Whether an output is one file or a folder the command fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Folder,
}

#[derive(Debug, Clone)]
struct Named {
    flag: &'static str,
    path: PathBuf,
    resolved: PathBuf,
}

impl Named {
    fn new(flag: &'static str, path: &Path) -> Named {
        Named { flag, path: path.to_path_buf(), resolved: resolve(path) }
    }
}

/// What one command reads and writes (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    inputs: Vec<Named>,
    outputs: Vec<(Named, Kind)>,
    /// A run this command reads and may add its own files to.
    adds_to: Option<PathBuf>,
    /// The run this command creates (or resumes): its outputs may go there.
    creates: Option<PathBuf>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    /// An input file or folder, given as `flag`.
    pub fn input(mut self, flag: &'static str, path: &Path) -> Plan {
        self.inputs.push(Named::new(flag, path));
        self
    }

    /// An optional input.
    pub fn input_opt(self, flag: &'static str, path: Option<&Path>) -> Plan {
        match path {
            Some(p) => self.input(flag, p),
            None => self,
        }
    }

    /// Several inputs given with the same flag.
    pub fn inputs(self, flag: &'static str, paths: &[PathBuf]) -> Plan {
        paths.iter().fold(self, |plan, p| plan.input(flag, p))
    }

    /// A run the command reads (an input folder) and may add files of its own to.
    pub fn reads_run(mut self, flag: &'static str, run: &Path) -> Plan {
        self.adds_to = Some(resolve(run));
        self.input(flag, run)
    }

    /// The run the command creates or continues: writing into it is the command's job.
    pub fn creates_run(mut self, run: &Path) -> Plan {
        self.creates = Some(resolve(run));
        self
    }

    /// An output file.
    pub fn file(mut self, flag: &'static str, path: &Path) -> Plan {
        self.outputs.push((Named::new(flag, path), Kind::File));
        self
    }

    /// An optional output file.
    pub fn file_opt(self, flag: &'static str, path: Option<&Path>) -> Plan {
        match path {
            Some(p) => self.file(flag, p),
            None => self,
        }
    }

    /// An output folder the command fills.
    pub fn folder(mut self, flag: &'static str, path: &Path) -> Plan {
        self.outputs.push((Named::new(flag, path), Kind::Folder));
        self
    }

    /// Refuse the plan if an output would write over an input, another output, or into a run the
    /// command did not create. Touches nothing on disk.
    pub fn check(&self) -> Result<(), OutputError> {
        for (i, (out, kind)) in self.outputs.iter().enumerate() {
            for (other, _) in &self.outputs[..i] {
                if same_file(&out.resolved, &other.resolved) {
                    return Err(OutputError::SameOutput { a_flag: other.flag, a: other.path.clone(), b_flag: out.flag, b: out.path.clone() });
                }
            }
            self.check_run(out, *kind)?;
            for input in &self.inputs {
                self.check_input(out, *kind, input)?;
            }
        }
        Ok(())
    }

    fn check_input(&self, out: &Named, kind: Kind, input: &Named) -> Result<(), OutputError> {
        let (o, i) = (&out.resolved, &input.resolved);
        let err = |make: fn(&'static str, PathBuf, &'static str, PathBuf) -> OutputError| Err(make(out.flag, out.path.clone(), input.flag, input.path.clone()));
        if same_file(o, i) {
            return err(|out_flag, out, in_flag, input| OutputError::IsInput { out_flag, out, in_flag, input });
        }
        if kind == Kind::Folder && i.starts_with(o) {
            return err(|out_flag, out, in_flag, input| OutputError::HoldsInput { out_flag, out, in_flag, input });
        }
        // inside an input folder: a run read by the command is judged by `check_run`
        if o.starts_with(i) && i.is_dir() && !is_run_dir(i) {
            return err(|out_flag, out, in_flag, input| OutputError::InsideInput { out_flag, out, in_flag, input });
        }
        Ok(())
    }

    fn check_run(&self, out: &Named, kind: Kind) -> Result<(), OutputError> {
        let o = &out.resolved;
        // a folder output may itself be a run; a file lies in its parent folder's run
        let mut folders = o.ancestors();
        if kind == Kind::File {
            folders.next();
        }
        let Some(run) = folders.find(|d| is_run_dir(d)) else { return Ok(()) };
        if self.creates.as_deref() == Some(run) {
            return Ok(());
        }
        let name = o.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let own_file = kind == Kind::File && o.parent() == Some(run);
        if self.adds_to.as_deref() == Some(run) && own_file && !is_run_file(&name) {
            return Ok(());
        }
        if self.adds_to.as_deref() == Some(run) && own_file {
            return Err(OutputError::RunFile { out_flag: out.flag, out: out.path.clone(), name, run: run.to_path_buf() });
        }
        if self.adds_to.as_deref() == Some(run) && o == run {
            return Err(OutputError::RunItself { out_flag: out.flag, out: out.path.clone() });
        }
        Err(OutputError::IntoRun { out_flag: out.flag, out: out.path.clone(), run: run.to_path_buf() })
    }
}

/// `p` absolute, with symbolic links and `..` resolved: component by component, the path built so
/// far is resolved whenever it exists (so a link after a `..` that follows a folder yet to be made
/// is still followed); what does not exist yet (what the command is about to create) is taken as
/// written, `.` and `..` applied.
pub fn resolve(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()) };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
        if let Ok(real) = out.canonicalize() {
            out = real;
        }
    }
    out
}

/// The same path, or (both existing) the same file by device and inode: a hard link too.
fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::names::{CONFIG, LOCK, MODEL_CONFIG};
    use super::*;

    fn refused(p: &Plan) -> String {
        p.check().unwrap_err().to_string()
    }

    #[test]
    fn an_output_is_never_an_input_nor_another_output() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let ids = d.join("test.csv");
        std::fs::write(&ids, "a\n").unwrap();
        let images = d.join("images");
        std::fs::create_dir(&images).unwrap();
        let base = Plan::new().input("--ids", &ids).input("--images", &images);
        assert!(base.clone().file("--out", &d.join("a.csv")).file("--explain", &d.join("a.jsonl")).check().is_ok());
        let e = refused(&base.clone().file("--out", &d.join("a.csv")).file("--explain", &d.join("./sub/../a.csv")));
        assert!(e.contains("--out") && e.contains("--explain") && e.contains("same file"), "{e}");
        let e = refused(&base.clone().file("--explain", &ids));
        assert!(e.contains("--explain") && e.contains("--ids") && e.contains("test.csv"), "{e}");
        // through a symlinked folder and through a hard link
        std::os::unix::fs::symlink(d, d.join("alias")).unwrap();
        assert!(matches!(base.clone().file("--out", &d.join("alias/test.csv")).check(), Err(OutputError::IsInput { .. })));
        std::fs::hard_link(&ids, d.join("link.csv")).unwrap();
        assert!(matches!(base.clone().file("--out", &d.join("link.csv")).check(), Err(OutputError::IsInput { .. })));
        // folders: the image folder itself, a folder holding an input, a file inside an input folder
        assert!(matches!(base.clone().folder("--out", &images).check(), Err(OutputError::IsInput { .. })));
        assert!(matches!(base.clone().folder("--out", d).check(), Err(OutputError::HoldsInput { .. })));
        assert!(matches!(base.clone().file("--out", &images.join("p.csv")).check(), Err(OutputError::InsideInput { .. })));
        assert!(base.folder("--out", &d.join("new/report")).check().is_ok());
    }

    #[test]
    fn runs_are_written_only_by_their_own_command() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("runs/hier");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(LOCK), "").unwrap();
        let other = tmp.path().join("runs/other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join(CONFIG), "{}").unwrap();
        std::fs::write(other.join(MODEL_CONFIG), "{}").unwrap();
        let reader = Plan::new().reads_run("--model", &run);
        // a file of its own into the run it reads: yes; one of the run's files, or into another run: no
        assert!(reader.clone().file("--out", &run.join("test.csv")).check().is_ok());
        let e = refused(&reader.clone().file("--out", &run.join("model.safetensors")));
        assert!(e.contains("model.safetensors") && e.contains("choose another file name"), "{e}");
        let e = refused(&reader.clone().file("--out", &other.join("test.csv")));
        assert!(e.contains("runs/other") && e.contains("did not create"), "{e}");
        assert!(matches!(reader.clone().folder("--out", &other).check(), Err(OutputError::IntoRun { .. })));
        assert!(matches!(reader.clone().folder("--out", &run.join("export")).check(), Err(OutputError::IntoRun { .. })));
        assert!(matches!(Plan::new().folder("--out", &run).check(), Err(OutputError::IntoRun { .. })));
        assert!(refused(&reader.clone().folder("--out", &run)).contains("the run directory itself"));
        // the command that creates the run writes into it
        assert!(Plan::new().creates_run(&run).folder("--out", &run).check().is_ok());
    }

    #[test]
    fn paths_resolve_through_what_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().canonicalize().unwrap();
        assert_eq!(resolve(&d.join("x/../y/./z.csv")), d.join("y/z.csv"));
        std::os::unix::fs::symlink(&d, d.join("l")).unwrap();
        assert_eq!(resolve(&d.join("l/new.csv")), d.join("new.csv"));
        // a link reached through `..` after a folder that does not exist yet is still followed
        std::fs::create_dir(d.join("images")).unwrap();
        std::os::unix::fs::symlink(d.join("images"), d.join("alias")).unwrap();
        assert_eq!(resolve(&d.join("new/../alias/c")), d.join("images/c"));
        let plan = Plan::new().input("--images", &d.join("images")).folder("--out", &d.join("new/../alias/c"));
        assert!(matches!(plan.check(), Err(OutputError::InsideInput { .. })));
    }
}
