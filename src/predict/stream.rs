//! Streaming prediction into files: any number of images with bounded memory, resumable.
//!
//! Images are predicted batch by batch ([`LoadedRun::for_each_probabilities`]); each batch's
//! submission rows (and `--explain` records) are appended to `OUT.partial` (`EXPLAIN.partial`) as
//! soon as the batch is decided, so no probability is kept once its rows are written. After each
//! batch the partial files are flushed to disk and then `OUT.progress.json` records how many
//! images are finished and how many bytes of each partial file hold them (written to a
//! temporary file and renamed, so it is always one whole record). At the end the partial files
//! are renamed over `OUT` (and `EXPLAIN`) and the progress record is removed: `OUT` is only ever
//! a complete submission, never a half-written one.
//!
//! **Resuming** (`predict --resume`): the progress record also holds what the prediction
//! depends on (the run, a hash of its weights, of its decoding inputs, of the image list, the
//! batch size, the device and the explain file); a resume with anything different is refused,
//! naming it. Otherwise the partial files are cut back to the recorded lengths (rows of a batch
//! that was being written when the process died are dropped) and prediction continues with the
//! first unfinished image, in batches of the same size, so the finished files are byte for byte
//! those of an uninterrupted prediction. A partial file shorter than its record (changed after
//! the interruption) is refused. While a process writes `OUT.partial` it holds an exclusive lock
//! on it, so a second prediction into the same file is refused.
//!
//! **Progress** goes to the caller's [`Events`] sink, an [`Event::Tick`] after each batch.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ExplainRecord, LoadedRun, PredictError};
use crate::data::labels::write_clef2019_row;
use crate::events::{Event, Events, Task, Tick};
use crate::fingerprint::{file_hash, fnv1a, hex, FNV_START};
use crate::train::run_dir;

/// Appended to the output's file name for the file being written.
pub(crate) const PARTIAL_SUFFIX: &str = ".partial";
/// Appended to the output's file name for the progress record.
pub(crate) const PROGRESS_SUFFIX: &str = ".progress.json";
/// Test hook: when set to N, the process aborts (as a crash would) right after the rows of its
/// N-th batch are written and before their progress is recorded.
pub(crate) const ABORT_AFTER_ENV: &str = "CONCEPTREE_TEST_ABORT_AFTER_BATCHES";

/// `OUT.partial`: the file being written in place of `out`.
pub fn partial_path(out: &Path) -> PathBuf {
    with_suffix(out, PARTIAL_SUFFIX)
}

/// `OUT.progress.json`: the progress record of a prediction into `out`.
pub fn progress_path(out: &Path) -> PathBuf {
    with_suffix(out, PROGRESS_SUFFIX)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut name = p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    p.with_file_name(name)
}

/// Where and how a streaming prediction writes.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The submission file.
    pub out: PathBuf,
    /// The explain file (`predict --explain`).
    pub explain: Option<PathBuf>,
    /// Images per batch.
    pub batch_size: usize,
    /// Continue an interrupted prediction into `out` (from the start when there is none).
    pub resume: bool,
}

/// Everything a prediction's rows depend on; a resume must find the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// The run directory (absolute).
    pub model: PathBuf,
    /// Hash of the weights (`model.safetensors`, and a kNN run's index).
    pub weights: String,
    /// Hash of what turns probabilities into concepts: the model's heads and concepts, the
    /// thresholds in force and the ontology's content.
    pub decoding: String,
    /// Hash of the image list (ids and files, in order).
    pub images: String,
    pub n_images: usize,
    pub batch_size: usize,
    pub device: String,
    /// The explain file (absolute), if one is written.
    pub explain: Option<PathBuf>,
}

impl Identity {
    /// The identity of predicting `ids` (files `paths`) with `run` as `opts` says.
    pub fn of(run: &LoadedRun, ids: &[String], paths: &[PathBuf], opts: &StreamOptions) -> Result<Identity, PredictError> {
        let hash_file = |p: PathBuf| file_hash(&p).map_err(|source| PredictError::Read { path: p, source });
        let mut weights = hash_file(run.run.file(run_dir::MODEL))?;
        if run.knn.is_some() {
            weights.push_str(&hash_file(run.run.file(super::knn::INDEX))?);
        }
        let decoding = serde_json::to_string(&(&run.model_cfg, &run.thresholds, run.ontology.content_hash(), run.config.mode)).expect("configs serialise");
        let mut images = FNV_START;
        for (id, p) in ids.iter().zip(paths) {
            images = fnv1a(p.as_os_str().as_encoded_bytes(), fnv1a(id.as_bytes(), images) ^ 0x1f);
        }
        Ok(Identity {
            model: absolute(&run.run.path)?,
            weights,
            decoding: hex(fnv1a(decoding.as_bytes(), FNV_START)),
            images: hex(images),
            n_images: ids.len(),
            batch_size: opts.batch_size,
            device: format!("{:?}", run.vs.device()),
            explain: opts.explain.as_deref().map(absolute).transpose()?,
        })
    }

    /// What differs from `before`, in words, if anything.
    fn difference(&self, before: &Identity) -> Option<String> {
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| format!("--explain {}", p.display())).unwrap_or_else(|| "no --explain".into());
        if self.model != before.model {
            Some(format!("another run ({}, now {})", before.model.display(), self.model.display()))
        } else if self.weights != before.weights {
            Some("other weights (the run's model.safetensors has changed)".into())
        } else if self.decoding != before.decoding {
            Some("another decoding (the run's heads, thresholds or ontology, or --threshold / --ontology, differ)".into())
        } else if self.n_images != before.n_images || self.images != before.images {
            Some(format!("another image list ({} images then, {} now, or other ids or files)", before.n_images, self.n_images))
        } else if self.batch_size != before.batch_size {
            Some(format!("another --batch-size ({} then, {} now)", before.batch_size, self.batch_size))
        } else if self.device != before.device {
            Some(format!("another device ({} then, {} now)", before.device, self.device))
        } else if self.explain != before.explain {
            Some(format!("another explain file ({} then, {} now)", show(&before.explain), show(&self.explain)))
        } else {
            None
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf, PredictError> {
    std::path::absolute(p).map_err(|source| PredictError::Read { path: p.to_path_buf(), source })
}

/// The progress record (`OUT.progress.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProgressRecord {
    pub identity: Identity,
    /// Images finished: the first `done` of the list.
    pub done: usize,
    /// Bytes of `OUT.partial` holding their rows.
    pub out_bytes: u64,
    /// Bytes of `EXPLAIN.partial` holding their records.
    pub explain_bytes: u64,
}

/// How a streaming prediction went.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    pub n_images: usize,
    /// Images an interrupted prediction had finished (0 for a fresh one).
    pub resumed_from: usize,
    /// `--resume` was asked for but there was nothing to resume.
    pub nothing_to_resume: bool,
}

/// A partial output file, locked, and the bytes of finished rows in it.
struct Partial {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Partial {
    /// Open (create) `path`, locked exclusively when `lock` (refused while another process holds it).
    fn open(path: PathBuf, lock: bool) -> Result<Partial, PredictError> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|source| PredictError::Write { path: path.clone(), source })?;
        if lock {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Err(PredictError::InUse { path }),
                Err(std::fs::TryLockError::Error(source)) => return Err(PredictError::Write { path, source }),
            }
        }
        Ok(Partial { path, file, len: 0 })
    }

    /// Cut the file back to `len` bytes (refusing a shorter one) and append after them.
    fn cut_to(&mut self, len: u64) -> Result<(), PredictError> {
        use std::io::Seek;
        let write = |source| PredictError::Write { path: self.path.clone(), source };
        let found = self.file.metadata().map_err(write)?.len();
        if found < len {
            return Err(PredictError::ResumeDamaged { path: self.path.clone(), reason: format!("it holds {found} bytes but {len} were recorded as finished; it was changed after the interruption") });
        }
        self.file.set_len(len).and_then(|_| self.file.seek(std::io::SeekFrom::Start(len))).map_err(|source| PredictError::Write { path: self.path.clone(), source })?;
        self.len = len;
        Ok(())
    }

    /// Append `bytes` and flush them to disk.
    fn append(&mut self, bytes: &[u8]) -> Result<(), PredictError> {
        self.file.write_all(bytes).and_then(|_| self.file.sync_data()).map_err(|source| PredictError::Write { path: self.path.clone(), source })?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// Read the progress record at `path`, if there is one.
pub(crate) fn read_progress(path: &Path) -> Result<Option<ProgressRecord>, PredictError> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PredictError::Read { path: path.to_path_buf(), source }),
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| PredictError::ResumeDamaged { path: path.to_path_buf(), reason: format!("not a progress record ({e})") }),
    }
}

/// Write the progress record: a temporary file renamed over `path`. It is not flushed to disk:
/// after a power cut it may be an older record (the batches after it are then done again) or,
/// rarely, unreadable (then refused, and the prediction is started over).
fn write_progress(path: &Path, record: &ProgressRecord) -> Result<(), PredictError> {
    let tmp = with_suffix(path, ".tmp");
    let text = serde_json::to_string_pretty(record).expect("records serialise");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|source| PredictError::Write { path: path.to_path_buf(), source })
}

/// Predict `ids` (image files `paths`) with `run` into `opts.out` (and `opts.explain`), a batch
/// at a time; `events` sees each finished batch. See the module documentation for the files.
pub fn predict_into_files(run: &LoadedRun, ids: &[String], paths: Arc<Vec<PathBuf>>, opts: &StreamOptions, events: &dyn Events) -> Result<StreamSummary, PredictError> {
    let identity = Identity::of(run, ids, &paths, opts)?;
    crate::alloc::keep_freed_memory();
    let progress = progress_path(&opts.out);
    let previous = read_progress(&progress)?;
    let targets: Vec<&Path> = opts.explain.iter().map(PathBuf::as_path).chain([opts.out.as_path()]).collect();
    // a prediction stopped while renaming its finished files: the submission's partial file is gone
    let renaming = previous.as_ref().is_some_and(|p| p.done == p.identity.n_images) && !partial_path(&opts.out).exists();
    let mut out = if renaming { None } else { Some(Partial::open(partial_path(&opts.out), true)?) };
    let summary = StreamSummary { n_images: ids.len(), resumed_from: previous.as_ref().map_or(0, |p| p.done), nothing_to_resume: opts.resume && previous.is_none() };
    let (start, out_bytes, explain_bytes) = match (previous, opts.resume) {
        (Some(p), false) => return Err(PredictError::Interrupted { out: opts.out.clone(), done: p.done, total: p.identity.n_images, progress }),
        (Some(p), true) => {
            if let Some(what) = identity.difference(&p.identity) {
                return Err(PredictError::ResumeMismatch { progress, what });
            }
            (p.done, p.out_bytes, p.explain_bytes)
        }
        (None, _) => (0, 0, 0),
    };
    let Some(out) = out.as_mut() else {
        return finish(&targets, &progress).map(|_| summary);
    };
    out.cut_to(out_bytes)?;
    let mut explain = match &opts.explain {
        Some(e) => {
            let mut p = Partial::open(partial_path(e), false)?;
            p.cut_to(explain_bytes)?;
            Some(p)
        }
        None => None,
    };
    let abort_after: Option<usize> = std::env::var(ABORT_AFTER_ENV).ok().and_then(|v| v.parse().ok());
    let decoder = run.decoder();
    let t0 = Instant::now();
    let mut batches = 0;
    let mut record = ProgressRecord { identity, done: start, out_bytes, explain_bytes };
    run.for_each_probabilities(&paths, start, opts.batch_size, |indices, probs| -> Result<(), PredictError> {
        let sets = decoder.decide(&probs, &run.thresholds);
        let mut rows = Vec::new();
        let mut records = Vec::new();
        for (r, &i) in indices.iter().enumerate() {
            let cuis: Vec<String> = sets[r].iter().cloned().collect();
            write_clef2019_row(&mut rows, &ids[i], &cuis).expect("writing to memory");
            if explain.is_some() {
                let record = ExplainRecord::new(&ids[i], probs.row(r), &decoder, &run.thresholds, &run.ontology);
                writeln!(records, "{}", serde_json::to_string(&record).expect("records serialise")).expect("writing to memory");
            }
        }
        if let Some(e) = explain.as_mut() {
            e.append(&records)?;
        }
        out.append(&rows)?;
        batches += 1;
        if abort_after == Some(batches) {
            std::process::abort();
        }
        record.done = indices.last().map_or(record.done, |&i| i + 1);
        record.out_bytes = out.len;
        record.explain_bytes = explain.as_ref().map_or(0, |e| e.len);
        write_progress(&progress, &record)?;
        events.emit(Event::Tick(Tick { task: Task::Prediction, done: record.done, total: ids.len(), this_run: record.done - start, elapsed: t0.elapsed(), loss: None }));
        Ok(())
    })?;
    if start == ids.len() {
        events.emit(Event::Tick(Tick { task: Task::Prediction, done: start, total: ids.len(), this_run: 0, elapsed: t0.elapsed(), loss: None }));
    }
    drop(explain);
    finish(&targets, &progress).map(|_| summary)
}

/// Rename each target's partial file over it (the submission last), then remove the progress record.
fn finish(targets: &[&Path], progress: &Path) -> Result<(), PredictError> {
    for t in targets {
        let partial = partial_path(t);
        if partial.exists() {
            std::fs::rename(&partial, t).map_err(|source| PredictError::Write { path: t.to_path_buf(), source })?;
        }
    }
    std::fs::remove_file(progress).map_err(|source| PredictError::Write { path: progress.to_path_buf(), source })?;
    let _ = std::fs::remove_file(with_suffix(progress, ".tmp")); // left by a process killed while recording
    if let Some(dir) = targets.last().and_then(|t| t.parent()) {
        // the renames reach the disk with the directory (best effort)
        let _ = File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_files_are_cut_back_to_their_record_and_shorter_ones_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("sub.csv");
        assert_eq!(partial_path(&out), tmp.path().join("sub.csv.partial"));
        assert_eq!(progress_path(&out), tmp.path().join("sub.csv.progress.json"));
        std::fs::write(partial_path(&out), "a\tC1\nb\tC2\nhalf-writ").unwrap();
        let mut p = Partial::open(partial_path(&out), true).unwrap();
        p.cut_to(10).unwrap();
        // a second writer is refused while the first holds the file
        assert!(matches!(Partial::open(partial_path(&out), true), Err(PredictError::InUse { .. })));
        p.append(b"c\t\n").unwrap();
        assert_eq!(std::fs::read_to_string(partial_path(&out)).unwrap(), "a\tC1\nb\tC2\nc\t\n");
        let e = p.cut_to(100).err().unwrap().to_string();
        assert!(e.contains("sub.csv.partial") && e.contains("13 bytes but 100"), "{e}");
    }
}
