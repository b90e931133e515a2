//! The trainer: one loop for flat and hierarchical models, driven by the stage schedule.
//!
//! [`Trainer::new`] (or [`Trainer::resume`]) prepares a run: data, model, schedule and the run
//! directory's files. [`Trainer::run`] then goes stage by stage ([`Trainer::start_stage`]) and
//! epoch by epoch ([`Trainer::train_epoch`], which calls [`Trainer::step`] per batch), validating
//! and checkpointing after every epoch ([`Trainer::end_epoch`]), and [`Trainer::finish`] tunes the
//! thresholds on validation and writes the summary. The benchmark drives `train_epoch` directly,
//! so its training rows time exactly this code. What a run has to say (its plan, each epoch's
//! progress and figures, notes) goes to the [`Events`] sink it is given; it prints nothing.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

mod knn;

use super::checked::{CheckedConfig, Fit, ModeOptions};
use crate::run::preprocessing::Preprocessing;
use super::config::{ConfigError, Keep, Mode, TrainConfig};
use super::data::{model_config, TrainData};
use super::loss::{HeadTargets, Losses};
use super::optim::{Adam, GradScaler};
use super::run_dir::{self, Checkpoint, MetricsLog, Progress, Provenance, RunDir, RunError};
use super::schedule::{build_schedule, Schedule, Stage};
use super::error::TrainError;
use crate::data::augment::Pipeline;
use crate::data::loader::{ImageSource, Loader, TensorLoader};
use crate::eval::metrics::imageclef_f1;
use crate::events::{EpochEnd, Event, Events, HeadPlan, Plan, Task, Tick};
use crate::eval::thresholds::{tune, Thresholds};
use crate::model::{has_prefix, weights, Model, ModelConfig, Neck};
use crate::ontology::{Level, Ontology};
use crate::infer::batch::{for_each_batch, store_rows};
use crate::infer::Decoder;

/// Result of a finished run (`summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub run: std::path::PathBuf,
    pub n_train: usize,
    pub n_val: usize,
    pub concepts: usize,
    pub val_f1_at_half: f64,
    pub val_f1_tuned: f64,
    pub seconds: f64,
    pub skipped: usize,
    /// The epoch whose weights the run kept (`--keep`), and which rule kept it.
    #[serde(default)]
    pub kept_epoch: usize,
    #[serde(default = "keep_last")]
    pub keep: Keep,
}

fn keep_last() -> Keep {
    Keep::Last
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
    /// ...and with thresholds tuned on the validation images (what `--keep best` compares).
    #[serde(default)]
    pub val_imageclef_f1_tuned: f64,
    pub images_per_second: f64,
    pub seconds: f64,
}

/// What one training step did (handed to [`Trainer::train_epoch`]'s observer).
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// 0-based step within the epoch.
    pub step: usize,
    pub images: usize,
    pub loss: f64,
}

/// What one epoch of training did.
#[derive(Debug, Clone, Copy)]
pub struct EpochStats {
    pub mean_loss: f64,
    pub images: usize,
    pub steps: usize,
    pub seconds: f64,
}

/// A stage in progress: its index and, for a frozen trunk, the trunk's cached features.
pub struct StageRun {
    pub index: usize,
    features: Option<Tensor>,
}

/// Counters of an epoch in progress (reported as [`Event::Tick`]s).
struct EpochProgress {
    task: Task,
    started: Instant,
    /// When the first step ended, and the images since (the rate without start-up costs).
    after_first: Option<(Instant, usize)>,
    total: usize,
    loss_sum: f64,
    images: usize,
    steps: usize,
}

impl EpochProgress {
    fn new(total: usize, task: Task) -> EpochProgress {
        EpochProgress { task, started: Instant::now(), after_first: None, total, loss_sum: 0.0, images: 0, steps: 0 }
    }

    fn tick(&self) -> Tick {
        Tick { task: self.task.clone(), done: self.images, total: self.total, this_run: self.images, elapsed: self.started.elapsed(), loss: Some(self.loss_sum / self.images.max(1) as f64) }
    }
}

/// Precision and memory format of a run.
struct Precision {
    /// fp16 needs loss scaling against underflowing gradients; bf16 has fp32's exponent range.
    scaled: bool,
    label: &'static str,
    memory_format: &'static str,
}

/// A run being trained.
pub struct Trainer<'o> {
    cfg: CheckedConfig,
    ontology: &'o Ontology,
    run: RunDir,
    device: Device,
    data: TrainData,
    model_cfg: ModelConfig,
    vs: nn::VarStore,
    model: Model,
    train_targets: Vec<HeadTargets>,
    val_targets: Vec<HeadTargets>,
    losses: Losses,
    decoder: Decoder,
    schedule: Schedule,
    precision: Precision,
    scaler: GradScaler,
    /// The optimizer: one for the whole run (`--fair-schedule`), or one per stage.
    opt: Option<Adam>,
    /// The checkpoint a resumed run continues from, until its stage has taken its optimizer state.
    checkpoint: Option<Checkpoint>,
    progress: Progress,
    metrics: MetricsLog,
    last_val_probs: Option<Array2<f32>>,
    started: Instant,
    events: &'o dyn Events,
}

/// Whether `model` predicts laterality concepts: training then turns horizontal flips off (a flip
/// swaps left and right), and stores the run's configuration that way.
pub fn predicts_laterality(model: &ModelConfig, ontology: &Ontology) -> bool {
    model.concepts().iter().any(|c| ontology.level_of(c) == Some(Level::Laterality))
}

/// The neighbours that vote in a kNN run; `None` for a trained one.
fn knn_k(cfg: &CheckedConfig) -> Option<usize> {
    match cfg.options() {
        ModeOptions::Knn { k, .. } => Some(*k),
        _ => None,
    }
}

impl<'o> Trainer<'o> {
    /// How a trained run is fitted (every stage, epoch and step is of a trained run: a kNN run has no stages).
    fn fit(&self) -> &Fit {
        self.cfg.fit().expect("a kNN run has no stages, epochs or steps")
    }

    /// Prepare a new run in `cfg.out` (which must be new or empty, unless `force`), reporting to `events`.
    pub fn new(cfg: TrainConfig, ontology: &'o Ontology, force: bool, events: &'o dyn Events) -> Result<Trainer<'o>, TrainError> {
        let started = Instant::now();
        let cfg = cfg.with_absolute_paths().check()?;
        let device = cfg.device.resolve()?;
        let existed = cfg.out.exists();
        let run = RunDir::create(&cfg.out, force)?;
        let path = run.path.clone();
        let made = (|| -> Result<Trainer<'o>, TrainError> {
            let data = TrainData::prepare(&cfg, events)?;
            if let Some(k) = knn_k(&cfg).filter(|&k| k > data.train.len()) {
                return Err(ConfigError::Value {
                    option: "knn-k",
                    value: k.to_string(),
                    rule: format!("must be at most the number of training images ({})", data.train.len()).into(),
                }
                .into());
            }
            let model_cfg = model_config(&cfg, &data.train, ontology, events)?;
            Self::assemble(cfg, ontology, run, device, data, model_cfg, false, started, events)
        })();
        if made.is_err() {
            // a run that never started leaves nothing behind: no directory of its own making
            run_dir::remove_unstarted(&path, !existed, force);
        }
        made
    }

    /// Continue the unfinished run in `dir` from its last checkpoint (from the beginning when it
    /// was stopped before its first epoch ended). With a fixed seed on CPU the result is bitwise
    /// the same as an uninterrupted run.
    pub fn resume(dir: &std::path::Path, ontology: &'o Ontology, events: &'o dyn Events) -> Result<Trainer<'o>, TrainError> {
        let started = Instant::now();
        let run = RunDir::open_for_resume(dir)?;
        let mut cfg = run_dir::read_config(&run)?;
        cfg.out = dir.to_path_buf();
        let cfg = cfg.check()?;
        let device = cfg.device.resolve()?;
        let data = TrainData::prepare(&cfg, events)?;
        let split: serde_json::Value = run.read_json(run_dir::SPLIT, "the run cannot be resumed without it")?;
        if split["train"] != serde_json::json!(data.train.ids) || split["val"] != serde_json::json!(data.val.ids) {
            return Err(RunError::DataChanged { dir: dir.to_path_buf(), what: "the train/validation split differs".into() }.into());
        }
        let model_cfg: ModelConfig = run.read_json(run_dir::MODEL_CONFIG, "the run cannot be resumed without it")?;
        Self::assemble(cfg, ontology, run, device, data, model_cfg, true, started, events)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(cfg: CheckedConfig, ontology: &'o Ontology, run: RunDir, device: Device, data: TrainData, model_cfg: ModelConfig, resuming: bool, started: Instant, events: &'o dyn Events) -> Result<Trainer<'o>, TrainError> {
        crate::alloc::keep_freed_memory();
        let mut cfg = cfg.into_inner();
        if let Some(a) = cfg.augment.as_mut().filter(|a| a.hflip && predicts_laterality(&model_cfg, ontology)) {
            events.emit(Event::Note("horizontal flips are turned off because the model predicts laterality (a flip swaps left and right)".into()));
            a.hflip = false;
        }
        let cfg = cfg.check()?;
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(device);
        let mut model = Model::new(&vs.root(), model_cfg.clone());
        let checkpoint = if resuming { run.load_checkpoint(&vs)? } else { None };
        if let (Some(w), None) = (&cfg.weights, &checkpoint) {
            let rep = weights::load_trunk_weights(&vs, w)?;
            events.emit(Event::WeightsLoaded { path: w.clone(), loaded: rep.loaded, ignored: rep.ignored });
        } else if cfg.fit().is_none() && cfg.weights.is_none() {
            events.emit(Event::Note("no --weights: the kNN embeddings come from an untrained trunk (give a trained run's model.safetensors or pretrained weights)".into()));
        }
        let channels_last = cfg.memory_format.channels_last(device, cfg.amp);
        model.set_channels_last(&vs, channels_last);
        model.amp = cfg.amp;
        let precision = Precision {
            scaled: cfg.amp && device.is_cuda(),
            label: crate::model::autocast::precision_label(device, cfg.amp),
            memory_format: if channels_last { "channels-last" } else { "contiguous" },
        };
        let head_names: Vec<String> = model_cfg.heads.iter().map(|s| s.name.clone()).collect();
        let schedule = build_schedule(&cfg, &head_names, model_cfg.neck == Neck::Shared);
        let progress = checkpoint.as_ref().map_or_else(Progress::default, |c| c.progress);
        if resuming {
            events.emit(Event::Resuming { run: run.path.clone(), after_epoch: checkpoint.as_ref().map(|c| c.progress.completed_epochs) });
        }
        let mut scaler = GradScaler::default();
        if let Some(c) = &checkpoint {
            scaler.load_state(&c.state);
        }
        let train_targets: Vec<HeadTargets> = model_cfg.heads.iter().map(|s| HeadTargets::build(s, &data.train.labels)).collect();
        let val_targets: Vec<HeadTargets> = model_cfg.heads.iter().map(|s| HeadTargets::build(s, &data.val.labels)).collect();
        let losses = Losses::new(&model_cfg.heads, &train_targets, &cfg, device);
        let decoder = Decoder::new(&model_cfg, ontology, cfg.levels().is_some());
        let metrics = run.metrics_log(progress.completed_epochs)?;
        let trainer = Trainer {
            cfg,
            ontology,
            run,
            device,
            data,
            model_cfg,
            vs,
            model,
            train_targets,
            val_targets,
            losses,
            decoder,
            schedule,
            precision,
            scaler,
            opt: None,
            checkpoint,
            progress,
            metrics,
            last_val_probs: None,
            started,
            events,
        };
        trainer.write_run_files()?;
        trainer.announce_plan();
        Ok(trainer)
    }

    /// `model.json`, `preprocessing.json`, `ontology.tsv`, `schedule.json`, `split.json`,
    /// `provenance.json` (and `skipped.json` when something was skipped), then `config.json`.
    fn write_run_files(&self) -> Result<(), RunError> {
        let run = &self.run;
        run.write_json(run_dir::MODEL_CONFIG, &self.model_cfg)?;
        run.write_json(run_dir::PREPROCESSING, &Preprocessing::new(self.cfg.image_size, self.cfg.memory_format, self.cfg.amp))?;
        run.write_bytes(run_dir::ONTOLOGY, self.ontology.to_tsv().as_bytes())?;
        run.write_json(run_dir::SCHEDULE, &self.schedule)?;
        run.write_json(run_dir::SPLIT, &serde_json::json!({"train": self.data.train.ids, "val": self.data.val.ids}))?;
        let cuda = tch::Cuda::is_available();
        run.write_json(
            run_dir::PROVENANCE,
            &Provenance {
                conceptree_version: env!("CARGO_PKG_VERSION").into(),
                git_commit: option_env!("CONCEPTREE_GIT_COMMIT").map(String::from),
                libtorch: if cuda { format!("2.11.0 (tch 0.24.0; cuDNN {}, CUDA runtime {})", tch::utils::version_cudnn(), tch::utils::version_cudart()) } else { "2.11.0 (tch 0.24.0; CPU)".into() },
                cuda_available: cuda,
                device: format!("{:?}", self.device),
                ontology_hash: self.ontology.content_hash(),
                precision: self.precision.label.into(),
                memory_format: self.precision.memory_format.into(),
            },
        )?;
        if !self.data.skipped.is_empty() {
            run.write_json(run_dir::SKIPPED, &self.data.skipped)?;
        }
        // last: a directory with config.json holds every other file of the run
        run.write_json(run_dir::CONFIG, self.cfg.stored())
    }

    /// Report what was skipped and the run's [`Plan`].
    fn announce_plan(&self) {
        if !self.data.skipped.is_empty() {
            self.events.emit(Event::Text(self.data.skipped.to_string()));
        }
        let model = match self.cfg.mode() {
            Mode::Flat => "flat",
            Mode::Hierarchical => "hierarchical",
            Mode::Hybrid => "hybrid",
            Mode::Knn => "kNN retrieval (no training)",
        };
        self.events.emit(Event::Plan(Plan {
            model: model.into(),
            trunk: self.cfg.trunk.to_string(),
            heads: self.model_cfg.heads.iter().map(|s| HeadPlan { name: s.name.clone(), concepts: s.concepts.len(), extra_outputs: s.kind.behaviour().extra_outputs() }).collect(),
            concepts: self.model_cfg.concepts().len(),
            train_images: self.data.train.len(),
            val_images: self.data.val.len(),
            device: format!("{:?}", self.device),
            precision: self.precision.label.into(),
            memory_format: self.precision.memory_format.into(),
            schedule: self.schedule.to_string(),
        }));
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Fit the run (a trained model's stages and epochs, or a kNN run's index: [`super::knn`]),
    /// then tune thresholds and write the summary.
    pub fn run(mut self) -> Result<TrainSummary, TrainError> {
        let val_probs = match knn_k(&self.cfg) {
            Some(k) => self.fit_knn(k)?,
            None => self.fit_stages()?,
        };
        self.finish(val_probs)
    }

    /// Train every remaining stage and epoch, and return the kept epoch's validation scores.
    fn fit_stages(&mut self) -> Result<Array2<f32>, TrainError> {
        let mut first_epoch = 1;
        for si in 0..self.schedule.stages.len() {
            let n = self.schedule.stages[si].epochs;
            let epochs = first_epoch..first_epoch + n;
            first_epoch += n;
            if epochs.end - 1 <= self.progress.completed_epochs {
                continue; // finished before an interruption
            }
            let mut stage = self.start_stage(si)?;
            let done = self.progress.completed_epochs;
            for epoch in epochs.filter(|&e| e > done) {
                let stats = self.train_epoch(&mut stage, epoch, None, &mut |_| {})?;
                self.end_epoch(&stage, epoch, stats)?;
            }
        }
        self.kept_val_probs()
    }

    /// Make exactly stage `si`'s parameters trainable at their learning rates, and cache a frozen
    /// trunk's features. Under `--fair-schedule` one optimizer carries its state across stages
    /// (built at the first stage, restored from a checkpoint when resuming); otherwise each stage
    /// starts a fresh one (restored when a resumed run was interrupted inside this stage).
    pub fn start_stage(&mut self, si: usize) -> Result<StageRun, TrainError> {
        let stage = &self.schedule.stages[si];
        let opt = match (self.fit().fair_schedule, self.opt.take()) {
            (true, Some(mut opt)) => {
                set_trainable(&self.vs, stage);
                opt.configure(|name| stage_lr(stage, name));
                opt
            }
            (true, None) => {
                let mut opt = Adam::new(vec![(trainable_parameters(&self.vs), self.fit().lr)]);
                set_trainable(&self.vs, stage);
                opt.configure(|name| stage_lr(stage, name));
                opt
            }
            (false, _) => configure_stage(&self.vs, stage),
        };
        let mut opt = opt;
        // a resumed run: restore the optimizer's moments (the whole run's; or, one optimizer per
        // stage, when the interruption fell inside this stage)
        if let Some(c) = self.checkpoint.take().filter(|c| self.fit().fair_schedule || c.progress.stage == si) {
            opt.load_state(&c.state).map_err(|reason| RunError::Corrupt { dir: self.run.path.clone(), file: run_dir::CHECKPOINT, reason, hint: "remove it to start the run again from the beginning" })?;
        }
        self.opt = Some(opt);
        // A frozen trunk is a frozen trunk: its features are computed once, without augmentation.
        // (Unless they would not fit: then the frozen trunk runs under no_grad every batch.)
        let side = (self.cfg.image_size as u64).div_ceil(32);
        let bytes = self.data.train.len() as u64 * self.cfg.trunk.out_channels() as u64 * side * side * 4;
        let fits = bytes as f64 <= self.fit().feature_cache_gib * (1u64 << 30) as f64;
        let features = match (stage.trunk_trains, fits) {
            (false, true) => Some(self.trunk_features()?),
            (false, false) => {
                self.events.emit(Event::FeaturesUncached { gib: bytes as f64 / (1u64 << 30) as f64, limit_gib: self.fit().feature_cache_gib });
                None
            }
            (true, _) => None,
        };
        Ok(StageRun { index: si, features })
    }

    /// Trunk features of every training image (no augmentation, BatchNorm in eval mode), `[N, C, h, w]`.
    fn trunk_features(&self) -> Result<Tensor, TrainError> {
        let pipe = Pipeline { size: self.cfg.image_size, augment: None };
        let source = &self.data.train_source;
        let started = Instant::now();
        let mut parts = Vec::new();
        let order: Vec<usize> = (0..source.len()).collect();
        for chunk in order.chunks(self.cfg.batch_size) {
            let b = crate::data::loader::load_batch(&pipe, source, chunk, self.cfg.seed, 0)?;
            let x = Tensor::from_slice(&b.images).view([chunk.len() as i64, 3, pipe.size as i64, pipe.size as i64]).to_device(self.device);
            parts.push(tch::no_grad(|| self.model.features(&x, false)));
            let done = chunk.last().map_or(0, |&i| i + 1);
            self.events.emit(Event::Tick(Tick { task: Task::TrunkFeatures, done, total: source.len(), this_run: done, elapsed: started.elapsed(), loss: None }));
        }
        Ok(Tensor::cat(&parts, 0))
    }

    /// One epoch of stage `st` (at most `max_steps` steps); `on_step` sees every step.
    pub fn train_epoch(&mut self, st: &mut StageRun, epoch: usize, max_steps: Option<usize>, on_step: &mut dyn FnMut(&StepInfo)) -> Result<EpochStats, TrainError> {
        let stage = self.schedule.stages[st.index].clone();
        self.losses.conditional = epoch <= self.cfg.levels().map_or(0, |l| l.conditional_epochs);
        // Dropout draws from libtorch's generator: reseed per epoch so a resumed run matches.
        tch::manual_seed(self.cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64) as i64);
        let mut order: Vec<usize> = (0..self.data.train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.cfg.seed.wrapping_add(epoch as u64)));
        if let Some(m) = max_steps {
            order.truncate(m * self.cfg.batch_size);
        }
        let mut p = EpochProgress::new(order.len(), Task::Epoch { epoch, epochs: self.schedule.total_epochs(), stage: stage.name.clone() });
        let announce = self.progress.completed_epochs == 0 && epoch == 1;
        let skipped_before = self.scaler.skipped;
        match st.features.as_ref().map(Tensor::shallow_clone) {
            Some(feats) => {
                for chunk in order.chunks(self.cfg.batch_size) {
                    let ix = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(self.device);
                    let logits = self.model.heads_forward(&feats.index_select(0, &ix), true);
                    let loss = self.step(&stage, epoch, p.steps, chunk, logits)?;
                    self.after_step(&mut p, chunk.len(), loss, announce, on_step);
                }
            }
            None => {
                let pipe = Pipeline { size: self.cfg.image_size, augment: self.fit().augment };
                let loader = Loader::start(pipe, self.data.train_source.clone(), order, self.cfg.batch_size, self.cfg.seed, epoch as u64, self.cfg.prefetch);
                // batches arrive as (pinned, on CUDA) host tensors; the copy to the device does not block
                for batch in TensorLoader::start(loader, self.cfg.image_size, self.device, self.cfg.prefetch) {
                    let (indices, x) = batch?;
                    let x = x.to_device_(self.device, Kind::Float, true, false);
                    let logits = if stage.trunk_trains {
                        self.model.forward_t(&x, true, true)
                    } else {
                        let feats = tch::no_grad(|| self.model.features(&x, false));
                        self.model.heads_forward(&feats, true)
                    };
                    let loss = self.step(&stage, epoch, p.steps, &indices, logits)?;
                    self.after_step(&mut p, indices.len(), loss, announce, on_step);
                }
            }
        }
        if self.scaler.skipped > skipped_before {
            self.events.emit(Event::SkippedSteps { steps: self.scaler.skipped - skipped_before, scale: self.scaler.scale });
        }
        Ok(EpochStats { mean_loss: p.loss_sum / p.images.max(1) as f64, images: p.images, steps: p.steps, seconds: p.started.elapsed().as_secs_f64() })
    }

    /// Count a step, report the epoch's progress, tell the observer, and after the run's first few
    /// steps say how long an epoch will take.
    fn after_step(&self, p: &mut EpochProgress, n: usize, loss: f64, announce: bool, on_step: &mut dyn FnMut(&StepInfo)) {
        on_step(&StepInfo { step: p.steps, images: n, loss });
        p.loss_sum += loss * n as f64;
        p.images += n;
        p.steps += 1;
        self.events.emit(Event::Tick(p.tick()));
        match p.after_first {
            None => p.after_first = Some((Instant::now(), p.images)),
            // steps 2..=5 give the steady rate (the first carries thread and allocator start-up)
            Some((t, before)) if announce && p.steps == 5 => self.announce_duration((p.images - before) as f64 / t.elapsed().as_secs_f64(), p.total),
            Some(_) => {}
        }
    }

    /// Say, early in the first epoch, roughly how long an epoch and the run will take.
    fn announce_duration(&self, rate: f64, images: usize) {
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        self.events.emit(Event::Estimate { images_per_second: rate, epoch_seconds: images as f64 / rate, epochs: self.schedule.total_epochs() });
    }

    /// One optimisation step on a batch: the stage's loss, backward, optimizer (with fp16 loss
    /// scaling: unscale, skip on non-finite gradients, update the scale). Returns the loss.
    pub fn step(&mut self, stage: &Stage, epoch: usize, step: usize, idx: &[usize], logits: Vec<Tensor>) -> Result<f64, TrainError> {
        let loss = self.losses.total(&logits, &self.train_targets, idx, &stage.heads_in_loss, self.device);
        let opt = self.opt.as_mut().expect("a stage was started");
        let non_finite = |value: f64| TrainError::NonFinite { value, stage: stage.name.clone(), epoch, step, run: self.run.path.clone() };
        if !self.precision.scaled {
            let v = loss.double_value(&[]);
            if !v.is_finite() {
                return Err(non_finite(v));
            }
            opt.zero_grad();
            loss.backward();
            opt.step();
            return Ok(v);
        }
        // backward on the scaled loss; the loss and "gradients finite" come back in one read
        opt.zero_grad();
        self.scaler.scale(&loss).backward();
        let finite = self.scaler.unscale_(opt);
        let both: Vec<f64> = Vec::try_from(Tensor::stack(&[loss.detach(), finite.to_kind(Kind::Float).to_device(loss.device())], 0).to_kind(Kind::Double))?;
        if !both[0].is_finite() {
            return Err(non_finite(both[0]));
        }
        let grads_finite = both[1] == 1.0;
        if grads_finite {
            opt.step();
        }
        self.scaler.update(grads_finite);
        Ok(both[0])
    }

    /// After an epoch: validate (F1 at 0.5 and with tuned thresholds), log the metrics line,
    /// write the model when this epoch is the one kept (`--keep`), and checkpoint.
    pub fn end_epoch(&mut self, st: &StageRun, epoch: usize, stats: EpochStats) -> Result<(), TrainError> {
        let stage = &self.schedule.stages[st.index];
        let tv = Instant::now();
        let (val_probs, val_loss) = self.validate(&stage.heads_in_loss)?;
        let pred = self.decoder.decide(&val_probs, &Thresholds::new(0.5));
        let f1 = imageclef_f1(&self.val_truth(), &self.data.val.ids.iter().cloned().zip(pred).collect()).f1;
        let (_, f1_tuned) = self.tune(&val_probs)?;
        let m = EpochMetrics {
            epoch,
            stage: stage.name.clone(),
            train_loss: stats.mean_loss,
            val_loss,
            val_imageclef_f1: f1,
            val_imageclef_f1_tuned: f1_tuned,
            images_per_second: stats.images as f64 / stats.seconds,
            seconds: stats.seconds + tv.elapsed().as_secs_f64(),
        };
        let kept = self.fit().keep == Keep::Last || f1_tuned > self.progress.best_f1;
        self.events.emit(Event::EpochFinished(EpochEnd {
            epoch: m.epoch,
            stage: m.stage.clone(),
            train_loss: m.train_loss,
            val_loss: m.val_loss,
            val_f1: m.val_imageclef_f1,
            val_f1_tuned: f1_tuned,
            kept_as_best: kept && self.fit().keep == Keep::Best,
            images_per_second: m.images_per_second,
            seconds: m.seconds,
        }));
        if kept {
            self.run.save_model(&self.vs)?;
            self.progress.best_epoch = epoch;
            self.progress.best_f1 = f1_tuned;
        }
        self.progress.stage = st.index;
        self.progress.completed_epochs = epoch;
        self.run.save_checkpoint(&self.vs, self.opt.as_ref().expect("a stage was started"), &self.scaler, &self.progress)?;
        self.metrics.append(&m)?;
        self.last_val_probs = Some(val_probs);
        Ok(())
    }

    /// Per-level thresholds tuned on validation probabilities, and the ImageCLEF F1 they give.
    fn tune(&self, val_probs: &Array2<f32>) -> Result<(Thresholds, f64), TrainError> {
        let decoder = &self.decoder;
        let scores = decoder.decision_scores(val_probs);
        let level_of = |c: &str| decoder.concepts.iter().position(|x| x == c).and_then(|k| decoder.levels[k].clone());
        let grid: Vec<f32> = (1..20).map(|i| i as f32 * 0.05).collect();
        Ok(tune(&scores, &decoder.concepts, &self.data.val.ids, &self.val_truth(), &level_of, self.cfg.thresholds, &grid)?)
    }

    /// Probabilities `[N_val, K]` of the validation images, and the mean loss of `heads` on them.
    pub fn validate(&self, heads: &[usize]) -> Result<(Array2<f32>, f64), TrainError> {
        let pipe = Pipeline { size: self.cfg.image_size, augment: None };
        let source: &ImageSource = &self.data.val_source;
        let mut out = Array2::<f32>::zeros((source.len(), self.model_cfg.concepts().len()));
        let mut loss_sum = 0.0;
        for_each_batch(&self.model, &pipe, source, self.cfg.batch_size, self.device, |indices, logits| -> Result<(), TrainError> {
            let (probs, loss) = tch::no_grad(|| {
                let loss = self.losses.total(&logits, &self.val_targets, indices, heads, self.device).double_value(&[]);
                (self.model.probabilities(&logits), loss)
            });
            store_rows(&mut out, indices, &probs)?;
            loss_sum += loss * indices.len() as f64;
            Ok(())
        })?;
        Ok((out, loss_sum / source.len().max(1) as f64))
    }

    fn val_truth(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.data.val.ids.iter().cloned().zip(self.data.val.labels.iter().cloned()).collect()
    }

    /// The kept epoch's validation scores: the last epoch's, or those of the best one after its
    /// weights are put back (`--keep best`).
    fn kept_val_probs(&mut self) -> Result<Array2<f32>, TrainError> {
        let last_is_kept = self.progress.best_epoch == self.progress.completed_epochs;
        Ok(match (self.last_val_probs.take(), last_is_kept) {
            (Some(p), true) => p,
            (_, false) => {
                self.events.emit(Event::KeepingEpoch { epoch: self.progress.best_epoch, f1: self.progress.best_f1, last: self.progress.completed_epochs });
                self.load_kept_weights()?;
                self.validate(&[])?.0
            }
            (None, true) => self.validate(&[])?.0,
        })
    }

    /// Tune the thresholds on the validation scores `val_probs` of the fitted model, write
    /// `thresholds.json` and `summary.json`.
    fn finish(self, val_probs: Array2<f32>) -> Result<TrainSummary, TrainError> {
        let (thresholds, tuned_f1) = self.tune(&val_probs)?;
        self.run.write_json(run_dir::THRESHOLDS, &thresholds)?;
        let truth = self.val_truth();
        let at_half = self.decoder.decide(&val_probs, &Thresholds::new(0.5));
        let summary = TrainSummary {
            run: self.run.path.clone(),
            n_train: self.data.train.len(),
            n_val: self.data.val.len(),
            concepts: self.decoder.concepts.len(),
            val_f1_at_half: imageclef_f1(&truth, &self.data.val.ids.iter().cloned().zip(at_half).collect()).f1,
            val_f1_tuned: tuned_f1,
            seconds: self.started.elapsed().as_secs_f64(),
            skipped: self.data.skipped.skipped.len(),
            kept_epoch: self.progress.best_epoch,
            keep: self.cfg.fit().map_or(TrainConfig::defaults().keep, |f| f.keep),
        };
        self.run.write_json(run_dir::SUMMARY, &summary)?;
        Ok(summary)
    }

    /// Load `model.safetensors` (the kept epoch's weights) into the model.
    fn load_kept_weights(&mut self) -> Result<(), TrainError> {
        let tensors = Tensor::read_safetensors(self.run.file(run_dir::MODEL))?;
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for (name, t) in tensors {
                if let Some(v) = vars.get(&name) {
                    v.shallow_clone().copy_(&t.to_device(v.device()));
                }
            }
        });
        Ok(())
    }
}

/// Every trainable variable of `vs` (BatchNorm running statistics are buffers), sorted by name.
fn trainable_parameters(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(n, _)| !(n.ends_with("running_mean") || n.ends_with("running_var"))).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The learning rate of parameter `name` in `stage`; `None`: frozen in it.
fn stage_lr(stage: &Stage, name: &str) -> Option<f64> {
    stage.groups.iter().find(|g| g.prefixes.iter().any(|p| has_prefix(name, p))).map(|g| g.lr)
}

/// Let autograd compute gradients for exactly the parameters `stage` trains.
fn set_trainable(vs: &nn::VarStore, stage: &Stage) {
    for (name, mut t) in trainable_parameters(vs) {
        let _ = t.requires_grad_(stage_lr(stage, &name).is_some());
    }
}

/// Make exactly the stage's parameters trainable (everything else frozen) and build Adam over them,
/// one learning-rate group per [`super::schedule::ParamGroup`]. BatchNorm running statistics are buffers.
pub fn configure_stage(vs: &nn::VarStore, stage: &Stage) -> Adam {
    set_trainable(vs, stage);
    let mut groups: Vec<(Vec<(String, Tensor)>, f64)> = stage.groups.iter().map(|g| (Vec::new(), g.lr)).collect();
    for (name, t) in trainable_parameters(vs) {
        if let Some(g) = stage.groups.iter().position(|g| g.prefixes.iter().any(|p| has_prefix(&name, p))) {
            groups[g].0.push((name, t));
        }
    }
    Adam::new(groups)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeadKind, HeadSpec, TrunkKind};
    use crate::train::{HierSchedule, Strategy};

    fn spec(name: &str, k: usize, kind: HeadKind) -> HeadSpec {
        HeadSpec::new(name, (0..k).map(|i| format!("C{:07}", i)).collect(), kind)
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
            let mcfg = ModelConfig::new(TrunkKind::Tiny, heads.clone());
            let model = Model::new(&vs.root(), mcfg);
            let names: Vec<String> = heads.iter().map(|h| h.name.clone()).collect();
            let sched = build_schedule(&cfg.clone().check().unwrap(), &names, false);
            let is_param = |n: &str| !n.ends_with("running_mean") && !n.ends_with("running_var");
            for stage in &sched.stages {
                let mut opt = configure_stage(&vs, stage);
                let claimed: Vec<String> = stage.groups.iter().flat_map(|g| g.prefixes.clone()).collect();
                let expected: i64 = vs.variables().iter().filter(|(n, _)| is_param(n) && claimed.iter().any(|p| has_prefix(n, p))).map(|(_, t)| t.numel() as i64).sum();
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
