//! The typed training configuration: the one source of its defaults, and its checks.
//!
//! [`TrainConfig::default`] holds every default; the command line reads them from
//! [`TrainConfig::defaults`] (so `--help` and the library cannot disagree). A configuration is
//! checked once, before any work, into a [`CheckedConfig`] (the checked/unchecked pattern of
//! linfa): value checks here, with a [`ConfigError`] naming the option; the files a run reads are
//! checked when they are opened, by the stage that reads them. The resolved configuration is
//! written as `config.json` in the run directory.
use std::path::PathBuf;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::data::augment::AugmentConfig;
use crate::model::{MemoryFormat, TrunkKind};
use crate::ontology::Level;

/// Flat (one head over the top-K concepts), hierarchical (one head per level) or hybrid (one head
/// per level plus one over the frequent concepts on none of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The paper's baseline: one multi-label head over the top-K concepts.
    Flat,
    /// One head per ontology level, decoded coherently.
    Hierarchical,
    /// The level heads plus a residual multi-label head over the most frequent concepts that lie
    /// on none of the chosen levels (`--rest-top-k`), for real label sets (ImageCLEF, ROCO).
    Hybrid,
    /// The retrieval baseline: no training; the top-K concepts scored by the similarity-weighted
    /// votes of the `--knn-k` nearest training images in the trunk's embedding (`--weights`).
    Knn,
}

impl Mode {
    /// Whether the model has per-level heads (and is decoded coherently).
    pub fn has_levels(self) -> bool {
        matches!(self, Mode::Hierarchical | Mode::Hybrid)
    }
}

/// How the trunk is fine-tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Trunk frozen; its features are computed once under `no_grad` and cached.
    Head,
    /// Everything trainable from the first step (the paper's run 1).
    Full,
    /// Head first, then one trunk block at a time from the top (the paper's run 2).
    Layerwise,
}

/// How hierarchical heads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HierSchedule {
    /// All heads at once.
    Joint,
    /// Stage l adds level l's head to the loss (the paper's proposed stepwise training).
    Stepwise,
    /// Levels added one by one over the first half of the epochs, then all heads together for
    /// the second half (curriculum, then joint training; after Chen et al., MIDL 2019).
    Curriculum,
}

/// How the single-label heads' probabilities are calibrated for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Calibration {
    /// Class-weighted training; the weights' prior removed from the logits at decoding (logit
    /// adjustment: minus log w); the level scored by its best concept against a tuned threshold.
    LogitAdjust,
    /// Single-label heads trained without class weights (so no prior to remove); the level scored
    /// by its best concept against a tuned threshold.
    Unweighted,
    /// None: arg-max over the concepts and "none" of the weighted model (the rule before calibration).
    None,
}

/// Which epoch's weights a run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The epoch with the best validation ImageCLEF F1 (with thresholds tuned on validation).
    Best,
    /// The last epoch.
    Last,
}

/// How the heads' losses are weighted in the total loss of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadWeights {
    /// Every output concept weighs the same, whatever head it sits in: head h counts with the
    /// number of its concepts, and the total is divided by the sum of those counts.
    Concepts,
    /// Every head weighs the same (each head's loss is its mean over its outputs).
    Equal,
    /// A weight per head name (heads not named weigh 1).
    Custom(std::collections::BTreeMap<String, f64>),
}

impl std::str::FromStr for HeadWeights {
    type Err = String;
    /// `concepts`, `equal`, or `name=weight,name=weight`.
    fn from_str(s: &str) -> Result<HeadWeights, String> {
        match s {
            "concepts" => Ok(HeadWeights::Concepts),
            "equal" => Ok(HeadWeights::Equal),
            _ => s
                .split(',')
                .map(|part| {
                    let (name, w) = part.split_once('=').ok_or_else(|| format!("'{part}': expected concepts, equal or name=weight,..."))?;
                    let w: f64 = w.trim().parse().map_err(|_| format!("'{part}': the weight is not a number"))?;
                    if !(w.is_finite() && w >= 0.0) {
                        return Err(format!("'{part}': weights must be 0 or more"));
                    }
                    Ok((name.trim().to_string(), w))
                })
                .collect::<Result<_, _>>()
                .map(HeadWeights::Custom),
        }
    }
}

impl std::fmt::Display for HeadWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadWeights::Concepts => f.write_str("concepts"),
            HeadWeights::Equal => f.write_str("equal"),
            HeadWeights::Custom(m) => f.write_str(&m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
        }
    }
}

/// Class weighting of the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// scikit-learn "balanced" weights within each head: a multi-label concept's positive weight
    /// is the mean count of its head's concepts over its own, so it depends on which concepts
    /// share its head (for a flat model the same as `balanced-model`); a single-label head's
    /// classes (and "none") get N / (C * n_c).
    Balanced,
    /// "Balanced" over the model's whole label space: a multi-label concept's positive weight is the
    /// mean count of all the model's concepts (every head's) over its own, so a concept weighs the
    /// same whichever head it sits in, as in a flat model over the same concepts; single-label
    /// heads as with `balanced`.
    #[serde(rename = "balanced-model")]
    BalancedModel,
    /// Every example counts the same.
    None,
}

/// Where to train or predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The first CUDA device when libtorch sees one, else the CPU.
    Auto,
    Cpu,
    Cuda,
}

/// Everything a training run needs, with the paper's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub train_labels: PathBuf,
    pub images: PathBuf,
    pub out: PathBuf,
    /// Validation labels; when absent, `val_split` of the training set (by group) is held out.
    pub val_labels: Option<PathBuf>,
    /// `id,group` CSV for a group-aware split (e.g. realrad's meta.csv).
    pub groups: Option<PathBuf>,
    pub ontology: Option<PathBuf>,
    pub mode: Mode,
    pub levels: Vec<Level>,
    pub schedule: HierSchedule,
    /// Feed each level's head the probabilities of the levels above.
    pub condition_on_previous: bool,
    pub trunk: TrunkKind,
    pub weights: Option<PathBuf>,
    pub strategy: Strategy,
    /// Flat mode: keep the `top_k` most frequent concepts...
    pub top_k: usize,
    /// ...that occur on at least `min_count` training images (both modes).
    pub min_count: usize,
    pub image_size: u32,
    pub batch_size: usize,
    /// Total epochs (split over the stages of a stepwise or layerwise schedule).
    pub epochs: usize,
    /// Adam learning rate (paper: 1e-4).
    pub lr: f64,
    /// Stepwise schedule: learning-rate factor for the trunk and earlier heads at each later stage
    /// (1.0 = no decay; on phantoms 0.5 cost 0.17 test F1 against 1.0, see BENCHMARKS.md).
    pub stage_lr_decay: f64,
    /// Layerwise schedule: learning-rate factor per unfreezing stage (Keras recipe: recompile lower).
    #[serde(default = "default_layerwise_decay")]
    pub layerwise_lr_decay: f64,
    pub class_weights: ClassWeights,
    pub val_split: f64,
    /// Seed of the train/validation split (default: `seed`), so runs of several seeds can share one split.
    #[serde(default)]
    pub split_seed: Option<u64>,
    pub seed: u64,
    pub device: DeviceChoice,
    pub augment: Option<AugmentConfig>,
    pub skip_bad: bool,
    /// Batches prepared ahead of the training step.
    pub prefetch: usize,
    /// Stop after this many training images per epoch (0 = all); for smoke runs and benchmarks.
    pub max_train_images: usize,
    /// Layout of images and convolution weights (auto: channels-last on CPU and with `amp`).
    #[serde(default)]
    pub memory_format: MemoryFormat,
    /// Mixed precision: fp16 with dynamic loss scaling on CUDA, bf16 on CPU.
    #[serde(default)]
    pub amp: bool,
    /// Read images from this cache of decoded, resized images (`conceptree data cache`).
    #[serde(default)]
    pub image_cache: Option<PathBuf>,
    /// A frozen trunk's features are computed once and kept in memory up to this size (GiB);
    /// above it the frozen trunk runs (under no_grad, on augmented images) on every batch.
    #[serde(default = "default_feature_cache_gib")]
    pub feature_cache_gib: f64,
    // Runs written before these options existed read back with the behaviour they had.
    /// Hierarchical mode: how single-label levels are calibrated and decoded.
    #[serde(default = "legacy_calibration")]
    pub calibration: Calibration,
    /// How the heads' losses are weighted.
    #[serde(default = "legacy_head_weights")]
    pub head_weights: HeadWeights,
    /// A fair schedule: one optimizer whose state carries across stages, and exactly `epochs`
    /// epochs over all stages (a stage that would get none is merged into the next).
    #[serde(default)]
    pub fair_schedule: bool,
    /// Which epoch's weights the run keeps.
    #[serde(default = "legacy_keep")]
    pub keep: Keep,
    /// Hierarchical mode: C-HMCNN's max-constraint module and MCLoss on multi-label levels.
    #[serde(default)]
    pub max_constraint: bool,
    /// Hierarchical mode: one neck per head, or one shared neck.
    #[serde(default)]
    pub neck: crate::model::Neck,
    /// Hybrid mode: the residual head's concepts (the most frequent on none of the levels).
    #[serde(default = "default_rest_top_k")]
    pub rest_top_k: usize,
    /// How each head's neck pools the trunk's feature map (per-head necks; the residual head has
    /// its own, `rest_pooling`).
    #[serde(default)]
    pub pooling: crate::model::Pooling,
    /// Hybrid mode: how the residual head pools (average: max pooling beside it measured worse on
    /// annotated phantoms, BENCHMARKS.md).
    #[serde(default)]
    pub rest_pooling: crate::model::Pooling,
    /// Hybrid mode: whether noise-flagged concepts may be learned by the residual head.
    #[serde(default = "default_noise")]
    pub noise: crate::eval::ceiling::Noise,
    /// kNN mode: neighbours that vote.
    #[serde(default = "default_knn_k")]
    pub knn_k: usize,
    /// The layers of every head between the trunk and its output layer (the paper's, or none).
    #[serde(default)]
    pub head_layers: crate::model::HeadLayers,
    /// Which decision thresholds are tuned on validation (each epoch with `keep: best`, and for
    /// the kept weights).
    #[serde(default = "default_thresholds")]
    pub thresholds: crate::eval::thresholds::TuneMode,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            train_labels: PathBuf::new(),
            images: PathBuf::new(),
            out: PathBuf::from("runs/run"),
            val_labels: None,
            groups: None,
            ontology: None,
            mode: Mode::Flat,
            levels: vec![Level::Modality, Level::Anatomy, Level::Laterality],
            schedule: HierSchedule::Curriculum,
            condition_on_previous: false,
            trunk: TrunkKind::Resnet50,
            weights: None,
            strategy: Strategy::Full,
            top_k: 25,
            min_count: 1,
            image_size: 224,
            batch_size: 32,
            epochs: 10,
            lr: 1e-4,
            stage_lr_decay: 1.0,
            layerwise_lr_decay: default_layerwise_decay(),
            class_weights: ClassWeights::Balanced,
            val_split: 0.15,
            split_seed: None,
            seed: 42,
            device: DeviceChoice::Auto,
            augment: Some(AugmentConfig::default()),
            skip_bad: false,
            prefetch: 2,
            max_train_images: 0,
            memory_format: MemoryFormat::Auto,
            amp: false,
            image_cache: None,
            feature_cache_gib: default_feature_cache_gib(),
            calibration: Calibration::LogitAdjust,
            head_weights: HeadWeights::Concepts,
            fair_schedule: true,
            keep: Keep::Best,
            max_constraint: false,
            neck: crate::model::Neck::PerHead,
            rest_top_k: default_rest_top_k(),
            pooling: crate::model::Pooling::Avg,
            rest_pooling: crate::model::Pooling::Avg,
            noise: default_noise(),
            knn_k: default_knn_k(),
            head_layers: crate::model::HeadLayers::Paper,
            thresholds: default_thresholds(),
        }
    }
}

static DEFAULTS: LazyLock<TrainConfig> = LazyLock::new(TrainConfig::default);

/// A value out of range or a contradictory combination of options, named as on the command line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("--{option} {value}: {rule}")]
    Value { option: &'static str, value: String, rule: &'static str },
    #[error("{0}")]
    Combination(&'static str),
}

impl crate::classify::Classify for ConfigError {
    fn is_bad_input(&self) -> bool {
        match self {
            ConfigError::Value { .. } | ConfigError::Combination(_) => true,
        }
    }
}

/// A [`TrainConfig`] whose values passed [`TrainConfig::check`]; only that function makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig(TrainConfig);

impl std::ops::Deref for CheckedConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

impl CheckedConfig {
    /// The configuration, for writing or deriving another one (which must be checked again).
    pub fn into_inner(self) -> TrainConfig {
        self.0
    }
}

/// `Err(ConfigError::Value)` unless `ok`.
fn require(ok: bool, option: &'static str, value: impl std::fmt::Display, rule: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Value { option, value: value.to_string(), rule })
    }
}

impl TrainConfig {
    /// The defaults, for the command line's `default_value_t`.
    pub fn defaults() -> &'static TrainConfig {
        &DEFAULTS
    }

    /// Check every value before any work starts.
    pub fn check(self) -> Result<CheckedConfig, ConfigError> {
        require(self.epochs >= 1, "epochs", self.epochs, "must be at least 1")?;
        require(self.batch_size >= 1, "batch-size", self.batch_size, "must be at least 1")?;
        require((16..=1024).contains(&self.image_size), "image-size", self.image_size, "must be in 16..=1024")?;
        require(self.lr > 0.0 && self.lr < 1.0, "lr", self.lr, "must be in (0, 1)")?;
        require(self.stage_lr_decay > 0.0 && self.stage_lr_decay <= 1.0, "stage-lr-decay", self.stage_lr_decay, "must be in (0, 1]")?;
        require(self.layerwise_lr_decay > 0.0 && self.layerwise_lr_decay <= 1.0, "layerwise-lr-decay", self.layerwise_lr_decay, "must be in (0, 1]")?;
        require(self.feature_cache_gib >= 0.0, "feature-cache-gib", self.feature_cache_gib, "must be 0 or more")?;
        require(self.prefetch >= 1, "prefetch", self.prefetch, "must be at least 1")?;
        if self.val_labels.is_none() {
            require(self.val_split > 0.0 && self.val_split < 1.0, "val-split", self.val_split, "must be in (0, 1) when no --val-labels is given")?;
        }
        if matches!(self.mode, Mode::Flat | Mode::Knn) {
            require(self.top_k >= 1, "top-k", self.top_k, "must be at least 1")?;
        }
        if self.mode == Mode::Knn {
            require(self.knn_k >= 1, "knn-k", self.knn_k, "must be at least 1")?;
        }
        if self.mode.has_levels() && self.levels.is_empty() {
            return Err(ConfigError::Combination("--levels must name at least one level in hierarchical and hybrid mode"));
        }
        if self.mode.has_levels() && self.neck == crate::model::Neck::Shared && self.pooling != crate::model::Pooling::Avg {
            return Err(ConfigError::Combination("--pooling avg-max needs per-head necks (--neck per-head): a shared neck averages"));
        }
        if self.mode == Mode::Hybrid {
            require(self.rest_top_k >= 1, "rest-top-k", self.rest_top_k, "must be at least 1")?;
        }
        if let Some(a) = &self.augment {
            require(a.rotation_deg.is_finite() && (0.0..=180.0).contains(&a.rotation_deg), "rotation", a.rotation_deg, "must be in 0..=180 degrees")?;
            require(a.zoom.is_finite() && (0.0..1.0).contains(&a.zoom), "zoom", a.zoom, "must be in [0, 1)")?;
            require(a.shear_deg.is_finite() && (0.0..90.0).contains(&a.shear_deg), "shear", a.shear_deg, "must be in [0, 90) degrees")?;
        }
        Ok(CheckedConfig(self))
    }

    /// The same configuration with every input path made absolute, so a run can be resumed and
    /// its inputs found from any working directory.
    pub fn with_absolute_paths(mut self) -> TrainConfig {
        let abs = |p: &mut PathBuf| {
            if let Ok(a) = std::path::absolute(&*p) {
                *p = a;
            }
        };
        abs(&mut self.train_labels);
        abs(&mut self.images);
        abs(&mut self.out);
        for p in [&mut self.val_labels, &mut self.groups, &mut self.ontology, &mut self.weights, &mut self.image_cache].into_iter().flatten() {
            abs(p);
        }
        self
    }
}

fn default_feature_cache_gib() -> f64 {
    4.0
}

fn default_rest_top_k() -> usize {
    100
}

fn default_knn_k() -> usize {
    10
}

fn default_noise() -> crate::eval::ceiling::Noise {
    crate::eval::ceiling::Noise::Keep
}

fn default_thresholds() -> crate::eval::thresholds::TuneMode {
    crate::eval::thresholds::TuneMode::PerLevel
}

fn legacy_calibration() -> Calibration {
    Calibration::None
}

fn legacy_head_weights() -> HeadWeights {
    HeadWeights::Equal
}

fn legacy_keep() -> Keep {
    Keep::Last
}

fn default_layerwise_decay() -> f64 {
    0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_option_and_value() {
        let bad = [
            (TrainConfig { epochs: 0, ..Default::default() }, "--epochs 0"),
            (TrainConfig { lr: f64::NAN, ..Default::default() }, "--lr NaN"),
            (TrainConfig { lr: 2.0, ..Default::default() }, "--lr 2"),
            (TrainConfig { image_size: 8, ..Default::default() }, "--image-size 8"),
            (TrainConfig { val_split: 1.0, ..Default::default() }, "--val-split 1"),
            (TrainConfig { feature_cache_gib: -1.0, ..Default::default() }, "--feature-cache-gib -1"),
            (TrainConfig { stage_lr_decay: 0.0, ..Default::default() }, "--stage-lr-decay 0"),
        ];
        for (cfg, want) in bad {
            let e = cfg.check().unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} (want {want})");
        }
        assert!(TrainConfig { mode: Mode::Hierarchical, levels: vec![], ..Default::default() }.check().is_err());
        let shared_max = TrainConfig { mode: Mode::Hierarchical, neck: crate::model::Neck::Shared, pooling: crate::model::Pooling::AvgMax, ..Default::default() };
        assert!(shared_max.check().unwrap_err().to_string().contains("--pooling avg-max needs per-head necks"));
        assert!(TrainConfig { val_split: 0.0, val_labels: Some("v.csv".into()), ..Default::default() }.check().is_ok(), "no split needed with --val-labels");
        assert_eq!(*TrainConfig::default().check().unwrap(), TrainConfig::default());
    }

    #[test]
    fn head_weights_parse() {
        assert_eq!("concepts".parse::<HeadWeights>().unwrap(), HeadWeights::Concepts);
        let HeadWeights::Custom(m) = "modality=2, anatomy=0.5".parse::<HeadWeights>().unwrap() else { panic!("custom") };
        assert_eq!((m["modality"], m["anatomy"]), (2.0, 0.5));
        for bad in ["modality", "modality=x", "modality=-1", "modality=NaN"] {
            assert!(bad.parse::<HeadWeights>().is_err(), "{bad}");
        }
        assert_eq!("a=1,b=2".parse::<HeadWeights>().unwrap().to_string(), "a=1,b=2");
    }

    #[test]
    fn runs_from_before_an_option_keep_their_behaviour() {
        let mut v = serde_json::to_value(TrainConfig::default()).unwrap();
        for k in ["calibration", "head_weights", "fair_schedule", "keep", "max_constraint", "neck", "pooling", "rest_pooling", "head_layers", "thresholds"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let old: TrainConfig = serde_json::from_value(v).unwrap();
        assert_eq!((old.calibration, old.head_weights, old.fair_schedule, old.keep), (Calibration::None, HeadWeights::Equal, false, Keep::Last));
        // runs from before --pooling and --rest-pooling averaged
        use crate::model::Pooling;
        assert_eq!((old.pooling, old.rest_pooling), (Pooling::Avg, Pooling::Avg));
        // and before --head-layers had the paper's head
        assert_eq!(old.head_layers, crate::model::HeadLayers::Paper);
        // and before --thresholds tuned one threshold per level
        assert_eq!(old.thresholds, crate::eval::thresholds::TuneMode::PerLevel);
    }

    #[test]
    fn absolute_paths_keep_the_file_names() {
        let c = TrainConfig { train_labels: "a/labels.csv".into(), ontology: Some("o.tsv".into()), ..Default::default() }.with_absolute_paths();
        assert!(c.train_labels.is_absolute() && c.train_labels.ends_with("a/labels.csv"));
        assert!(c.ontology.as_ref().unwrap().is_absolute());
        assert!(c.val_labels.is_none());
    }
}
