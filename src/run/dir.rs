//! A run directory: the lock held while a process owns it, atomic typed reads and writes, the
//! weights, provenance. Its file names, and what each holds, are in [`super::names`]; training's
//! checkpoints and configuration are added by `crate::train::run_dir`.
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk and renamed, so
//! a file is either the old or the new version; a failed write removes its temporary file. The
//! lock is an advisory `flock` on `run.lock`: the operating system releases it when its process
//! ends, however it ends (so a `kill -9` leaves no stale lock), and the file itself stays.
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::names::*;

/// Problems with a run directory; each names the directory and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{dir} is in use by another conceptree process ({holder}); wait for it to end, or use another directory")]
    Locked { dir: PathBuf, holder: String },
    #[error("{dir} exists and is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("{dir} is not empty and is not a conceptree run (it holds {example}); choose a new or empty directory, or pass --force to write into it anyway")]
    NotEmpty { dir: PathBuf, example: String },
    #[error("{dir} already holds a training run; choose another --out, remove it, or continue it with `conceptree train --resume {dir}`")]
    HasRun { dir: PathBuf },
    #[error("{dir} is not a conceptree run directory (it has no {CONFIG})")]
    NotARun { dir: PathBuf },
    #[error("{dir} has finished training; there is nothing to resume (predict with it, or train a new run)")]
    Finished { dir: PathBuf },
    #[error("{}: {file} is missing; {hint}", dir.display())]
    Missing { dir: PathBuf, file: &'static str, hint: &'static str },
    #[error("{}: {file} cannot be used ({reason}); {hint}", dir.display())]
    Corrupt { dir: PathBuf, file: &'static str, reason: String, hint: &'static str },
    #[error("{dir}: the training data changed since the run started ({what}); it cannot be resumed")]
    DataChanged { dir: PathBuf, what: String },
    #[error("{dir} was trained with another configuration than the one asked for now ({what}); remove it to train it again, or use another --out")]
    ConfigChanged { dir: PathBuf, what: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

impl crate::classify::Classify for RunError {
    fn is_bad_input(&self) -> bool {
        use crate::classify::io_is_bad_input;
        match self {
            RunError::Locked { .. }
            | RunError::NotADirectory { .. }
            | RunError::NotEmpty { .. }
            | RunError::HasRun { .. }
            | RunError::NotARun { .. }
            | RunError::Finished { .. }
            | RunError::Missing { .. }
            | RunError::Corrupt { .. }
            | RunError::DataChanged { .. }
            | RunError::ConfigChanged { .. } => true,
            RunError::Write { source, .. } => io_is_bad_input(true, source),
            RunError::Read { source, .. } => io_is_bad_input(false, source),
        }
    }
}

/// Versions and hashes that make a run reproducible.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Provenance {
    pub conceptree_version: String,
    pub git_commit: Option<String>,
    pub libtorch: String,
    pub cuda_available: bool,
    pub device: String,
    pub ontology_hash: String,
    /// "fp32", "mixed fp16 (dynamic loss scaling)" or "mixed bf16".
    #[serde(default)]
    pub precision: String,
    /// "channels-last" or "contiguous".
    #[serde(default)]
    pub memory_format: String,
}

/// How a run directory is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Exclusively: this process trains the run.
    Owner,
    /// Shared: this process reads the run (other readers may too, no trainer).
    Reader,
}

/// An open run directory, locked for as long as the value lives.
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    _lock: Option<File>,
}

impl RunDir {
    /// Create (or take over an empty) directory for a new run and lock it. A directory holding
    /// anything but a lock file (or the first files of a run stopped before its `config.json`) is
    /// refused, unless `force`; a run (with `config.json`, weights or a checkpoint) is refused even
    /// then: a run is never overwritten.
    pub fn create(path: &Path, force: bool) -> Result<RunDir, RunError> {
        if path.exists() && !path.is_dir() {
            return Err(RunError::NotADirectory { dir: path.to_path_buf() });
        }
        std::fs::create_dir_all(path).map_err(|source| RunError::Write { path: path.to_path_buf(), source })?;
        let lock = take_lock(path, Hold::Owner)?;
        if [CONFIG, MODEL, CHECKPOINT].iter().any(|f| path.join(f).exists()) {
            return Err(RunError::HasRun { dir: path.to_path_buf() });
        }
        let other = std::fs::read_dir(path)
            .map_err(|source| RunError::Read { path: path.to_path_buf(), source })?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // files a run writes before config.json: a run stopped that early is started again
            .filter(|n| ![LOCK, MODEL_CONFIG, ONTOLOGY, SCHEDULE, SPLIT, PROVENANCE, SKIPPED].contains(&n.as_str()) && !n.ends_with(".tmp"))
            .min();
        if let (Some(example), false) = (other, force) {
            return Err(RunError::NotEmpty { dir: path.to_path_buf(), example });
        }
        let run = RunDir { path: path.to_path_buf(), _lock: lock };
        run.write_holder()?;
        Ok(run)
    }

    /// Open an unfinished run to continue it (exclusive lock).
    pub(crate) fn open_for_resume(path: &Path) -> Result<RunDir, RunError> {
        let run = Self::open(path, Hold::Owner)?;
        if run.file(SUMMARY).exists() {
            return Err(RunError::Finished { dir: path.to_path_buf() });
        }
        run.write_holder()?;
        Ok(run)
    }

    /// Open a run to read it (shared lock: refused while a process trains it).
    pub fn open_for_reading(path: &Path) -> Result<RunDir, RunError> {
        Self::open(path, Hold::Reader)
    }

    fn open(path: &Path, hold: Hold) -> Result<RunDir, RunError> {
        if !path.is_dir() {
            return Err(if path.exists() { RunError::NotADirectory { dir: path.to_path_buf() } } else { RunError::NotARun { dir: path.to_path_buf() } });
        }
        let lock = take_lock(path, hold)?;
        if !path.join(CONFIG).is_file() {
            return Err(RunError::NotARun { dir: path.to_path_buf() });
        }
        Ok(RunDir { path: path.to_path_buf(), _lock: lock })
    }

    /// Who holds the run, for another process's error message.
    fn write_holder(&self) -> Result<(), RunError> {
        let cmd: Vec<String> = std::env::args().collect();
        let text = format!("pid {} since {}: {}\n", std::process::id(), utc_now(), cmd.join(" "));
        let p = self.file(LOCK);
        // written in place (not renamed): the lock belongs to this file's inode
        std::fs::write(&p, text).map_err(|source| RunError::Write { path: p, source })
    }

    /// The path of one of the run's files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether the run has finished training (its summary is written last).
    pub(crate) fn is_finished(&self) -> bool {
        self.file(SUMMARY).is_file()
    }

    /// Read and parse one of the run's JSON files; `hint` says what to do when it is missing or damaged.
    pub fn read_json<T: DeserializeOwned>(&self, name: &'static str, hint: &'static str) -> Result<T, RunError> {
        let text = match std::fs::read_to_string(self.file(name)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RunError::Missing { dir: self.path.clone(), file: name, hint }),
            Err(source) => return Err(RunError::Read { path: self.file(name), source }),
        };
        serde_json::from_str(&text).map_err(|e| RunError::Corrupt { dir: self.path.clone(), file: name, reason: e.to_string(), hint })
    }

    /// Write one of the run's JSON files atomically.
    pub(crate) fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(value).expect("run files serialise");
        self.write_bytes(name, text.as_bytes())
    }

    /// Write one of the run's files atomically.
    pub(crate) fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), RunError> {
        let path = self.file(name);
        write_atomic(&path, |tmp| std::fs::write(tmp, bytes)).map_err(|source| RunError::Write { path, source })
    }

    /// `metrics.jsonl` cut to its first `keep` lines (a killed run may have written one more),
    /// opened for appending.
    pub(crate) fn metrics_log(&self, keep: usize) -> Result<MetricsLog, RunError> {
        let path = self.file(METRICS);
        let kept: String = std::fs::read_to_string(&path).unwrap_or_default().lines().take(keep).map(|l| format!("{l}\n")).collect();
        let w = |source| RunError::Write { path: path.clone(), source };
        write_atomic(&path, |tmp| std::fs::write(tmp, &kept)).map_err(w)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(w)?;
        Ok(MetricsLog { path, file })
    }

    /// The model's variables (contiguous, sorted by name) as `model.safetensors`.
    pub(crate) fn save_model(&self, vs: &nn::VarStore) -> Result<(), RunError> {
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
        self.write_tensors(MODEL, named)
    }

    pub(crate) fn write_tensors(&self, name: &str, mut named: Vec<(String, Tensor)>) -> Result<(), RunError> {
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let path = self.file(name);
        write_atomic(&path, |tmp| Tensor::write_safetensors(&named, tmp).map_err(|e| std::io::Error::other(short_tch_error(&e))))
            .map_err(|source| RunError::Write { path, source })
    }
}

/// `metrics.jsonl`, open for appending one line per epoch.
pub(crate) struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    pub(crate) fn append<T: Serialize>(&mut self, line: &T) -> Result<(), RunError> {
        let text = serde_json::to_string(line).expect("metrics serialise");
        writeln!(self.file, "{text}").and_then(|_| self.file.sync_data()).map_err(|source| RunError::Write { path: self.path.clone(), source })
    }
}

/// Write `path` through a temporary file beside it: `write` fills the temporary file, which is
/// then flushed to disk and renamed over `path`. On any failure the temporary file is removed.
pub(crate) fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = write(&tmp).and_then(|_| File::open(&tmp)?.sync_all()).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Some(dir) = path.parent() {
        // the rename itself reaches the disk with the directory (best effort: not every file system allows it)
        let _ = File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }).and_then(|d| d.sync_all());
    }
    result
}

/// Take the run's lock without waiting; a held lock is an error naming its holder.
fn take_lock(dir: &Path, hold: Hold) -> Result<Option<File>, RunError> {
    let path = dir.join(LOCK);
    let file = match hold {
        Hold::Owner => std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path),
        // a reader needs no write access to the run (it may live on read-only media)
        Hold::Reader => match File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other,
        },
    }
    .map_err(|source| RunError::Write { path: path.clone(), source })?;
    let got = match hold {
        Hold::Owner => file.try_lock(),
        Hold::Reader => file.try_lock_shared(),
    };
    match got {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
            let holder = if holder.is_empty() { "a process that is starting".to_string() } else { crate::cui::excerpt(&holder, 200) };
            Err(RunError::Locked { dir: dir.to_path_buf(), holder })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(RunError::Write { path, source }),
    }
}

/// Remove what a new run in `path` wrote before it failed to start (it has no `config.json`): the
/// lock and the files a run writes first, unless `forced` into a directory that already held
/// other files (which may have those names); and the directory itself when `made_here` (this
/// process created it) and it is then empty. A directory holding a run is left as it is.
pub(crate) fn remove_unstarted(path: &Path, made_here: bool, forced: bool) {
    if path.join(CONFIG).exists() {
        return;
    }
    if made_here || !forced {
        for f in [LOCK, MODEL_CONFIG, ONTOLOGY, SCHEDULE, SPLIT, PROVENANCE, SKIPPED, METRICS] {
            let _ = std::fs::remove_file(path.join(f));
        }
    }
    if made_here {
        let _ = std::fs::remove_dir(path);
    }
}

/// The first line of a libtorch error (its C++ backtrace is of no use to a user).
pub(crate) fn short_tch_error(e: &tch::TchError) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").trim().to_string()
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_naming_the_first_and_readers_wait_for_the_trainer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = RunDir::create(&dir, false).unwrap();
        let e = RunDir::create(&dir, false).unwrap_err();
        assert!(matches!(e, RunError::Locked { .. }), "{e}");
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        first.write_json(CONFIG, &serde_json::json!({})).unwrap();
        assert!(matches!(RunDir::open_for_reading(&dir), Err(RunError::Locked { .. })), "no reading while it trains");
        drop(first);
        let r1 = RunDir::open_for_reading(&dir).unwrap();
        let r2 = RunDir::open_for_reading(&dir).unwrap();
        assert!(matches!(RunDir::open_for_resume(&dir), Err(RunError::Locked { .. })), "no training while it is read");
        drop((r1, r2));
        assert!(RunDir::open_for_resume(&dir).is_ok());
    }

    #[test]
    fn only_empty_directories_become_runs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let e = RunDir::create(tmp.path(), false).unwrap_err();
        assert!(matches!(e, RunError::NotEmpty { ref example, .. } if example == "notes.txt"), "{e}");
        drop(RunDir::create(tmp.path(), true).unwrap());
        let file = tmp.path().join("notes.txt");
        assert!(matches!(RunDir::create(&file, false), Err(RunError::NotADirectory { .. })));
        // a previous run is never overwritten, even with --force
        std::fs::write(tmp.path().join(CONFIG), "{}").unwrap();
        assert!(matches!(RunDir::create(tmp.path(), true), Err(RunError::HasRun { .. })));
        assert!(matches!(RunDir::open_for_reading(&tmp.path().join("missing")), Err(RunError::NotARun { .. })));
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.json");
        write_atomic(&p, |t| std::fs::write(t, "1")).unwrap();
        let e = write_atomic(&p, |t| {
            std::fs::write(t, "partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "1", "the old version stays");
        let names: Vec<String> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["a.json"]);
    }

    #[test]
    fn missing_and_damaged_files_say_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), false).unwrap();
        let e = run.read_json::<serde_json::Value>(THRESHOLDS, "retrain it").unwrap_err().to_string();
        assert!(e.contains("thresholds.json is missing; retrain it"), "{e}");
        std::fs::write(run.file(THRESHOLDS), "{not json").unwrap();
        let e = run.read_json::<serde_json::Value>(THRESHOLDS, "retrain it").unwrap_err().to_string();
        assert!(e.contains("thresholds.json cannot be used") && e.contains("retrain it"), "{e}");
    }

    #[test]
    fn utc_dates() {
        let s = utc_now();
        assert_eq!(s.len(), 20);
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
