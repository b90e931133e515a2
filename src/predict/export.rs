//! `conceptree export`: a trained run as a TorchScript module for Python pipelines.
//!
//! The module (`model.pt`) is traced from the run's model on CPU (`tch::CModule::create_by_tracing`,
//! weights frozen into it): a normalised float batch `[B, 3, S, S]` in, the concept probabilities
//! `[B, K]` out, in the run's concept order, computed exactly as `predict` computes them before
//! decoding (logit adjustment, softmax without "none" on single-label heads, the max-constraint
//! module, conditioning on the levels above, the run's precision). `model.json`
//! ([`ExportMeta`]) holds everything else needed to use it right: the preprocessing, every
//! concept with its head, level, threshold and ancestors, the thresholds as the run stores them,
//! the ontology's hash and the decoding rule in words and data. With `--examples DIR`, the
//! images of `DIR` are written as decoded, resized 8-bit pixels with the probabilities `predict`
//! gives them (`examples.json`), so a Python pipeline can check itself against conceptree.
//!
//! The saved module is loaded back and compared with the model before `model.json` is written
//! (written last: an export without it is unfinished).
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{CModule, Device, Kind, Tensor};

use super::{images_to_predict, LoadOptions, LoadedRun, PredictError};
use crate::data::augment::Pipeline;
use crate::data::decode::{decode_raw, resized_planes, PipelineError};
use crate::data::output::OutputDirError;
use crate::eval::thresholds::Thresholds;
use crate::model::{HeadKind, SingleLabelDecoding};
use crate::train::Mode;

/// The traced module.
pub(crate) const MODULE: &str = "model.pt";
/// What is needed to use it ([`ExportMeta`]).
pub(crate) const META: &str = "model.json";
/// The example images' description.
pub(crate) const EXAMPLES: &str = "examples.json";
const EXAMPLE_PIXELS: &str = "examples.pixels.u8";
const EXAMPLE_PROBS: &str = "examples.probabilities.f32";

/// Largest difference allowed between the saved module's probabilities and the model's.
pub(crate) const TOLERANCE: f64 = 1e-5;

/// The format `model.json` names for `model.pt`: the one there is (no option chooses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A module traced on CPU (`torch.jit.load`).
    Torchscript,
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The run directory.
    pub model: PathBuf,
    /// The export folder (new or empty, unless `force`).
    pub out: PathBuf,
    /// A folder of images to write as examples (with their probabilities).
    pub examples: Option<PathBuf>,
    /// Write into a non-empty folder (files of an earlier export are replaced).
    pub force: bool,
}

/// Why a run cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Predict(#[from] PredictError),
    #[error(transparent)]
    Output(#[from] OutputDirError),
    #[error("{}: a kNN run (--mode knn) cannot be exported: its scores are votes of its training images' embeddings (knn.safetensors), not a network a module can hold; export a flat, hierarchical or hybrid run", dir.display())]
    Knn { dir: PathBuf },
    #[error("{}: --out is the run directory itself, whose model.json the export would replace; choose another folder", out.display())]
    IntoRun { out: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{}: tracing the model failed: {reason}", dir.display())]
    Trace { dir: PathBuf, reason: String },
    #[error("{}: the saved module's probabilities differ from the model's by {diff:.2e} (allowed {TOLERANCE:e}) on {what}; the export is not faithful and model.json was not written", path.display())]
    Mismatch { path: PathBuf, diff: f64, what: String },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl crate::classify::Classify for ExportError {
    fn is_bad_input(&self) -> bool {
        match self {
            ExportError::Predict(e) => e.is_bad_input(),
            ExportError::Output(e) => e.is_bad_input(),
            ExportError::Pipeline(e) => e.is_bad_input(),
            ExportError::Knn { .. } | ExportError::IntoRun { .. } => true,
            ExportError::Write { source, .. } => crate::classify::io_is_bad_input(true, source),
            ExportError::Trace { .. } | ExportError::Mismatch { .. } => false,
        }
    }
}

/// `model.json`: how to use `model.pt`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExportMeta {
    pub format: ExportFormat,
    pub module: &'static str,
    pub conceptree_version: &'static str,
    /// The run directory exported (absolute).
    pub run: PathBuf,
    pub mode: Mode,
    /// The content hash of the ontology the run was trained with (its `provenance.json`).
    pub ontology_hash: String,
    /// The arithmetic the module does: "fp32", or "bf16 autocast" for a run trained with `--amp`
    /// on CPU (the casts are part of the traced graph).
    pub precision: &'static str,
    pub input: TensorSpec,
    pub output: TensorSpec,
    pub preprocessing: Preprocessing,
    pub heads: Vec<HeadMeta>,
    /// Every output column, in order.
    pub concepts: Vec<ConceptMeta>,
    /// The run's thresholds as stored (concept > level > global); each concept's own is in `concepts`.
    pub thresholds: Thresholds,
    pub decoding: Decoding,
}

/// A tensor's shape (`"B"` for the batch) and type, and what it holds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TensorSpec {
    pub shape: Vec<serde_json::Value>,
    pub dtype: &'static str,
    pub meaning: String,
}

/// From an image file to one `[3, S, S]` input.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Preprocessing {
    pub image_size: u32,
    /// Decoding and colour, in words.
    pub colour: &'static str,
    /// Resizing, in words.
    pub resize: &'static str,
    /// `x[c] = (v / 255 - mean[c]) / std[c]`, in words.
    pub normalise: &'static str,
    /// Per channel (R, G, B).
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// One head: its kind and its columns `start..end` of the output.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HeadMeta {
    pub name: String,
    pub kind: HeadKind,
    pub start: usize,
    pub end: usize,
    /// How many of its concepts keep their score at decoding when it is a multi-label head over a
    /// single-valued level (`--level-heads sigmoid`) or a calibrated single-label head: 1, or 2 on
    /// plane and view with `--single-valued second`; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,
}

/// One output column.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConceptMeta {
    pub cui: String,
    /// Its name in the run's ontology.
    pub name: Option<String>,
    pub head: String,
    /// Its ontology level (`rest` for a hybrid model's residual head), which names its level threshold.
    pub level: Option<String>,
    /// The threshold it is decided at (its own, else its level's, else the global one).
    pub threshold: f32,
    /// Columns of its ancestors among the model's concepts (used by the hierarchical decoder).
    pub ancestors: Vec<usize>,
}

/// The rule from probabilities to concepts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Decoding {
    /// Whether the hierarchy is enforced (hierarchical and hybrid runs); otherwise thresholds only.
    pub hierarchy: bool,
    /// How single-label heads are decided when the hierarchy is enforced.
    pub single_label: SingleLabelDecoding,
    /// The steps, in order, in words.
    pub steps: Vec<String>,
}

/// `examples.json`: images written as the module's raw input and the probabilities `predict` gives.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Examples {
    pub ids: Vec<String>,
    /// The decoded, resized 8-bit pixels, `[N, 3, S, S]` (grey images repeated on 3 channels);
    /// normalised as `preprocessing` says, they are the module's input.
    pub pixels: ExampleFile,
    /// What `conceptree predict` computes for them, `[N, K]` little-endian float32.
    pub probabilities: ExampleFile,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExampleFile {
    pub file: &'static str,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub concepts: usize,
    pub examples: usize,
    /// The largest difference between the saved module's probabilities and the model's.
    pub max_diff: f64,
    pub files: Vec<PathBuf>,
}

/// Export the run `cfg.model` into `cfg.out` (see the module documentation).
pub fn export(cfg: &ExportConfig) -> Result<ExportSummary, ExportError> {
    let mut run = LoadedRun::open(&cfg.model, Device::Cpu, &LoadOptions::default())?;
    if run.knn.is_some() {
        return Err(ExportError::Knn { dir: cfg.model.clone() });
    }
    if cfg.out.canonicalize().is_ok_and(|o| cfg.model.canonicalize().is_ok_and(|m| o == m)) {
        return Err(ExportError::IntoRun { out: cfg.out.clone() });
    }
    crate::data::output::prepare(&cfg.out, cfg.force)?;
    // frozen weights become constants of the traced graph
    run.vs.freeze();
    let s = run.preprocessing.image_size as i64;
    let trace_err = |e: tch::TchError| ExportError::Trace { dir: cfg.model.clone(), reason: crate::run::dir::short_tch_error(&e) };
    let eager = |x: &Tensor| tch::no_grad(|| run.model.probabilities(&run.model.forward_t(x, false, false)));
    let example = Tensor::randn([2, 3, s, s], (Kind::Float, Device::Cpu));
    let module = CModule::create_by_tracing("conceptree", "forward", &[example], &mut |inputs| vec![eager(&inputs[0])]).map_err(trace_err)?;
    let module_path = cfg.out.join(MODULE);
    let tmp = cfg.out.join(format!(".{MODULE}.tmp"));
    module.save(&tmp).map_err(trace_err)?;
    std::fs::rename(&tmp, &module_path).map_err(|source| ExportError::Write { path: module_path.clone(), source })?;
    let _ = std::fs::remove_file(cfg.out.join(META)); // an earlier export's description no longer applies

    // the saved module, loaded back, against the model: another batch size, and the examples
    let saved = CModule::load_on_device(&module_path, Device::Cpu).map_err(trace_err)?;
    let mut max_diff = 0f64;
    let mut compare = |x: &Tensor, what: &str| -> Result<(), ExportError> {
        let got = tch::no_grad(|| saved.forward_ts(&[x])).map_err(trace_err)?;
        let diff = f64::try_from((got - eager(x)).abs().max()).map_err(trace_err)?;
        max_diff = max_diff.max(diff);
        if diff.is_nan() || diff > TOLERANCE {
            return Err(ExportError::Mismatch { path: module_path.clone(), diff, what: what.to_string() });
        }
        Ok(())
    };
    compare(&Tensor::randn([3, 3, s, s], (Kind::Float, Device::Cpu)), "a random batch of 3")?;
    let mut files = vec![module_path.clone()];
    let mut n_examples = 0;
    if let Some(dir) = &cfg.examples {
        let (ex, inputs) = write_examples(&run, dir, &cfg.out)?;
        compare(&inputs, "the example images")?;
        n_examples = ex.ids.len();
        let path = cfg.out.join(EXAMPLES);
        write_json(&path, &ex)?;
        files.extend([cfg.out.join(EXAMPLE_PIXELS), cfg.out.join(EXAMPLE_PROBS), path]);
    }
    let meta = describe(&run)?;
    let path = cfg.out.join(META);
    write_json(&path, &meta)?;
    files.push(path);
    Ok(ExportSummary { concepts: meta.concepts.len(), examples: n_examples, max_diff, files })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(value).expect("export files serialise");
    crate::run::dir::write_atomic(path, |tmp| std::fs::write(tmp, text)).map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

/// The images of `dir` as 8-bit pixels and their probabilities, written into `out`; returns their
/// description and the normalised inputs `[N, 3, S, S]` the model saw.
fn write_examples(run: &LoadedRun, dir: &Path, out: &Path) -> Result<(Examples, Tensor), ExportError> {
    let (ids, paths, _, _) = images_to_predict(dir, None, false)?;
    let size = run.preprocessing.image_size;
    let pipe = Pipeline { size, augment: None };
    let n = (size * size) as usize;
    let mut pixels = Vec::with_capacity(ids.len() * 3 * n);
    let mut inputs = vec![0f32; ids.len() * pipe.image_len()];
    for (p, input) in paths.iter().zip(inputs.chunks_mut(pipe.image_len())) {
        let planes = resized_planes(&decode_raw(p, None)?, size);
        for ch in 0..3 {
            pixels.extend_from_slice(&planes[if planes.len() == 1 { 0 } else { ch }]);
        }
        // as the loader normalises (no augmentation draws from the generator)
        pipe.finish_planes(&planes, &mut crate::data::augment::image_rng(0, 0, 0), input);
    }
    let probs = run.probabilities(&paths, 64)?;
    let k = probs.ncols();
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(|source| ExportError::Write { path, source })
    };
    write(EXAMPLE_PIXELS, &pixels)?;
    write(EXAMPLE_PROBS, &probs.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    let x = Tensor::from_slice(&inputs).view([ids.len() as i64, 3, size as i64, size as i64]);
    let n_img = ids.len();
    let ex = Examples {
        ids,
        pixels: ExampleFile { file: EXAMPLE_PIXELS, shape: vec![n_img, 3, size as usize, size as usize], dtype: "uint8" },
        probabilities: ExampleFile { file: EXAMPLE_PROBS, shape: vec![n_img, k], dtype: "float32 (little-endian)" },
    };
    Ok((ex, x))
}

/// `model.json` of `run`.
fn describe(run: &LoadedRun) -> Result<ExportMeta, ExportError> {
    let decoder = run.decoder();
    let thresholds = decoder.thresholds(&run.thresholds);
    let concepts: Vec<ConceptMeta> = (0..decoder.concepts.len())
        .map(|k| ConceptMeta {
            cui: decoder.concepts[k].clone(),
            name: run.ontology.get(&decoder.concepts[k]).map(|c| c.name.clone()),
            head: decoder.head_of[k].clone(),
            level: decoder.levels[k].clone(),
            threshold: thresholds[k],
            ancestors: decoder.ancestors(k).to_vec(),
        })
        .collect();
    let heads = run.model_cfg.heads.iter().zip(decoder.heads()).map(|(h, (kind, r))| HeadMeta { name: h.name.clone(), kind: *kind, start: r.start, end: r.end, keep: decoder.keep_of(r) }).collect();
    let size = run.preprocessing.image_size;
    let k = concepts.len();
    let hierarchy = decoder.enforce;
    let provenance: crate::run::dir::Provenance = run.run.read_json(crate::run::names::PROVENANCE, "the run cannot be checked without it").map_err(PredictError::from)?;
    Ok(ExportMeta {
        format: ExportFormat::Torchscript,
        module: MODULE,
        conceptree_version: env!("CARGO_PKG_VERSION"),
        run: std::path::absolute(&run.run.path).unwrap_or_else(|_| run.run.path.clone()),
        mode: run.config.mode,
        ontology_hash: provenance.ontology_hash,
        precision: if run.model.amp { "bf16 autocast" } else { "fp32" },
        input: TensorSpec { shape: vec!["B".into(), 3.into(), size.into(), size.into()], dtype: "float32", meaning: "a batch of images preprocessed as `preprocessing` says (any memory format)".into() },
        output: TensorSpec {
            shape: vec!["B".into(), k.into()],
            dtype: "float32",
            meaning: format!(
                "each concept's probability, columns in `concepts` order: {}; logit adjustment (calibration) already applied. These are the probabilities `conceptree predict --explain` writes, before decoding",
                HeadKind::ALL.map(|kind| kind.behaviour().describe_probabilities()).join(", ")
            ),
        },
        preprocessing: Preprocessing {
            image_size: size,
            colour: "decode the file (JPEG or PNG) to 8 bits per channel; a grey image (with or without alpha, 8 or 16 bit) becomes one grey plane, every other image RGB (alpha dropped, not blended); the grey plane is repeated on the three channels",
            resize: "the whole image to image_size x image_size, without cropping and without keeping the aspect ratio, by a bilinear (triangle) filter whose support widens with the shrink factor (antialiased, as Pillow's BILINEAR), rounded to 8 bits; an image already that size is not resampled",
            normalise: "x[c] = (v / 255 - mean[c]) / std[c] for each 8-bit value v of channel c (RGB order), channels first",
            mean: run.preprocessing.mean,
            std: run.preprocessing.std,
        },
        heads,
        concepts,
        thresholds: run.thresholds.clone(),
        decoding: Decoding { hierarchy, single_label: decoder.single_label(), steps: steps(hierarchy, decoder.single_label()) },
    })
}

/// The decoding rule in words (what [`super::Decoder`] does; each head kind words its own part,
/// [`crate::model::HeadBehaviour`]).
fn steps(hierarchy: bool, single_label: SingleLabelDecoding) -> Vec<String> {
    let threshold = "threshold: a concept is predicted when its score is >= its `threshold` (compared in float32)";
    if !hierarchy {
        return vec![format!("{threshold}; a concept's score is its probability. Nothing else: the hierarchy is not enforced for this run")];
    }
    // each kind's step, in the decoder's order: the kinds whose concepts exclude each other
    // (their arg-max) before the single-valued groups of the others
    let mut kinds = HeadKind::ALL;
    kinds.sort_by_key(|kind| !kind.behaviour().exclusive());
    let mut steps = vec!["cap (max-constraint): a concept's score is the smallest of its own probability and its ancestors' probabilities (`ancestors`, columns of the output), so a child never outscores its parent".to_string()];
    steps.extend(kinds.map(|kind| kind.behaviour().describe_decoding(single_label).to_string()));
    steps.push(threshold.into());
    steps.push("closure: every ancestor (`ancestors`) of a concept predicted in step 4 is predicted too; the result is closed under the hierarchy and has at most one concept per single-label head".into());
    steps
}
