//! Training: one loop for flat and hierarchical models, driven by a typed stage schedule.
//!
//! A run directory holds `config.json` (all options resolved), `model.json` (the
//! [`ModelConfig`]: trunk, heads and their concepts), `schedule.json`, `split.json` (train/val
//! ids), `metrics.jsonl` (one line per epoch), `model.safetensors` (written atomically after
//! every epoch), `thresholds.json` (tuned on validation) and `provenance.json` (versions).
pub mod config;
pub mod infer;
pub mod optim;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Reduction, Tensor};

use optim::{Adam, GradScaler};

pub use config::{build_schedule, ClassWeights, DeviceChoice, HierSchedule, Mode, Schedule, Stage, Strategy, TrainConfig};
use infer::Decoder;

use crate::data::dataset::{balanced_pos_weights, read_groups, split_train_val, Dataset, DatasetError, LabelSpace};
use crate::data::labels::{read_labels, LabelError, ParseOptions};
use crate::data::cache::{CacheError, ImageCache};
use crate::data::pipeline::{load_batch, ImageSource, Loader, Pipeline, PipelineError, TensorLoader};
use crate::eval::metrics::imageclef_f1;
use crate::eval::thresholds::{tune, Thresholds, TuneMode};
use crate::model::{has_prefix, weights, HeadConfig, HeadKind, HeadSpec, Model, ModelConfig};
use crate::ontology::{Level, Ontology};

/// Training failures. Input problems map to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Weights(#[from] weights::WeightsError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("loss became {value} at stage '{stage}', epoch {epoch}, step {step}; the last good checkpoint is kept in {run}")]
    NonFinite { value: f64, stage: String, epoch: usize, step: usize, run: PathBuf },
    #[error("run directory {0}: {1}")]
    Run(PathBuf, String),
}

impl TrainError {
    /// True when the user's input or options are at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Config(_) | Self::Labels(_) | Self::Dataset(_) | Self::Pipeline(_) | Self::Cache(_) | Self::Weights(_) | Self::Run(..))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Write `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let s = serde_json::to_string_pretty(value).expect("serialisable");
    write_atomic(path, s.as_bytes())
}

/// Resolve the device choice.
pub fn resolve_device(d: DeviceChoice) -> Result<Device, TrainError> {
    match d {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(TrainError::Config("--device cuda asked for, but libtorch sees no CUDA device (see `conceptree doctor`)".into())),
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

/// Per-head training targets for a dataset.
enum HeadTargets {
    Multi(Vec<f32>, usize),
    Single(Vec<i64>),
}

impl HeadTargets {
    fn build(spec: &HeadSpec, labels: &[BTreeSet<String>]) -> HeadTargets {
        let space = LabelSpace { concepts: spec.concepts.clone(), counts: vec![0; spec.concepts.len()] };
        match spec.kind {
            HeadKind::MultiLabel => HeadTargets::Multi(space.multi_hot(labels), spec.concepts.len()),
            HeadKind::SingleLabel => HeadTargets::Single(
                labels
                    .iter()
                    .map(|set| spec.concepts.iter().position(|c| set.contains(c)).unwrap_or(spec.concepts.len()) as i64)
                    .collect(),
            ),
        }
    }

    fn batch(&self, idx: &[usize], device: Device) -> Tensor {
        match self {
            HeadTargets::Multi(v, k) => {
                let rows: Vec<f32> = idx.iter().flat_map(|&i| v[i * k..(i + 1) * k].iter().copied()).collect();
                Tensor::from_slice(&rows).view([idx.len() as i64, *k as i64]).to_device(device)
            }
            HeadTargets::Single(v) => {
                let rows: Vec<i64> = idx.iter().map(|&i| v[i]).collect();
                Tensor::from_slice(&rows).to_device(device)
            }
        }
    }

    /// Balanced class weights for this head's loss.
    fn weights(&self, spec: &HeadSpec) -> Vec<f32> {
        match self {
            HeadTargets::Multi(v, k) => {
                let counts: Vec<usize> = (0..*k).map(|j| v.iter().skip(j).step_by(*k).filter(|x| **x > 0.5).count()).collect();
                balanced_pos_weights(&counts)
            }
            HeadTargets::Single(v) => {
                let n = spec.concepts.len() + 1;
                let mut counts = vec![0usize; n];
                v.iter().for_each(|&c| counts[c as usize] += 1);
                // sklearn "balanced" over classes present: N / (C * n_c)
                let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
                let total = v.len() as f64;
                counts.iter().map(|&c| if c == 0 { 1.0 } else { (total / (present * c as f64)) as f32 }).collect()
            }
        }
    }
}

/// Head specs for `cfg` from the training labels.
pub fn head_specs(cfg: &TrainConfig, train: &Dataset, ontology: &Ontology) -> Result<Vec<HeadSpec>, TrainError> {
    let counts = train.concept_counts();
    match cfg.mode {
        Mode::Flat => {
            let space = LabelSpace::top_k(&counts, cfg.top_k, cfg.min_count);
            if space.is_empty() {
                return Err(TrainError::Config(format!("no concept occurs on at least {} training images", cfg.min_count)));
            }
            Ok(vec![HeadSpec { name: "flat".into(), concepts: space.concepts, kind: HeadKind::MultiLabel }])
        }
        Mode::Hierarchical => {
            let mut specs = Vec::new();
            for &level in &cfg.levels {
                let mut concepts: Vec<(String, usize)> = counts
                    .iter()
                    .filter(|(c, &n)| n >= cfg.min_count.max(1) && ontology.level_of(c) == Some(level))
                    .map(|(c, &n)| (c.clone(), n))
                    .collect();
                concepts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                if concepts.is_empty() {
                    eprintln!("note: no training concept on level '{level}'; that head is left out");
                    continue;
                }
                let set: BTreeSet<&str> = concepts.iter().map(|(c, _)| c.as_str()).collect();
                let max_per_image = train.labels.iter().map(|l| l.iter().filter(|c| set.contains(c.as_str())).count()).max().unwrap_or(0);
                let kind = if max_per_image <= 1 { HeadKind::SingleLabel } else { HeadKind::MultiLabel };
                specs.push(HeadSpec { name: level.to_string(), concepts: concepts.into_iter().map(|(c, _)| c).collect(), kind });
            }
            if specs.is_empty() {
                return Err(TrainError::Config(format!(
                    "none of the levels {:?} has a concept in the training labels (run `conceptree ontology map --labels ...`)",
                    cfg.levels.iter().map(|l| l.to_string()).collect::<Vec<_>>()
                )));
            }
            Ok(specs)
        }
    }
}

/// Result of [`train`].
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub run: PathBuf,
    pub n_train: usize,
    pub n_val: usize,
    pub concepts: usize,
    pub val_f1_at_half: f64,
    pub val_f1_tuned: f64,
    pub seconds: f64,
    pub skipped: usize,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub stage: String,
    /// Mean loss of the heads trained in this stage (all heads outside a stepwise schedule)...
    pub train_loss: f64,
    /// ...and of the same heads on the validation images, so the two compare.
    pub val_loss: f64,
    pub val_imageclef_f1: f64,
    pub images_per_second: f64,
    pub seconds: f64,
}

/// Train a model as configured; everything is written to `cfg.out`.
pub fn train(cfg: &TrainConfig, ontology: &Ontology) -> Result<TrainSummary, TrainError> {
    run_training(cfg, ontology, false)
}

/// Continue the interrupted run in `dir` from its last checkpoint (`checkpoint.safetensors`).
/// With a fixed seed on CPU the result is bitwise the same as an uninterrupted run.
pub fn resume(dir: &Path, ontology: &Ontology) -> Result<TrainSummary, TrainError> {
    let text = std::fs::read_to_string(dir.join("config.json"))
        .map_err(|e| TrainError::Run(dir.to_path_buf(), format!("cannot read config.json: {e} (is this a conceptree run directory?)")))?;
    let mut cfg: TrainConfig = serde_json::from_str(&text).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("config.json: {e}")))?;
    cfg.out = dir.to_path_buf();
    run_training(&cfg, ontology, true)
}


/// Name of the per-epoch checkpoint (model + optimizer + progress in one file, renamed atomically).
pub const CHECKPOINT: &str = "checkpoint.safetensors";

fn run_training(cfg: &TrainConfig, ontology: &Ontology, resuming: bool) -> Result<TrainSummary, TrainError> {
    cfg.validate().map_err(TrainError::Config)?;
    let t0 = Instant::now();
    let device = resolve_device(cfg.device)?;
    tch::manual_seed(cfg.seed as i64);
    std::fs::create_dir_all(&cfg.out).map_err(io_err(&cfg.out))?;
    // Fail on an unwritable run directory before any work starts.
    write_atomic(&cfg.out.join(".write-test"), b"ok")?;
    let _ = std::fs::remove_file(cfg.out.join(".write-test"));
    if !resuming && (cfg.out.join("model.safetensors").exists() || cfg.out.join(CHECKPOINT).exists()) {
        return Err(TrainError::Run(cfg.out.clone(), "already holds a model; choose another --out, remove it, or continue it with --resume".into()));
    }

    // ---- data
    let opts = ParseOptions { skip_bad: cfg.skip_bad, ..Default::default() };
    let (rows, mut skipped) = read_labels(&cfg.train_labels, opts)?;
    let (full, img_skips) = Dataset::open(&rows, &cfg.train_labels.display().to_string(), &cfg.images, cfg.skip_bad)?;
    skipped.merge(img_skips);
    let (train_ds, val_ds) = match &cfg.val_labels {
        Some(v) => {
            let (vrows, vskip) = read_labels(v, opts)?;
            skipped.merge(vskip);
            let (vds, vimg) = Dataset::open(&vrows, &v.display().to_string(), &cfg.images, cfg.skip_bad)?;
            skipped.merge(vimg);
            (full, vds)
        }
        None => {
            let groups = cfg.groups.as_deref().map(read_groups).transpose()?;
            let (tr, va) = split_train_val(&full.ids, cfg.val_split, cfg.seed, groups.as_ref());
            (full.subset(&tr), full.subset(&va))
        }
    };
    if !skipped.is_empty() {
        eprint!("{skipped}");
    }
    if val_ds.is_empty() || train_ds.is_empty() {
        return Err(TrainError::Config(format!("split left {} training and {} validation images", train_ds.len(), val_ds.len())));
    }
    let train_ds = if cfg.max_train_images > 0 && train_ds.len() > cfg.max_train_images {
        train_ds.subset(&(0..cfg.max_train_images).collect::<Vec<_>>())
    } else {
        train_ds
    };

    // ---- model
    let model_cfg = if resuming {
        let text = std::fs::read_to_string(cfg.out.join("model.json")).map_err(io_err(&cfg.out))?;
        serde_json::from_str::<ModelConfig>(&text).map_err(|e| TrainError::Run(cfg.out.clone(), format!("model.json: {e}")))?
    } else {
        ModelConfig {
            trunk: cfg.trunk,
            head: HeadConfig::for_trunk(cfg.trunk),
            heads: head_specs(cfg, &train_ds, ontology)?,
            condition_on_previous: cfg.condition_on_previous,
        }
    };
    let specs = model_cfg.heads.clone();
    let mut cfg = cfg.clone();
    let predicts_laterality = model_cfg.concepts().iter().any(|c| ontology.level_of(c) == Some(Level::Laterality));
    if let Some(a) = cfg.augment.as_mut() {
        if a.hflip && predicts_laterality {
            eprintln!("note: horizontal flips are turned off because the model predicts laterality (a flip swaps left and right)");
            a.hflip = false;
        }
    }
    let cfg = cfg;
    let vs = nn::VarStore::new(device);
    let mut model = Model::new(&vs.root(), model_cfg.clone());
    if let (Some(w), false) = (&cfg.weights, resuming) {
        let rep = weights::load_trunk_weights(&vs, w)?;
        eprintln!("loaded {} trunk tensors from {} ({} ignored)", rep.loaded, w.display(), rep.ignored);
    }
    let channels_last = cfg.memory_format.channels_last(device, cfg.amp);
    model.set_channels_last(&vs, channels_last);
    model.amp = cfg.amp;
    let model = model;
    // fp16 needs loss scaling against underflowing gradients; bf16 has fp32's exponent range
    let scaled = cfg.amp && device.is_cuda();
    let precision = crate::model::autocast::precision_label(device, cfg.amp);
    let memory_format = if channels_last { "channels-last" } else { "contiguous" };
    let head_names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let schedule = build_schedule(&cfg, &head_names);

    // ---- run directory
    let mut done = Progress::default();
    if resuming {
        done = load_checkpoint(&vs, &cfg.out)?;
        let split: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cfg.out.join("split.json")).map_err(io_err(&cfg.out))?)
            .map_err(|e| TrainError::Run(cfg.out.clone(), format!("split.json: {e}")))?;
        if split["train"] != serde_json::json!(train_ds.ids) || split["val"] != serde_json::json!(val_ds.ids) {
            return Err(TrainError::Run(cfg.out.clone(), "the labels or images changed since the run started (split differs); cannot resume".into()));
        }
        eprintln!("resuming {} after epoch {}", cfg.out.display(), done.completed_epochs);
    }
    write_json(&cfg.out.join("config.json"), &cfg)?;
    write_json(&cfg.out.join("model.json"), &model_cfg)?;
    write_json(&cfg.out.join("schedule.json"), &schedule)?;
    write_json(&cfg.out.join("split.json"), &serde_json::json!({"train": train_ds.ids, "val": val_ds.ids}))?;
    write_json(
        &cfg.out.join("provenance.json"),
        &Provenance {
            conceptree_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: option_env!("CONCEPTREE_GIT_COMMIT").map(String::from),
            libtorch: if tch::Cuda::is_available() {
                format!("2.11.0 (tch 0.24.0; cuDNN {}, CUDA runtime {})", tch::utils::version_cudnn(), tch::utils::version_cudart())
            } else {
                "2.11.0 (tch 0.24.0; CPU)".into()
            },
            cuda_available: tch::Cuda::is_available(),
            device: format!("{device:?}"),
            ontology_hash: ontology.content_hash(),
            precision: precision.into(),
            memory_format: memory_format.into(),
        },
    )?;
    if !skipped.is_empty() {
        write_json(&cfg.out.join("skipped.json"), &skipped)?;
    }
    eprintln!(
        "training {} model: trunk {}, {} heads ({}), {} concepts; {} train / {} val images; device {:?}",
        match cfg.mode { Mode::Flat => "flat", Mode::Hierarchical => "hierarchical" },
        cfg.trunk,
        specs.len(),
        specs.iter().map(|s| format!("{}:{}{}", s.name, s.concepts.len(), if s.kind == HeadKind::SingleLabel { "+none" } else { "" })).collect::<Vec<_>>().join(", "),
        model_cfg.concepts().len(),
        train_ds.len(),
        val_ds.len(),
        device
    );
    eprintln!("precision {precision}, memory format {memory_format}");
    eprint!("schedule:\n{schedule}");

    let train_targets: Vec<HeadTargets> = specs.iter().map(|s| HeadTargets::build(s, &train_ds.labels)).collect();
    let val_targets: Vec<HeadTargets> = specs.iter().map(|s| HeadTargets::build(s, &val_ds.labels)).collect();
    let class_weights: Vec<Option<Tensor>> = specs
        .iter()
        .zip(&train_targets)
        .map(|(s, t)| match cfg.class_weights {
            ClassWeights::Balanced => Some(Tensor::from_slice(&t.weights(s)).to_device(device)),
            ClassWeights::None => None,
        })
        .collect();
    let losses = Losses { specs: &specs, weights: &class_weights };

    // images from their files, or from a cache of them decoded and resized (`conceptree data cache`)
    let image_cache = cfg.image_cache.as_deref().map(ImageCache::open).transpose()?.map(Arc::new);
    let source = |paths: &[PathBuf]| -> Result<ImageSource, TrainError> {
        let paths = Arc::new(paths.to_vec());
        Ok(match &image_cache {
            Some(c) => ImageSource::cached(paths, c.clone(), cfg.image_size)?,
            None => paths.into(),
        })
    };
    let (train_src, val_src) = (source(&train_ds.paths)?, source(&val_ds.paths)?);
    if let Some(c) = &image_cache {
        eprintln!("images from the cache {} ({} entries, {}x{})", c.dir.display(), c.entries.len(), c.size, c.size);
    }
    let train_pipe = Pipeline { size: cfg.image_size, augment: cfg.augment };
    let eval_pipe = Pipeline { size: cfg.image_size, augment: None };
    let metrics_path = cfg.out.join("metrics.jsonl");
    // Keep exactly the lines of the completed epochs (a killed run may have written one more).
    let kept: String = std::fs::read_to_string(&metrics_path).unwrap_or_default().lines().take(done.completed_epochs).map(|l| format!("{l}\n")).collect();
    std::fs::write(&metrics_path, kept).map_err(io_err(&metrics_path))?;
    let mut metrics_file = std::fs::OpenOptions::new().append(true).open(&metrics_path).map_err(io_err(&metrics_path))?;
    let decoder = Decoder::new(&model_cfg, ontology, cfg.mode == Mode::Hierarchical);
    let val_gt: BTreeMap<String, BTreeSet<String>> = val_ds.ids.iter().cloned().zip(val_ds.labels.iter().cloned()).collect();

    let mut epoch_global = 0;
    let mut last_val_probs = None;
    let mut scaler = GradScaler::default();
    if resuming {
        scaler.load_state(&done.optimizer);
    }
    for (si, stage) in schedule.stages.iter().enumerate() {
        if epoch_global + stage.epochs <= done.completed_epochs {
            epoch_global += stage.epochs;
            continue; // finished before the interruption
        }
        let mut opt = configure_stage(&vs, stage);
        if done.completed_epochs > epoch_global {
            // interrupted inside this stage: restore its optimizer moments
            opt.load_state(&done.optimizer).map_err(|e| TrainError::Run(cfg.out.clone(), format!("{CHECKPOINT}: {e}")))?;
        }
        // A frozen trunk is a frozen trunk: its features are computed once, without augmentation.
        // (Unless the cache would not fit: then the frozen trunk runs under no_grad every batch.)
        let side = (cfg.image_size as u64).div_ceil(32);
        let cache_bytes = train_ds.len() as u64 * cfg.trunk.out_channels() as u64 * side * side * 4;
        let cached = if !stage.trunk_trains && cache_bytes as f64 <= cfg.feature_cache_gib * (1u64 << 30) as f64 {
            Some(trunk_features(&model, &eval_pipe, &train_src, cfg.batch_size, cfg.seed, device)?)
        } else {
            if !stage.trunk_trains {
                eprintln!(
                    "note: trunk features would take {:.2} GiB (over --feature-cache-gib {}); the frozen trunk runs on every batch instead",
                    cache_bytes as f64 / (1u64 << 30) as f64,
                    cfg.feature_cache_gib
                );
            }
            None
        };
        for _ in 0..stage.epochs {
            epoch_global += 1;
            if epoch_global <= done.completed_epochs {
                continue;
            }
            // Dropout draws from libtorch's generator: reseed per epoch so a resumed run matches.
            tch::manual_seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch_global as u64) as i64);
            let te = Instant::now();
            let mut order: Vec<usize> = (0..train_ds.len()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(epoch_global as u64)));
            let pb = progress(order.len() as u64, &format!("epoch {epoch_global} [{}]", stage.name));
            let mut loss_sum = 0.0;
            let mut n_seen = 0usize;
            let mut step = 0usize;
            let skipped_before = scaler.skipped;
            let mut run_batch = |idx: &[usize], logits: Vec<Tensor>| -> Result<(), TrainError> {
                let loss = losses.total(&logits, &train_targets, idx, &stage.heads_in_loss, device);
                let non_finite = |v: f64| TrainError::NonFinite { value: v, stage: stage.name.clone(), epoch: epoch_global, step, run: cfg.out.clone() };
                let v = if scaled {
                    // backward on the scaled loss; loss and "gradients finite" come back in one read
                    opt.zero_grad();
                    scaler.scale(&loss).backward();
                    let finite = scaler.unscale_(&opt);
                    let both: Vec<f64> = Vec::try_from(Tensor::stack(&[loss.detach(), finite.to_kind(Kind::Float).to_device(loss.device())], 0).to_kind(Kind::Double))?;
                    if !both[0].is_finite() {
                        return Err(non_finite(both[0]));
                    }
                    let grads_finite = both[1] == 1.0;
                    if grads_finite {
                        opt.step();
                    }
                    scaler.update(grads_finite);
                    both[0]
                } else {
                    let v = loss.double_value(&[]);
                    if !v.is_finite() {
                        return Err(non_finite(v));
                    }
                    opt.zero_grad();
                    loss.backward();
                    opt.step();
                    v
                };
                loss_sum += v * idx.len() as f64;
                n_seen += idx.len();
                step += 1;
                pb.inc(idx.len() as u64);
                pb.set_message(format!("loss {:.4}  {:.1} img/s", loss_sum / n_seen as f64, n_seen as f64 / te.elapsed().as_secs_f64()));
                Ok(())
            };
            match &cached {
                Some(feats) => {
                    for chunk in order.chunks(cfg.batch_size) {
                        let ix = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
                        let f = feats.index_select(0, &ix);
                        let logits = model.heads_forward(&f, true);
                        run_batch(chunk, logits)?;
                    }
                }
                None => {
                    let loader = Loader::start(train_pipe, train_src.clone(), order.clone(), cfg.batch_size, cfg.seed, epoch_global as u64, cfg.prefetch);
                    // batches arrive as (pinned, on CUDA) host tensors; the copy to the device does not block
                    for batch in TensorLoader::start(loader, cfg.image_size, device, cfg.prefetch) {
                        let (indices, x) = batch?;
                        let x = x.to_device_(device, Kind::Float, true, false);
                        let logits = if stage.trunk_trains {
                            model.forward_t(&x, true, true)
                        } else {
                            let feats = tch::no_grad(|| model.features(&x, false));
                            model.heads_forward(&feats, true)
                        };
                        run_batch(&indices, logits)?;
                    }
                }
            }
            pb.finish_and_clear();
            if scaler.skipped > skipped_before {
                eprintln!("note: {} step(s) skipped for non-finite fp16 gradients; loss scale now {}", scaler.skipped - skipped_before, scaler.scale);
            }
            let train_loss = loss_sum / n_seen.max(1) as f64;
            let train_secs = te.elapsed().as_secs_f64();
            // ---- validation
            let (val_probs, val_loss) = predict_probs(&model, &eval_pipe, &val_src, cfg.batch_size, device, Some((&losses, &val_targets, &stage.heads_in_loss)))?;
            let half = Thresholds { global: 0.5, ..Default::default() };
            let pred = decoder.decide(&val_probs, &half);
            let pred_map: BTreeMap<String, BTreeSet<String>> = val_ds.ids.iter().cloned().zip(pred).collect();
            let f1 = imageclef_f1(&val_gt, &pred_map).f1;
            let m = EpochMetrics {
                epoch: epoch_global,
                stage: stage.name.clone(),
                train_loss,
                val_loss,
                val_imageclef_f1: f1,
                images_per_second: n_seen as f64 / train_secs,
                seconds: te.elapsed().as_secs_f64(),
            };
            eprintln!(
                "epoch {:>3} [{}] train loss {:.4}  val loss {:.4}  val F1@0.5 {:.4}  ({:.1} img/s, {:.1}s)",
                m.epoch, m.stage, m.train_loss, m.val_loss, m.val_imageclef_f1, m.images_per_second, m.seconds
            );
            save_checkpoint(&vs, &opt, &scaler, si, epoch_global, &cfg.out)?;
            save_model(&vs, &cfg.out.join("model.safetensors"))?;
            writeln!(metrics_file, "{}", serde_json::to_string(&m).expect("serialisable")).map_err(io_err(&cfg.out))?;
            last_val_probs = Some(val_probs);
        }
    }

    // ---- thresholds tuned on validation
    let val_probs = match last_val_probs {
        Some(p) => p,
        None => predict_probs(&model, &eval_pipe, &val_src, cfg.batch_size, device, None)?.0,
    };
    let scores = decoder.decision_scores(&val_probs);
    let level_of = |c: &str| decoder.concepts.iter().position(|x| x == c).and_then(|k| decoder.levels[k].clone());
    let grid: Vec<f32> = (1..20).map(|i| i as f32 * 0.05).collect();
    let (thresholds, tuned_f1) = tune(&scores, &decoder.concepts, &val_ds.ids, &val_gt, &level_of, TuneMode::PerLevel, &grid)
        .map_err(|e| TrainError::Run(cfg.out.clone(), format!("threshold tuning: {e}")))?;
    thresholds.save(&cfg.out.join("thresholds.json")).map_err(|e| TrainError::Run(cfg.out.clone(), e.to_string()))?;
    let half = Thresholds { global: 0.5, ..Default::default() };
    let pred_map: BTreeMap<String, BTreeSet<String>> = val_ds.ids.iter().cloned().zip(decoder.decide(&val_probs, &half)).collect();
    let summary = TrainSummary {
        run: cfg.out.clone(),
        n_train: train_ds.len(),
        n_val: val_ds.len(),
        concepts: decoder.concepts.len(),
        val_f1_at_half: imageclef_f1(&val_gt, &pred_map).f1,
        val_f1_tuned: tuned_f1,
        seconds: t0.elapsed().as_secs_f64(),
        skipped: skipped.skipped.len(),
    };
    write_json(&cfg.out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Per-head losses with class weights.
struct Losses<'a> {
    specs: &'a [HeadSpec],
    weights: &'a [Option<Tensor>],
}

impl Losses<'_> {
    fn head(&self, h: usize, logits: &Tensor, target: &Tensor) -> Tensor {
        let w = self.weights[h].as_ref();
        match self.specs[h].kind {
            HeadKind::MultiLabel => logits.binary_cross_entropy_with_logits(target, None::<&Tensor>, w, Reduction::Mean),
            HeadKind::SingleLabel => logits.cross_entropy_loss(target, w, Reduction::Mean, -100, 0.0),
        }
    }

    fn total(&self, logits: &[Tensor], targets: &[HeadTargets], idx: &[usize], heads: &[usize], device: Device) -> Tensor {
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for &h in heads {
            total += self.head(h, &logits[h], &targets[h].batch(idx, device));
        }
        total
    }
}

/// Make exactly the stage's parameters trainable (everything else frozen) and build Adam over them,
/// one learning-rate group per [`config::ParamGroup`]. BatchNorm running statistics are buffers.
pub fn configure_stage(vs: &nn::VarStore, stage: &Stage) -> Adam {
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut groups: Vec<(Vec<(String, Tensor)>, f64)> = stage.groups.iter().map(|g| (Vec::new(), g.lr)).collect();
    for name in names {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            continue;
        }
        let group = stage.groups.iter().position(|g| g.prefixes.iter().any(|p| has_prefix(name, p)));
        let mut t = vars[name].shallow_clone();
        let _ = t.requires_grad_(group.is_some());
        if let Some(g) = group {
            groups[g].0.push((name.clone(), t));
        }
    }
    Adam::new(groups)
}

fn images_tensor(images: &[f32], b: usize, size: u32, device: Device) -> Tensor {
    Tensor::from_slice(images).view([b as i64, 3, size as i64, size as i64]).to_device(device)
}

fn progress(len: u64, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]").expect("valid template"));
    pb.set_prefix(prefix.to_string());
    pb
}

/// Trunk features of every image (no augmentation, BatchNorm in eval mode), `[N, C, h, w]`.
fn trunk_features(model: &Model, pipe: &Pipeline, source: &ImageSource, batch: usize, seed: u64, device: Device) -> Result<Tensor, TrainError> {
    let idx: Vec<usize> = (0..source.len()).collect();
    let pb = progress(source.len() as u64, "caching trunk features");
    let mut parts = Vec::new();
    for chunk in idx.chunks(batch) {
        let b = load_batch(pipe, source, chunk, seed, 0)?;
        let x = images_tensor(&b.images, chunk.len(), pipe.size, device);
        parts.push(tch::no_grad(|| model.features(&x, false)));
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    Ok(Tensor::cat(&parts, 0))
}

/// Probabilities `[N, K]` for the images of `source` (and the mean loss of the given heads when
/// targets are given: the heads of the current stage, so validation and training loss compare).
fn predict_probs(
    model: &Model,
    pipe: &Pipeline,
    source: &ImageSource,
    batch: usize,
    device: Device,
    targets: Option<(&Losses, &[HeadTargets], &[usize])>,
) -> Result<(Array2<f32>, f64), TrainError> {
    let k = model.cfg.concepts().len();
    let n = source.len();
    let mut out = Array2::<f32>::zeros((n, k));
    let mut loss_sum = 0.0;
    let order: Vec<usize> = (0..n).collect();
    let loader = Loader::start(*pipe, source.clone(), order, batch, 0, 0, 2);
    for b in TensorLoader::start(loader, pipe.size, device, 2) {
        let (indices, x) = b?;
        let x = x.to_device_(device, Kind::Float, true, false);
        let (probs, loss) = tch::no_grad(|| {
            let logits = model.forward_t(&x, false, false);
            let loss = targets.map(|(l, t, heads)| l.total(&logits, t, &indices, heads, device).double_value(&[]));
            (model.probabilities(&logits).to_device(Device::Cpu).to_kind(Kind::Float), loss)
        });
        let v: Vec<f32> = Vec::try_from(probs.flatten(0, -1))?;
        for (r, &i) in indices.iter().enumerate() {
            out.row_mut(i).assign(&ndarray::ArrayView1::from(&v[r * k..(r + 1) * k]));
        }
        loss_sum += loss.unwrap_or(0.0) * indices.len() as f64;
    }
    Ok((out, loss_sum / n.max(1) as f64))
}

/// What a checkpoint says was done.
#[derive(Default)]
struct Progress {
    completed_epochs: usize,
    optimizer: std::collections::HashMap<String, Tensor>,
}

/// Model variables, optimizer moments and progress in one safetensors file, written atomically.
fn save_checkpoint(vs: &nn::VarStore, opt: &Adam, scaler: &GradScaler, stage: usize, completed_epochs: usize, dir: &Path) -> Result<(), TrainError> {
    // safetensors holds dense row-major data: channels-last weights (and their moments) are written contiguous.
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (format!("model.{n}"), t.contiguous())).collect();
    named.extend(opt.state().into_iter().map(|(n, t)| (n, t.contiguous())));
    named.extend(scaler.state());
    named.push(("progress.completed_epochs".into(), Tensor::from(completed_epochs as i64)));
    named.push(("progress.stage".into(), Tensor::from(stage as i64)));
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let path = dir.join(CHECKPOINT);
    let tmp = dir.join("checkpoint.tmp.safetensors");
    Tensor::write_safetensors(&named, &tmp)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))
}

fn load_checkpoint(vs: &nn::VarStore, dir: &Path) -> Result<Progress, TrainError> {
    let path = dir.join(CHECKPOINT);
    let tensors = Tensor::read_safetensors(&path).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("cannot read {CHECKPOINT}: {e}")))?;
    let mut map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let vars = vs.variables();
    tch::no_grad(|| -> Result<(), TrainError> {
        for (name, var) in &vars {
            let t = map.remove(&format!("model.{name}")).ok_or_else(|| TrainError::Run(dir.to_path_buf(), format!("{CHECKPOINT} lacks '{name}'")))?;
            var.shallow_clone().copy_(&t.to_device(var.device()));
        }
        Ok(())
    })?;
    let completed = map.get("progress.completed_epochs").map(|t| t.int64_value(&[]) as usize).unwrap_or(0);
    Ok(Progress { completed_epochs: completed, optimizer: map })
}

fn save_model(vs: &nn::VarStore, path: &Path) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp.safetensors");
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.contiguous())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, &tmp)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// A trained run loaded for prediction.
pub struct LoadedRun {
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub model_cfg: ModelConfig,
    pub vs: nn::VarStore,
    pub model: Model,
    pub thresholds: Thresholds,
}

impl LoadedRun {
    /// Load `dir` (config.json, model.json, model.safetensors, thresholds.json).
    pub fn open(dir: &Path, device: Device) -> Result<LoadedRun, TrainError> {
        let read = |name: &str| -> Result<String, TrainError> {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("cannot read {name}: {e} (is this a conceptree run directory?)")))
        };
        let config: TrainConfig = serde_json::from_str(&read("config.json")?).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("config.json: {e}")))?;
        let model_cfg: ModelConfig = serde_json::from_str(&read("model.json")?).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("model.json: {e}")))?;
        let thresholds = match read("thresholds.json") {
            Ok(s) => serde_json::from_str(&s).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("thresholds.json: {e}")))?,
            Err(_) => Thresholds { global: 0.5, ..Default::default() },
        };
        let mut vs = nn::VarStore::new(device);
        let mut model = Model::new(&vs.root(), model_cfg.clone());
        vs.load(dir.join("model.safetensors")).map_err(|e| TrainError::Run(dir.to_path_buf(), format!("model.safetensors: {e}")))?;
        // mixed precision as trained, on the same kind of device (a CUDA fp16 run predicts in fp32
        // on CPU: bf16 is only fast on CPUs with bf16 instructions, and that is the user's call at training)
        let trained_on_cuda = read("provenance.json").ok().and_then(|t| serde_json::from_str::<Provenance>(&t).ok()).is_some_and(|p| p.device.starts_with("Cuda"));
        let amp = config.amp && device.is_cuda() == trained_on_cuda;
        model.set_channels_last(&vs, config.memory_format.channels_last(device, amp));
        model.amp = amp;
        Ok(LoadedRun { dir: dir.to_path_buf(), config, model_cfg, vs, model, thresholds })
    }

    /// Concept probabilities for images, `[N, K]` in [`ModelConfig::concepts`] order.
    pub fn probabilities(&self, paths: &[PathBuf], batch: usize) -> Result<Array2<f32>, TrainError> {
        let pipe = Pipeline { size: self.config.image_size, augment: None };
        Ok(predict_probs(&self.model, &pipe, &ImageSource::from(Arc::new(paths.to_vec())), batch, self.vs.device(), None)?.0)
    }

    /// The decoder of this run (hierarchy enforced for hierarchical runs).
    pub fn decoder(&self, ontology: &Ontology) -> Decoder {
        Decoder::new(&self.model_cfg, ontology, self.config.mode == Mode::Hierarchical)
    }

    /// Concept sets for images, with the run's tuned thresholds or one global `threshold`.
    pub fn predict(&self, ontology: &Ontology, paths: &[PathBuf], batch: usize, threshold: Option<f32>) -> Result<(Array2<f32>, Vec<BTreeSet<String>>), TrainError> {
        let probs = self.probabilities(paths, batch)?;
        let thresholds = match threshold {
            Some(t) => Thresholds { global: t, ..Default::default() },
            None => self.thresholds.clone(),
        };
        let sets = self.decoder(ontology).decide(&probs, &thresholds);
        Ok((probs, sets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeadKind, HeadSpec, TrunkKind};

    fn spec(name: &str, k: usize, kind: HeadKind) -> HeadSpec {
        HeadSpec { name: name.into(), concepts: (0..k).map(|i| format!("C{:07}", i)).collect(), kind }
    }

    #[test]
    fn multi_label_loss_matches_hand_computation() {
        // l = -[pw*y*log σ(x) + (1-y) log(1-σ(x))]: x=0,y=1,pw=2 -> 2 ln 2 = 1.386294; x=2,y=0 -> -ln(1-σ(2)) = 2.126928
        let specs = vec![spec("flat", 2, HeadKind::MultiLabel)];
        let w = vec![Some(Tensor::from_slice(&[2f32, 1.0]))];
        let l = Losses { specs: &specs, weights: &w };
        let v = l.head(0, &Tensor::from_slice(&[0f32, 2.0]).view([1, 2]), &Tensor::from_slice(&[1f32, 0.0]).view([1, 2])).double_value(&[]);
        assert!((v - (1.386294 + 2.126928) / 2.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn single_label_loss_with_none_class_matches_hand_computation() {
        // CE([1,0,0], 0) = ln(1 + 2/e) = 0.551445; CE([0,0,0], 2 = none) = ln 3; weighted mean with w=[2,1,1]:
        // (2*0.551445 + 1*1.098612) / (2 + 1) = 0.733834
        let specs = vec![spec("modality", 2, HeadKind::SingleLabel)];
        let w = vec![Some(Tensor::from_slice(&[2f32, 1.0, 1.0]))];
        let l = Losses { specs: &specs, weights: &w };
        let logits = Tensor::from_slice(&[1f32, 0.0, 0.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let v = l.head(0, &logits, &Tensor::from_slice(&[0i64, 2])).double_value(&[]);
        assert!((v - 0.733834).abs() < 1e-5, "{v}");
    }

    #[test]
    fn single_label_targets_use_none_index() {
        let s = spec("laterality", 2, HeadKind::SingleLabel);
        let labels: Vec<BTreeSet<String>> = vec![["C0000001".to_string()].into(), BTreeSet::new()];
        match HeadTargets::build(&s, &labels) {
            HeadTargets::Single(v) => assert_eq!(v, vec![1, 2]),
            _ => panic!("expected single-label targets"),
        }
    }

    /// Every stage trains exactly the parameters it claims: count them, and check that one step
    /// moves all of them and nothing else.
    #[test]
    fn each_stage_trains_exactly_its_parameters() {
        for (mode, strategy, schedule, heads) in [
            (Mode::Flat, Strategy::Layerwise, HierSchedule::Joint, vec![spec("flat", 4, HeadKind::MultiLabel)]),
            (Mode::Hierarchical, Strategy::Full, HierSchedule::Stepwise, vec![spec("modality", 3, HeadKind::SingleLabel), spec("anatomy", 4, HeadKind::MultiLabel)]),
            (Mode::Flat, Strategy::Head, HierSchedule::Joint, vec![spec("flat", 4, HeadKind::MultiLabel)]),
        ] {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let cfg = TrainConfig { mode, strategy, schedule, epochs: 6, trunk: TrunkKind::Tiny, ..Default::default() };
            let mcfg = ModelConfig { trunk: TrunkKind::Tiny, head: HeadConfig::for_trunk(TrunkKind::Tiny), heads: heads.clone(), condition_on_previous: false };
            let model = Model::new(&vs.root(), mcfg);
            let names: Vec<String> = heads.iter().map(|h| h.name.clone()).collect();
            let sched = build_schedule(&cfg, &names);
            let is_param = |n: &str| !n.ends_with("running_mean") && !n.ends_with("running_var");
            for stage in &sched.stages {
                let mut opt = configure_stage(&vs, stage);
                let claimed: Vec<String> = stage.groups.iter().flat_map(|g| g.prefixes.clone()).collect();
                let expected: i64 = vs
                    .variables()
                    .iter()
                    .filter(|(n, _)| is_param(n) && claimed.iter().any(|p| has_prefix(n, p)))
                    .map(|(_, t)| t.numel() as i64)
                    .sum();
                assert_eq!(opt.numel(), expected, "stage {}", stage.name);
                assert!(expected > 0);
                let before: BTreeMap<String, Tensor> = vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
                let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
                let logits = model.forward_t(&x, stage.trunk_trains, true);
                let loss = stage.heads_in_loss.iter().map(|&h| logits[h].square().mean(Kind::Float)).fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
                opt.zero_grad();
                loss.backward();
                opt.step();
                for (n, t) in vs.variables() {
                    if !is_param(&n) {
                        continue;
                    }
                    let moved = !t.detach().equal(&before[&n]);
                    let trained = claimed.iter().any(|p| has_prefix(&n, p));
                    assert_eq!(moved, trained, "stage '{}': {n} moved={moved} but trained={trained}", stage.name);
                }
            }
        }
    }
}
