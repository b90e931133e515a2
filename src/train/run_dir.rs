//! A run directory: its file names, the lock held while a process owns it, atomic typed reads and
//! writes, and checkpoints.
//!
//! | file | what |
//! | --- | --- |
//! | `config.json` | the resolved [`TrainConfig`] (input paths absolute, so a run resumes from anywhere) |
//! | `model.json` | the [`crate::model::ModelConfig`]: trunk, heads and their concepts |
//! | `ontology.tsv` | the ontology the run was trained with (prediction uses it by default) |
//! | `schedule.json`, `split.json` | the stage schedule; the train/validation ids |
//! | `metrics.jsonl` | one line per finished epoch |
//! | `checkpoint.safetensors` | model, optimizer moments and progress after the last finished epoch |
//! | `model.safetensors` | the model weights (contiguous, torchvision names) |
//! | `thresholds.json`, `summary.json` | written when training finishes: a run without `summary.json` is unfinished |
//! | `provenance.json` | versions, device, precision, ontology hash |
//! | `run.lock` | the lock: held exclusively by the process training the run, shared by readers |
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk and renamed, so
//! a file is either the old or the new version; a failed write removes its temporary file. The
//! lock is an advisory `flock` on `run.lock`: the operating system releases it when its process
//! ends, however it ends (so a `kill -9` leaves no stale lock), and the file itself stays.
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::config::TrainConfig;
use super::optim::{Adam, GradScaler};

pub const CONFIG: &str = "config.json";
pub const MODEL_CONFIG: &str = "model.json";
pub const ONTOLOGY: &str = "ontology.tsv";
pub const SCHEDULE: &str = "schedule.json";
pub const SPLIT: &str = "split.json";
pub const METRICS: &str = "metrics.jsonl";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const MODEL: &str = "model.safetensors";
pub const THRESHOLDS: &str = "thresholds.json";
pub const SUMMARY: &str = "summary.json";
pub const PROVENANCE: &str = "provenance.json";
pub const SKIPPED: &str = "skipped.json";
pub const LOCK: &str = "run.lock";

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

impl crate::error::Classify for RunError {
    fn is_bad_input(&self) -> bool {
        use crate::error::io_is_bad_input;
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
pub struct Provenance {
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
    pub fn open_for_resume(path: &Path) -> Result<RunDir, RunError> {
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
    pub fn is_finished(&self) -> bool {
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
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(value).expect("run files serialise");
        self.write_bytes(name, text.as_bytes())
    }

    /// Write one of the run's files atomically.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), RunError> {
        let path = self.file(name);
        write_atomic(&path, |tmp| std::fs::write(tmp, bytes)).map_err(|source| RunError::Write { path, source })
    }

    /// `metrics.jsonl` cut to its first `keep` lines (a killed run may have written one more),
    /// opened for appending.
    pub fn metrics_log(&self, keep: usize) -> Result<MetricsLog, RunError> {
        let path = self.file(METRICS);
        let kept: String = std::fs::read_to_string(&path).unwrap_or_default().lines().take(keep).map(|l| format!("{l}\n")).collect();
        let w = |source| RunError::Write { path: path.clone(), source };
        write_atomic(&path, |tmp| std::fs::write(tmp, &kept)).map_err(w)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(w)?;
        Ok(MetricsLog { path, file })
    }

    /// Model variables, optimizer moments, loss-scaler state and progress in one safetensors file.
    pub fn save_checkpoint(&self, vs: &nn::VarStore, opt: &Adam, scaler: &GradScaler, progress: &Progress) -> Result<(), RunError> {
        // safetensors holds dense row-major data: channels-last weights (and their moments) are written contiguous.
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("model.{n}"), t.contiguous())).collect();
        named.extend(opt.state().into_iter().map(|(n, t)| (n, t.contiguous())));
        named.extend(scaler.state());
        named.push(("progress.completed_epochs".into(), Tensor::from(progress.completed_epochs as i64)));
        named.push(("progress.stage".into(), Tensor::from(progress.stage as i64)));
        named.push(("progress.best_epoch".into(), Tensor::from(progress.best_epoch as i64)));
        named.push(("progress.best_f1".into(), Tensor::from(progress.best_f1)));
        self.write_tensors(CHECKPOINT, named)
    }

    /// Load the checkpoint into `vs`; returns what else it holds. No checkpoint: `Ok(None)` (the
    /// run was stopped before its first epoch ended and starts from the beginning).
    pub fn load_checkpoint(&self, vs: &nn::VarStore) -> Result<Option<Checkpoint>, RunError> {
        let path = self.file(CHECKPOINT);
        if !path.exists() {
            return Ok(None);
        }
        let hint = "remove it to start the run again from the beginning";
        let corrupt = |reason: String| RunError::Corrupt { dir: self.path.clone(), file: CHECKPOINT, reason, hint };
        let tensors = Tensor::read_safetensors(&path).map_err(|e| corrupt(short_tch_error(&e)))?;
        let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
        tch::no_grad(|| -> Result<(), RunError> {
            for (name, var) in vs.variables() {
                let t = map.remove(&format!("model.{name}")).ok_or_else(|| corrupt(format!("it lacks the model variable '{name}'")))?;
                if t.size() != var.size() {
                    return Err(corrupt(format!("'{name}' has shape {:?}, the model {:?}", t.size(), var.size())));
                }
                var.shallow_clone().copy_(&t.to_device(var.device()));
            }
            Ok(())
        })?;
        let int = |k: &str| map.get(k).map(|t| t.int64_value(&[]) as usize);
        let completed_epochs = int("progress.completed_epochs").ok_or_else(|| corrupt("it has no progress record".into()))?;
        let progress = Progress {
            stage: int("progress.stage").unwrap_or(0),
            completed_epochs,
            // checkpoints from before best-epoch keeping: the last epoch is the best one known
            best_epoch: int("progress.best_epoch").unwrap_or(completed_epochs),
            best_f1: map.get("progress.best_f1").map(|t| t.double_value(&[])).unwrap_or(f64::NEG_INFINITY),
        };
        Ok(Some(Checkpoint { progress, state: map }))
    }

    /// The model's variables (contiguous, sorted by name) as `model.safetensors`.
    pub fn save_model(&self, vs: &nn::VarStore) -> Result<(), RunError> {
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
        self.write_tensors(MODEL, named)
    }

    fn write_tensors(&self, name: &str, mut named: Vec<(String, Tensor)>) -> Result<(), RunError> {
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let path = self.file(name);
        write_atomic(&path, |tmp| Tensor::write_safetensors(&named, tmp).map_err(|e| std::io::Error::other(short_tch_error(&e))))
            .map_err(|source| RunError::Write { path, source })
    }
}

/// How far a run has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The stage of the last finished epoch.
    pub stage: usize,
    pub completed_epochs: usize,
    /// The epoch whose weights `model.safetensors` holds under `--keep best`, and its validation
    /// ImageCLEF F1 (tuned thresholds); 0 and -inf before the first epoch.
    pub best_epoch: usize,
    pub best_f1: f64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { stage: 0, completed_epochs: 0, best_epoch: 0, best_f1: f64::NEG_INFINITY }
    }
}

/// What a checkpoint holds besides the model: progress and optimizer/scaler state.
pub struct Checkpoint {
    pub progress: Progress,
    /// `adam.*` and `scaler.*` tensors by name.
    pub state: HashMap<String, Tensor>,
}

/// `metrics.jsonl`, open for appending one line per epoch.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    pub fn append<T: Serialize>(&mut self, line: &T) -> Result<(), RunError> {
        let text = serde_json::to_string(line).expect("metrics serialise");
        writeln!(self.file, "{text}").and_then(|_| self.file.sync_data()).map_err(|source| RunError::Write { path: self.path.clone(), source })
    }
}

/// Write `path` through a temporary file beside it: `write` fills the temporary file, which is
/// then flushed to disk and renamed over `path`. On any failure the temporary file is removed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
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

/// The first line of a libtorch error (its C++ backtrace is of no use to a user).
pub fn short_tch_error(e: &tch::TchError) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").trim().to_string()
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
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

/// Read a run's configuration (for `--resume` and prediction).
pub fn read_config(run: &RunDir) -> Result<TrainConfig, RunError> {
    run.read_json(CONFIG, "the run cannot be used without it")
}

/// Remove what a new run in `path` wrote before it failed to start (it has no `config.json`): the
/// lock and the files a run writes first, unless `forced` into a directory that already held
/// other files (which may have those names); and the directory itself when `made_here` (this
/// process created it) and it is then empty. A directory holding a run is left as it is.
pub fn remove_unstarted(path: &Path, made_here: bool, forced: bool) {
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

/// `cfg` as a run stores it (input paths absolute), with the settings its mode does not use set to
/// their defaults (a flat run's residual-head options mean nothing, so a changed default there
/// changes no run).
fn used_settings(cfg: &TrainConfig) -> TrainConfig {
    use super::config::Mode;
    let d = TrainConfig::default();
    // as the trainer stores them
    let mut c = cfg.clone().with_absolute_paths();
    if c.mode != Mode::Hybrid {
        (c.rest_top_k, c.rest_pooling, c.noise) = (d.rest_top_k, d.rest_pooling, d.noise);
    }
    if c.mode != Mode::Knn {
        c.knn_k = d.knn_k;
    }
    c
}

/// The settings in which two configurations differ, as `name: stored -> wanted`, in field order.
/// Where the run and its split files live (`out`, `train_labels`, `val_labels`, `weights`) is left
/// out: an experiment folder may be moved; what is in those files is checked where they are read.
pub fn config_differences(stored: &TrainConfig, wanted: &TrainConfig) -> Vec<String> {
    const LOCATIONS: [&str; 4] = ["out", "train_labels", "val_labels", "weights"];
    let value = |c: &TrainConfig| serde_json::to_value(used_settings(c)).expect("configs serialise");
    let (a, b) = (value(stored), value(wanted));
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (a, b) else { unreachable!("a config is an object") };
    b.iter().filter(|(k, v)| !LOCATIONS.contains(&k.as_str()) && a.get(*k) != Some(v)).map(|(k, v)| format!("{k}: {} -> {v}", a.get(k).map_or("-".to_string(), |x| x.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_differences_name_each_changed_setting_with_both_values() {
        let a = TrainConfig::default();
        assert!(config_differences(&a, &a.clone()).is_empty());
        // the trainer stores input paths absolute; the same relative path given again is no difference
        let rel = TrainConfig { images: "imgs".into(), ..a.clone() };
        assert!(config_differences(&rel.clone().with_absolute_paths(), &rel).is_empty());
        // a flat run has no residual head: its options there are not a difference
        assert!(config_differences(&a, &TrainConfig { rest_pooling: crate::model::Pooling::AvgMax, knn_k: 3, ..a.clone() }).is_empty());
        let a = TrainConfig { mode: super::super::config::Mode::Hybrid, ..a };
        let b = TrainConfig { epochs: 3, rest_pooling: crate::model::Pooling::AvgMax, out: "elsewhere".into(), ..a.clone() };
        assert_eq!(config_differences(&a, &b), vec!["epochs: 10 -> 3".to_string(), "rest_pooling: \"avg\" -> \"avg-max\"".to_string()]);
    }

    #[test]
    fn a_second_owner_is_refused_naming_the_first_and_readers_wait_for_the_trainer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = RunDir::create(&dir, false).unwrap();
        let e = RunDir::create(&dir, false).unwrap_err();
        assert!(matches!(e, RunError::Locked { .. }), "{e}");
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
        first.write_json(CONFIG, &TrainConfig::default()).unwrap();
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
        let e = run.read_json::<TrainConfig>(THRESHOLDS, "retrain it").unwrap_err().to_string();
        assert!(e.contains("thresholds.json is missing; retrain it"), "{e}");
        std::fs::write(run.file(THRESHOLDS), "{not json").unwrap();
        let e = run.read_json::<TrainConfig>(THRESHOLDS, "retrain it").unwrap_err().to_string();
        assert!(e.contains("thresholds.json cannot be used") && e.contains("retrain it"), "{e}");
        std::fs::write(run.file(CHECKPOINT), b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let e = run.load_checkpoint(&vs).err().unwrap().to_string();
        assert!(e.contains("checkpoint.safetensors cannot be used") && e.contains("start the run again"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn utc_dates() {
        let s = utc_now();
        assert_eq!(s.len(), 20);
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
