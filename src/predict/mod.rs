//! Prediction: a finished run loaded with everything that changes its predictions checked, batch
//! inference, the hierarchy-respecting [`Decoder`] and `--explain` records.
//!
//! Loading refuses, with a message that says what differs and how to proceed: a run that has not
//! finished training, a run whose `thresholds.json` is gone (unless one `--threshold` is given), a
//! run whose weights file is damaged, and an ontology other than the one the run was trained with
//! (unless `allow_ontology_change`). Every override in force is returned in [`LoadedRun::notes`]
//! so the command can print it.
pub mod export;
pub mod shard;
pub mod stream;

// batch inference, decoding, explain records and the kNN index live one floor down, in `infer`
// (training's validation uses them too); their old paths stay valid
pub use crate::infer::{decoder, explain, knn};
pub use crate::infer::batch::{for_each_batch, for_each_input, rows, store_rows};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;
use tch::{nn, Device};

pub use crate::infer::{Decoder, ExplainRecord};

use crate::data::augment::Pipeline;
use crate::data::dataset::{resolve_images, DatasetError};
use crate::data::decode::PipelineError;
use crate::data::images::ImageDir;
use crate::data::labels::{id_problem, LabelRow, SkipReport, Skipped};
use crate::data::loader::ImageSource;
use crate::eval::thresholds::Thresholds;
use crate::model::{Model, ModelConfig};
use crate::ontology::{Ontology, OntologyError};
use crate::train::run_dir::{self, short_tch_error, Provenance, RunDir, RunError};
use crate::run::preprocessing::Preprocessing;
use crate::train::{Mode, TrainConfig};

/// Why a run cannot predict, or an input to prediction is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{dir} has not finished training ({progress}); continue it with `conceptree train --resume {dir}`, or predict with its last saved weights and one global threshold: --allow-unfinished --threshold T")]
    Unfinished { dir: PathBuf, progress: String },
    #[error("{}: thresholds.json is missing, and without it every concept would be decided at 0.5 instead of its tuned threshold; restore the file, or pass --threshold T to decide every concept at T", dir.display())]
    NoThresholds { dir: PathBuf },
    #[error("{dir} was trained with another ontology (hash {trained}; {given} has {found}), and its predictions would change; leave out --ontology to use the run's own copy, or pass --allow-ontology-change")]
    OntologyChanged { dir: PathBuf, given: String, trained: String, found: String },
    #[error("{}: model.safetensors cannot be loaded ({reason}); the trained weights are missing or damaged: restore the file from a copy, or train the run again", dir.display())]
    Weights { dir: PathBuf, reason: String },
    #[error("--threshold {0}: must be a number in (0, 1]")]
    Threshold(f32),
    #[error("{file}:{line}: {message}")]
    IdFile { file: PathBuf, line: usize, message: String },
    #[error("{}: {message}", path.display())]
    ImageName { path: PathBuf, message: String },
    #[error("no images to predict in {0}")]
    NoImages(PathBuf),
    #[error(transparent)]
    Ontology(#[from] OntologyError),
    #[error(transparent)]
    Images(#[from] DatasetError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{} is being written by another conceptree process; wait for it to finish, or write to another file", path.display())]
    InUse { path: PathBuf },
    #[error("an interrupted prediction into {} is waiting ({done} of {total} images done, recorded in {}): add --resume to continue it, or delete {} and {} to start over", out.display(), progress.display(), progress.display(), stream::partial_path(out).display())]
    Interrupted { out: PathBuf, done: usize, total: usize, progress: PathBuf },
    #[error("{}: the interrupted prediction was made with {what}; resume it with the command it was started with, or delete {} and the .partial file beside it to start over", progress.display(), progress.display())]
    ResumeMismatch { progress: PathBuf, what: String },
    #[error("{}: cannot resume: {reason}; delete it and the other .partial/.progress.json files beside the output to start over", path.display())]
    ResumeDamaged { path: PathBuf, reason: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl crate::classify::Classify for PredictError {
    fn is_bad_input(&self) -> bool {
        match self {
            PredictError::Run(e) => e.is_bad_input(),
            PredictError::Ontology(e) => e.is_bad_input(),
            PredictError::Images(e) => e.is_bad_input(),
            PredictError::Pipeline(e) => e.is_bad_input(),
            PredictError::Unfinished { .. }
            | PredictError::NoThresholds { .. }
            | PredictError::OntologyChanged { .. }
            | PredictError::Weights { .. }
            | PredictError::Threshold(_)
            | PredictError::IdFile { .. }
            | PredictError::ImageName { .. }
            | PredictError::NoImages(_)
            | PredictError::InUse { .. }
            | PredictError::Interrupted { .. }
            | PredictError::ResumeMismatch { .. }
            | PredictError::ResumeDamaged { .. } => true,
            PredictError::Read { source, .. } => crate::classify::io_is_bad_input(false, source),
            PredictError::Write { source, .. } => crate::classify::io_is_bad_input(true, source),
            PredictError::Torch(_) => false,
        }
    }
}

/// How a run is loaded for prediction.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// An ontology file to use instead of the run's own copy (must have the same content).
    pub ontology: Option<PathBuf>,
    /// One threshold for every concept instead of the tuned ones.
    pub threshold: Option<f32>,
    /// Predict with an unfinished run's last checkpointed weights (needs `threshold`).
    pub allow_unfinished: bool,
    /// Predict with an ontology whose content differs from the run's.
    pub allow_ontology_change: bool,
}

/// A trained run loaded for prediction (a shared lock on its directory is held meanwhile).
pub struct LoadedRun {
    pub run: RunDir,
    pub config: TrainConfig,
    /// How an image becomes the model's input (`preprocessing.json`).
    pub preprocessing: Preprocessing,
    pub model_cfg: ModelConfig,
    pub ontology: Ontology,
    pub vs: nn::VarStore,
    pub model: Model,
    pub thresholds: Thresholds,
    /// Overrides and differences in force, for the user to see.
    pub notes: Vec<String>,
    /// A kNN run's index (its scores replace the model's heads).
    pub knn: Option<knn::KnnIndex>,
}

impl LoadedRun {
    /// Load the run in `dir` for prediction on `device`, checking everything that changes a prediction.
    pub fn open(dir: &Path, device: Device, opts: &LoadOptions) -> Result<LoadedRun, PredictError> {
        if let Some(t) = opts.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(PredictError::Threshold(t));
            }
        }
        let run = RunDir::open_for_reading(dir)?;
        let mut notes = Vec::new();
        let config = run_dir::read_config(&run)?;
        let preprocessing = Preprocessing::read(&run)?;
        let model_cfg: ModelConfig = run.read_json(run_dir::MODEL_CONFIG, "the run cannot be used without it")?;
        let provenance: Provenance = run.read_json(run_dir::PROVENANCE, "the run cannot be checked without it")?;
        if !run.is_finished() {
            if !(opts.allow_unfinished && opts.threshold.is_some()) {
                let progress = std::fs::read_to_string(run.file(run_dir::METRICS)).map(|m| format!("{} of {} epochs done", m.lines().count(), config.epochs)).unwrap_or_else(|_| "no epoch finished".into());
                return Err(PredictError::Unfinished { dir: dir.to_path_buf(), progress });
            }
            notes.push("the run has not finished training: predicting with its last saved weights (--allow-unfinished)".into());
        }
        let thresholds = match opts.threshold {
            Some(t) => {
                notes.push(format!("every concept decided at --threshold {t} (the run's tuned thresholds are not used)"));
                Thresholds::new(t)
            }
            None => match run.read_json::<Thresholds>(run_dir::THRESHOLDS, "") {
                Err(RunError::Missing { .. }) => return Err(PredictError::NoThresholds { dir: dir.to_path_buf() }),
                other => other?,
            },
        };
        let ontology = Self::ontology(&run, &config, &provenance, opts, &mut notes)?;
        let vs = nn::VarStore::new(device);
        let mut model = Model::new(&vs.root(), model_cfg.clone());
        let weights = run.file(run_dir::MODEL);
        if !weights.is_file() {
            return Err(PredictError::Weights { dir: dir.to_path_buf(), reason: "the file does not exist".into() });
        }
        let mut vs = vs;
        vs.load(&weights).map_err(|e| PredictError::Weights { dir: dir.to_path_buf(), reason: short_tch_error(&e) })?;
        // mixed precision as trained, on the same kind of device (a CUDA fp16 run predicts in fp32
        // on CPU: bf16 is only fast on CPUs with bf16 instructions, and that is the user's call at training)
        let amp = preprocessing.amp && device.is_cuda() == provenance.device.starts_with("Cuda");
        model.set_channels_last(&vs, preprocessing.memory_format.channels_last(device, amp));
        model.amp = amp;
        let knn = match config.mode {
            Mode::Knn => Some(knn::KnnIndex::load(&run.file(knn::INDEX), device).map_err(|e| PredictError::Weights { dir: dir.to_path_buf(), reason: format!("{}: {}", knn::INDEX, short_tch_error(&e)) })?),
            _ => None,
        };
        Ok(LoadedRun { run, config, preprocessing, model_cfg, ontology, vs, model, thresholds, notes, knn })
    }

    /// The ontology to decode with: the run's own copy (`ontology.tsv`), or the given file, which
    /// must have the content the run was trained with unless the change is allowed.
    fn ontology(run: &RunDir, config: &TrainConfig, provenance: &Provenance, opts: &LoadOptions, notes: &mut Vec<String>) -> Result<Ontology, PredictError> {
        let own = run.file(run_dir::ONTOLOGY);
        let (ontology, given) = match (&opts.ontology, own.is_file()) {
            (Some(p), _) => (Ontology::load(p)?, p.display().to_string()),
            (None, true) => (Ontology::load(&own)?, own.display().to_string()),
            // runs from before ontology.tsv was kept: the file the run names, or the built-in one
            (None, false) => match &config.ontology {
                Some(p) => (Ontology::load(p)?, p.display().to_string()),
                None => (Ontology::builtin(), "the built-in ontology".to_string()),
            },
        };
        let found = ontology.content_hash();
        if found != provenance.ontology_hash {
            if !opts.allow_ontology_change {
                return Err(PredictError::OntologyChanged { dir: run.path.clone(), given, trained: provenance.ontology_hash.clone(), found });
            }
            notes.push(format!("{given} differs from the ontology the run was trained with (--allow-ontology-change); decisions follow {given}"));
        } else if opts.ontology.is_none() {
            if let Some(p) = config.ontology.as_ref().filter(|p| p.is_file()) {
                if Ontology::load(p).map(|o| o.content_hash() != found).unwrap_or(true) {
                    notes.push(format!("{} has changed since training; predicting with the run's own copy ({})", p.display(), own.display()));
                }
            }
        }
        Ok(ontology)
    }

    /// The decoder of this run (hierarchy enforced for hierarchical runs).
    pub fn decoder(&self) -> Decoder {
        Decoder::new(&self.model_cfg, &self.ontology, self.config.mode.has_levels())
    }

    /// Concept probabilities for images, `[N, K]` in [`ModelConfig::concepts`] order.
    pub fn probabilities(&self, paths: &[PathBuf], batch: usize) -> Result<Array2<f32>, PredictError> {
        let mut out = Array2::<f32>::zeros((paths.len(), self.model_cfg.concepts().len()));
        self.for_each_probabilities(&Arc::new(paths.to_vec()), 0, batch, |indices, probs| {
            for (r, &i) in indices.iter().enumerate() {
                out.row_mut(i).assign(&probs.row(r));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Concept probabilities of `paths[start..]`, one batch of `batch` images at a time and in
    /// order: `on_batch` gets each batch's indices into `paths` and its probabilities `[B, K]`
    /// ([`ModelConfig::concepts`] order). Only a few batches are in memory at any time.
    pub(crate) fn for_each_probabilities(&self, paths: &Arc<Vec<PathBuf>>, start: usize, batch: usize, mut on_batch: impl FnMut(&[usize], Array2<f32>) -> Result<(), PredictError>) -> Result<(), PredictError> {
        let pipe = Pipeline { size: self.preprocessing.image_size, augment: None };
        let source = ImageSource::from(paths.clone());
        let order: Vec<usize> = (start..paths.len()).collect();
        let device = self.vs.device();
        for_each_input(&pipe, &source, order, batch, device, |indices, x| -> Result<(), PredictError> {
            let probs = match &self.knn {
                None => tch::no_grad(|| self.model.probabilities(&self.model.forward_t(x, false, false))),
                Some(index) => tch::no_grad(|| index.scores(&knn::embed(&self.model, x))),
            };
            on_batch(indices, rows(&probs)?)
        })
    }

    /// Probabilities `[N, K]` ([`ModelConfig::concepts`] order) and the trunk's embeddings
    /// `[N, C]` (those of the kNN baseline, [`knn::embedding_of`]) of `paths`, in one pass: what
    /// kNN fusion needs (`experiment compare`, `+knn`). Not for kNN runs, whose scores are votes.
    pub(crate) fn probabilities_and_embeddings(&self, paths: &[PathBuf], batch: usize) -> Result<(Array2<f32>, tch::Tensor), PredictError> {
        let pipe = Pipeline { size: self.preprocessing.image_size, augment: None };
        let source = ImageSource::from(Arc::new(paths.to_vec()));
        let mut probs = Array2::<f32>::zeros((paths.len(), self.model_cfg.concepts().len()));
        let mut parts: Vec<(usize, tch::Tensor)> = Vec::new();
        for_each_input(&pipe, &source, (0..paths.len()).collect(), batch, self.vs.device(), |indices, x| -> Result<(), PredictError> {
            let (p, e) = tch::no_grad(|| {
                let feats = self.model.features(x, false);
                (self.model.probabilities(&self.model.heads_forward(&feats, false)), knn::embedding_of(&feats).to_device(tch::Device::Cpu))
            });
            crate::infer::batch::store_rows(&mut probs, indices, &p)?;
            parts.push((indices[0], e));
            Ok(())
        })?;
        // batches are consecutive runs of indices
        parts.sort_by_key(|(first, _)| *first);
        let embeddings = tch::Tensor::cat(&parts.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), 0);
        Ok((probs, embeddings))
    }

    /// Probabilities and concept sets for images, with the run's thresholds.
    pub fn predict(&self, paths: &[PathBuf], batch: usize) -> Result<(Array2<f32>, Vec<BTreeSet<String>>), PredictError> {
        let probs = self.probabilities(paths, batch)?;
        let sets = self.decoder().decide(&probs, &self.thresholds);
        Ok((probs, sets))
    }
}

/// The images to predict: those an id or label file names (first column; a header `id` line is
/// skipped), else every image of the folder, sorted by id. Each is checked (exists, one file per
/// id, header decodes); with `skip_bad` a bad one is skipped and reported instead of failing.
/// An id the submission cannot carry ([`id_problem`]: an image `sp ace.jpg`) is refused the
/// same way, since evaluate and review would refuse the whole file for it.
/// Returns the ids and their image files, in order.
pub fn images_to_predict(images: &Path, ids: Option<&Path>, skip_bad: bool) -> Result<(Vec<String>, Vec<PathBuf>, SkipReport, ImageDir), PredictError> {
    let dir = ImageDir::open(images)?;
    let (rows, source) = match ids {
        Some(f) => (read_id_file(f)?, f.display().to_string()),
        // an ambiguous id is refused (or skipped with skip_bad) by resolve_images below
        None => (dir.ids().enumerate().map(|(i, id)| LabelRow { id: id.to_string(), cuis: vec![], line: i + 1 }).collect(), images.display().to_string()),
    };
    if rows.is_empty() {
        return Err(PredictError::NoImages(images.to_path_buf()));
    }
    let mut unfit = Vec::new();
    let mut fit = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(problem) = id_problem(&r.id) else {
            fit.push(r);
            continue;
        };
        if skip_bad {
            unfit.push(Skipped { line: r.line, id: Some(r.id), reason: format!("id a submission cannot carry: {problem}") });
            continue;
        }
        let why = format!("{problem}, which a submission (`id<TAB>CUI;CUI`) cannot carry: evaluate and review would refuse the whole file");
        return Err(match ids {
            Some(f) => PredictError::IdFile { file: f.to_path_buf(), line: r.line, message: format!("{why}; correct the id (and its image's name), or give --skip-bad to leave it out") },
            None => {
                let path = dir.find(&r.id).ok().flatten().unwrap_or_else(|| images.join(&r.id));
                let renamed = path.file_name().map(|n| n.to_string_lossy().replace(char::is_whitespace, "_")).unwrap_or_default();
                PredictError::ImageName { path, message: format!("{why}; rename the image so its name holds no whitespace (as '{}'), or give --skip-bad to leave it out", crate::cui::excerpt(&renamed, crate::cui::EXCERPT)) }
            }
        });
    }
    let mut rows = fit;
    let (found, mut skipped) = resolve_images(&rows, &source, &dir, skip_bad)?;
    if !unfit.is_empty() {
        unfit.append(&mut skipped.skipped);
        skipped.skipped = unfit;
    }
    let (ids, paths) = found.into_iter().map(|(i, p)| (std::mem::take(&mut rows[i].id), p)).unzip();
    Ok((ids, paths, skipped, dir))
}

/// Ids from an id or label file: the first tab- or comma-separated field of each line.
pub(crate) fn read_id_file(path: &Path) -> Result<Vec<LabelRow>, PredictError> {
    let text = crate::text::read_text(path).map_err(|source| match crate::text::text_error(&source) {
        Some(t) => PredictError::IdFile { file: path.to_path_buf(), line: t.line, message: t.problem.to_string() },
        None => RunError::Read { path: path.to_path_buf(), source }.into(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let id = line.split(['\t', ',']).next().unwrap_or("").trim();
        if id.is_empty() || (rows.is_empty() && id.eq_ignore_ascii_case("id")) {
            continue;
        }
        if let Some(first) = seen.insert(id.to_string(), i + 1) {
            let message = format!("image id '{}' appears again (first on line {first})", crate::cui::excerpt(id, crate::cui::EXCERPT));
            return Err(PredictError::IdFile { file: path.to_path_buf(), line: i + 1, message });
        }
        rows.push(LabelRow { id: id.to_string(), cuis: vec![], line: i + 1 });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;

    #[test]
    fn id_files_skip_headers_and_blank_lines_and_refuse_repeats() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("ids.csv");
        std::fs::write(&f, "\u{feff}ID,CUIs\nimg1,C0000001\n\nimg2\timg9\n").unwrap();
        let ids: Vec<(String, usize)> = read_id_file(&f).unwrap().into_iter().map(|r| (r.id, r.line)).collect();
        assert_eq!(ids, vec![("img1".into(), 2), ("img2".into(), 4)]);
        std::fs::write(&f, "a\nb\na\n").unwrap();
        let e = read_id_file(&f).unwrap_err().to_string();
        assert!(e.contains("ids.csv:3") && e.contains("first on line 1"), "{e}");
        // a Latin-1 byte: file, line and column
        std::fs::write(&f, b"a\nb\xe9\n").unwrap();
        let e = read_id_file(&f).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("ids.csv:2: byte 0xE9 at column 2"), "{e}");
    }
}
