//! The training configuration as given: the one source of its defaults, and its checks.
//!
//! [`TrainConfig`] is one flat record of every option: what the command line fills, what
//! `experiment` varies, and what a run stores as `config.json` (so runs from before an option
//! existed still load, each missing option read back with the behaviour it had).
//! [`TrainConfig::default`] holds every default; the command line reads them from
//! [`TrainConfig::defaults`] (so `--help` and the library cannot disagree). [`OPTION_SCOPES`] says
//! which option applies to which runs: an option given where it does not apply is refused, and
//! [`TrainConfig::used_settings`] sets the ones that do not apply back to their defaults. A
//! configuration is checked once, before any work, into a [`CheckedConfig`](super::CheckedConfig) (`checked.rs`: the
//! parts every run has, and the mode with only its own options), the only form training reads:
//! value checks here, with a [`ConfigError`] naming the option; the files a run reads are checked
//! when they are opened, by the stage that reads them.
use std::borrow::Cow;
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

/// The heads of a hierarchical model's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LevelHeads {
    /// A softmax head with a "none" class for each single-valued level (no two of its concepts on
    /// one training image), sigmoids for the others (the default; measured better than sigmoid
    /// level heads on realrad, BENCHMARKS.md "Issue 27").
    #[default]
    Softmax,
    /// One sigmoid per ontology node on every level, with C-HMCNN's max-constraint and MCLoss
    /// (a parent's probability is the largest of its own and its descendants'; targets hold
    /// their ancestors): coherent by construction. A single-valued level keeps its best concept
    /// (or two, `--single-valued second`) at decoding.
    Sigmoid,
}

/// The concepts a model learns (its label space), the same option for every mode, so models in a
/// comparison learn the same concepts: `top-k:N` (the N most frequent training concepts),
/// `min-count:N` (every concept on at least N training images) or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LabelSpec {
    TopK(usize),
    MinCount(usize),
    All,
}

impl LabelSpec {
    /// The equivalent `(top_k, min_count)` of a flat model.
    pub fn top_k_min_count(self) -> (usize, usize) {
        match self {
            LabelSpec::TopK(k) => (k, 1),
            LabelSpec::MinCount(m) => (usize::MAX, m.max(1)),
            LabelSpec::All => (usize::MAX, 1),
        }
    }
}

impl std::str::FromStr for LabelSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<LabelSpec, String> {
        let number = |v: &str, what: &str| -> Result<usize, String> {
            v.trim().parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(|| format!("'{s}': {what} must be a whole number of at least 1"))
        };
        match s.trim().split_once(':') {
            None if s.trim() == "all" => Ok(LabelSpec::All),
            Some(("top-k", n)) => Ok(LabelSpec::TopK(number(n, "N of top-k:N")?)),
            Some(("min-count", n)) => Ok(LabelSpec::MinCount(number(n, "N of min-count:N")?)),
            _ => Err(format!("'{s}': expected top-k:N, min-count:N or all")),
        }
    }
}

impl std::fmt::Display for LabelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelSpec::TopK(k) => write!(f, "top-k:{k}"),
            LabelSpec::MinCount(m) => write!(f, "min-count:{m}"),
            LabelSpec::All => f.write_str("all"),
        }
    }
}

impl TryFrom<String> for LabelSpec {
    type Error = String;
    fn try_from(s: String) -> Result<LabelSpec, String> {
        s.parse()
    }
}

impl From<LabelSpec> for String {
    fn from(l: LabelSpec) -> String {
        l.to_string()
    }
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
    /// Train on at most this many training images (0 = all): a seeded sample across the training
    /// set (seed: `split_seed`, else `seed`), whole groups when `groups` is given; for smoke runs
    /// and benchmarks.
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
    /// Hierarchical mode: a softmax head per single-valued level, or one sigmoid per node.
    #[serde(default)]
    pub level_heads: LevelHeads,
    /// Hierarchical mode: how a single-valued level (a calibrated softmax head, or a sigmoid head
    /// over a single-valued level) is decided.
    #[serde(default)]
    pub single_valued: crate::model::SingleValuedRule,
    /// Hierarchical mode: the first this many epochs train each concept that has an ancestor in
    /// its head only on the images where one of its ancestors is present (conditional training,
    /// Chen et al. 2019), the rest on every image. 0: never.
    #[serde(default)]
    pub conditional_epochs: usize,
    /// Hierarchical mode: a multi-label level whose concepts nest is a local classifier per parent
    /// (HiClass's LCPN): a child learned only on its parents' images, its probability its sigmoid
    /// times its parent's ([`crate::model::heads::local_per_parent`]), instead of the max-constraint.
    #[serde(default)]
    pub local_per_parent: bool,
    /// The label space of a hierarchical or hybrid model (`--concepts`); a flat or kNN model's is
    /// its `top_k` and `min_count` (`--concepts` sets them). `None`: every concept of the levels
    /// on at least `min_count` training images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concepts: Option<LabelSpec>,
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
            schedule: HierSchedule::Joint,
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
            level_heads: LevelHeads::Softmax,
            single_valued: crate::model::SingleValuedRule::Argmax,
            concepts: None,
            conditional_epochs: 0,
            local_per_parent: false,
        }
    }
}

static DEFAULTS: LazyLock<TrainConfig> = LazyLock::new(TrainConfig::default);

/// A value out of range, a contradictory combination of options, or an option given for a run it
/// does not apply to, named as on the command line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("--{option} {value}: {rule}")]
    Value { option: &'static str, value: String, rule: Cow<'static, str> },
    #[error("{0}")]
    Combination(Cow<'static, str>),
    /// An option given for a run it does not apply to (see [`OPTION_SCOPES`]).
    #[error("{0}")]
    NotApplicable(String),
}

impl crate::classify::Classify for ConfigError {
    fn is_bad_input(&self) -> bool {
        match self {
            ConfigError::Value { .. } | ConfigError::Combination(_) | ConfigError::NotApplicable(_) => true,
        }
    }
}

/// The most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 10_000;
/// The largest batch a run may ask for.
pub const MAX_BATCH_SIZE: usize = 65_536;

/// The range rule of a whole-number training option, as [`TrainConfig::check`] states it (the
/// command line says it for a negative number, which no such option takes); `None` for options
/// that are not whole numbers of `train` or `experiment`.
pub fn whole_number_rule(option: &str) -> Option<&'static str> {
    Some(match option {
        "epochs" => EPOCHS_RULE,
        "batch-size" => BATCH_SIZE_RULE,
        "image-size" => IMAGE_SIZE_RULE,
        "top-k" | "knn-k" | "rest-top-k" => "must be at least 1",
        "min-count" | "max-train-images" | "seed" | "split-seed" | "conditional-epochs" | "threshold-min-cases" => "must be 0 or more",
        // experiment compare
        "seeds" => "must be in 1..=100",
        _ => return None,
    })
}

pub(super) const EPOCHS_RULE: &str = "must be in 1..=10000";
pub(super) const BATCH_SIZE_RULE: &str = "must be in 1..=65536";
const IMAGE_SIZE_RULE: &str = "must be in 16..=1024";

/// The image-size rule of training and of the image cache (`data cache`), one check for both.
pub fn check_image_size(size: u32) -> Result<(), ConfigError> {
    if (16..=1024).contains(&size) {
        Ok(())
    } else {
        Err(ConfigError::Value { option: "image-size", value: size.to_string(), rule: IMAGE_SIZE_RULE.into() })
    }
}

/// Where a training option applies (see [`OPTION_SCOPES`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// Runs of these modes.
    Modes(&'static [Mode]),
    /// Hierarchical and hybrid runs whose schedule adds the levels stage by stage (stepwise, curriculum).
    StagedLevels,
    /// Trained runs (not knn) fine-tuned with one of these strategies.
    Strategies(&'static [Strategy]),
    /// Runs that hold out their own validation images (no `--val-labels`).
    OwnSplit,
    /// Hierarchical and hybrid runs whose single-valued levels are decided by thresholds
    /// (calibrated softmax levels, or sigmoid level heads), not by an arg-max with "none".
    ThresholdedLevels,
}

const TRAINED: &[Mode] = &[Mode::Flat, Mode::Hierarchical, Mode::Hybrid];
const LEVELS: &[Mode] = &[Mode::Hierarchical, Mode::Hybrid];

/// Which training option applies to which runs, one row per option that does not apply to every
/// run (named as on the command line); an option not listed applies everywhere. `train` refuses
/// an option given for a run it does not apply to ([`TrainConfig::refuse_inapplicable`]), and
/// `experiment` one that applies to none of its runs.
pub const OPTION_SCOPES: &[(&str, Scope)] = &[
    ("schedule", Scope::Modes(LEVELS)),
    ("levels", Scope::Modes(LEVELS)),
    ("condition", Scope::Modes(LEVELS)),
    ("calibration", Scope::Modes(LEVELS)),
    ("head-weights", Scope::Modes(LEVELS)),
    ("max-constraint", Scope::Modes(LEVELS)),
    ("neck", Scope::Modes(LEVELS)),
    ("level-heads", Scope::Modes(LEVELS)),
    ("single-valued", Scope::ThresholdedLevels),
    ("conditional-epochs", Scope::Modes(LEVELS)),
    ("local-per-parent", Scope::Modes(LEVELS)),
    ("rest-top-k", Scope::Modes(&[Mode::Hybrid])),
    ("rest-pooling", Scope::Modes(&[Mode::Hybrid])),
    ("noise", Scope::Modes(&[Mode::Hybrid])),
    ("top-k", Scope::Modes(&[Mode::Flat, Mode::Knn])),
    ("knn-k", Scope::Modes(&[Mode::Knn])),
    // knn trains nothing: its embedding is the trunk's (--weights)
    ("strategy", Scope::Modes(TRAINED)),
    ("epochs", Scope::Modes(TRAINED)),
    ("lr", Scope::Modes(TRAINED)),
    ("class-weights", Scope::Modes(TRAINED)),
    ("no-augment", Scope::Modes(TRAINED)),
    ("fair-schedule", Scope::Modes(TRAINED)),
    ("keep", Scope::Modes(TRAINED)),
    ("pooling", Scope::Modes(TRAINED)),
    ("head-layers", Scope::Modes(TRAINED)),
    ("stage-lr-decay", Scope::StagedLevels),
    ("layerwise-lr-decay", Scope::Strategies(&[Strategy::Layerwise])),
    ("feature-cache-gib", Scope::Strategies(&[Strategy::Head, Strategy::Layerwise])),
    ("val-split", Scope::OwnSplit),
];

/// A value's name as the command line spells it (clap's, so the two cannot drift apart).
fn cli_name<T: clap::ValueEnum>(v: T) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl Scope {
    /// Whether an option of this scope changes the run `c`.
    pub fn applies(self, c: &TrainConfig) -> bool {
        match self {
            Scope::Modes(modes) => modes.contains(&c.mode),
            Scope::StagedLevels => c.mode.has_levels() && c.schedule != HierSchedule::Joint,
            Scope::Strategies(s) => c.mode != Mode::Knn && s.contains(&c.strategy),
            Scope::OwnSplit => c.val_labels.is_none(),
            Scope::ThresholdedLevels => c.mode.has_levels() && (c.level_heads == LevelHeads::Sigmoid || c.calibration != Calibration::None),
        }
    }

    /// The runs it applies to, as the command line says it.
    pub fn describe(self) -> String {
        match self {
            Scope::Modes(modes) => format!("--mode {}", and_list(&modes.iter().map(|&m| cli_name(m)).collect::<Vec<_>>())),
            Scope::StagedLevels => "--mode hierarchical and hybrid with --schedule stepwise or curriculum".into(),
            Scope::Strategies(s) => format!("--strategy {}", and_list(&s.iter().map(|&s| cli_name(s)).collect::<Vec<_>>())),
            Scope::OwnSplit => "runs without --val-labels (they hold out their own validation images)".into(),
            Scope::ThresholdedLevels => "--mode hierarchical and hybrid with calibrated levels (--calibration logit-adjust or unweighted) or --level-heads sigmoid".into(),
        }
    }

    /// What `c` is instead, as the command line says it.
    fn instead(self, c: &TrainConfig) -> String {
        match self {
            Scope::Modes(_) => cli_name(c.mode),
            Scope::StagedLevels if c.mode.has_levels() => "--schedule joint".into(),
            Scope::StagedLevels => format!("--mode {}", cli_name(c.mode)),
            Scope::Strategies(_) if c.mode == Mode::Knn => "--mode knn (nothing is trained)".into(),
            Scope::Strategies(_) => cli_name(c.strategy),
            Scope::OwnSplit => "a run given --val-labels".into(),
            Scope::ThresholdedLevels if c.mode.has_levels() => "--calibration none (a level's arg-max over its concepts and \"none\" names one concept)".into(),
            Scope::ThresholdedLevels => format!("--mode {}", cli_name(c.mode)),
        }
    }
}

/// The field of [`TrainConfig`] that `option` (named as on the command line) sets.
fn field_of(option: &str) -> String {
    match option {
        "condition" => "condition_on_previous".into(),
        "no-augment" => "augment".into(),
        _ => option.replace('-', "_"),
    }
}

/// Where `option` (named as on the command line) applies; `None` for an option that applies to
/// every run.
pub fn scope_of(option: &str) -> Option<Scope> {
    OPTION_SCOPES.iter().find(|(o, _)| *o == option).map(|(_, s)| *s)
}

impl TrainConfig {
    /// The defaults, for the command line's `default_value_t`.
    pub fn defaults() -> &'static TrainConfig {
        &DEFAULTS
    }

    /// The same configuration in the one form a run stores: a flat or kNN model's `--concepts`
    /// becomes its `top_k` and `min_count` (what a flat model's label space always was).
    pub fn canonical(mut self) -> TrainConfig {
        if matches!(self.mode, Mode::Flat | Mode::Knn) {
            if let Some(spec) = self.concepts.take() {
                (self.top_k, self.min_count) = spec.top_k_min_count();
            }
        }
        self
    }

    /// Refuse the first of `given` (options named as on the command line, e.g. the ones a user
    /// typed) that does not apply to this run, saying where it applies ([`OPTION_SCOPES`]).
    pub fn refuse_inapplicable<'a>(&self, given: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
        let given: Vec<&str> = given.into_iter().collect();
        for &option in &given {
            if let Some(scope) = scope_of(option).filter(|s| !s.applies(self)) {
                return Err(ConfigError::NotApplicable(format!("--{option} applies to {}, not {}", scope.describe(), scope.instead(self))));
            }
        }
        // `train` only (an experiment splits with these itself): the groups and the split seed
        // shape the held-out validation part and the --max-train-images sample, and nothing else
        if self.val_labels.is_some() && self.max_train_images == 0 {
            if let Some(option) = given.iter().find(|o| ["groups", "split-seed"].contains(o)) {
                return Err(ConfigError::NotApplicable(format!("--{option} applies to runs that hold out their own validation images or sample --max-train-images, not a run given --val-labels")));
            }
        }
        Ok(())
    }

    /// The settings that make the run: every option that does not apply to it ([`OPTION_SCOPES`])
    /// set to its default, in the one form a run stores ([`TrainConfig::canonical`]). Two
    /// configurations with the same used settings train the same run (a flat run's residual-head
    /// options mean nothing, so a changed default there changes no run).
    pub fn used_settings(&self) -> TrainConfig {
        let c = self.clone().canonical();
        let defaults = serde_json::to_value(TrainConfig::defaults()).expect("configs serialise");
        let mut v = serde_json::to_value(&c).expect("configs serialise");
        for (option, _) in OPTION_SCOPES.iter().filter(|(_, s)| !s.applies(&c)) {
            let field = field_of(option);
            v[&field] = defaults[&field].clone();
        }
        serde_json::from_value(v).expect("a config read back as written")
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
    fn a_label_space_reads_and_writes_as_typed_and_a_flat_models_is_its_top_k() {
        for (text, spec) in [("top-k:25", LabelSpec::TopK(25)), ("min-count:5", LabelSpec::MinCount(5)), ("all", LabelSpec::All)] {
            assert_eq!(text.parse::<LabelSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), text);
            assert_eq!(serde_json::to_string(&spec).unwrap(), format!("\"{text}\""));
        }
        for bad in ["top-k:0", "top-k:x", "min-count", "most:3", ""] {
            assert!(bad.parse::<LabelSpec>().is_err(), "{bad}");
        }
        let flat = TrainConfig { concepts: Some(LabelSpec::MinCount(4)), ..TrainConfig::default() }.canonical();
        assert_eq!((flat.concepts, flat.top_k, flat.min_count), (None, usize::MAX, 4));
        let hier = TrainConfig { mode: Mode::Hierarchical, concepts: Some(LabelSpec::TopK(9)), ..TrainConfig::default() }.canonical();
        assert_eq!(hier.concepts, Some(LabelSpec::TopK(9)), "a hierarchical model keeps the option");
    }

    #[test]
    fn calibration_is_refused_for_sigmoid_level_heads() {
        let c = TrainConfig { mode: Mode::Hierarchical, level_heads: LevelHeads::Sigmoid, calibration: Calibration::None, ..TrainConfig::default() };
        assert!(matches!(c.check(), Err(ConfigError::Combination(m)) if m.contains("--calibration")));
        let flat = TrainConfig { level_heads: LevelHeads::Sigmoid, ..TrainConfig::default() };
        assert!(flat.refuse_inapplicable(["level-heads"]).unwrap_err().to_string().contains("--level-heads applies to --mode hierarchical and hybrid"));
    }

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
            (TrainConfig { epochs: 4_294_967_296, ..Default::default() }, "--epochs 4294967296: must be in 1..=10000"),
            (TrainConfig { batch_size: 1 << 20, ..Default::default() }, "--batch-size 1048576: must be in 1..=65536"),
            (TrainConfig { mode: Mode::Hierarchical, levels: vec![Level::Modality, Level::Anatomy, Level::Modality], ..Default::default() }, "--levels modality,anatomy,modality: level 'modality' is named twice"),
            (TrainConfig { mode: Mode::Hierarchical, head_weights: "modality=2,bogus=1".parse().unwrap(), ..Default::default() }, "--head-weights bogus=1,modality=2: 'bogus' is not a head of this run (its heads: modality, anatomy, laterality)"),
            (TrainConfig { mode: Mode::Hybrid, levels: vec![Level::Modality], head_weights: "anatomy=1".parse().unwrap(), ..Default::default() }, "--head-weights anatomy=1: 'anatomy' is not a head of this run (its heads: modality, rest)"),
            (TrainConfig { mode: Mode::Hierarchical, strategy: Strategy::Layerwise, schedule: HierSchedule::Curriculum, ..Default::default() }, "--strategy layerwise needs --schedule joint"),
        ];
        for (cfg, want) in bad {
            let e = cfg.check().unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} (want {want})");
        }
        assert!(TrainConfig { mode: Mode::Hierarchical, levels: vec![], ..Default::default() }.check().is_err());
        let shared_max = TrainConfig { mode: Mode::Hierarchical, neck: crate::model::Neck::Shared, pooling: crate::model::Pooling::AvgMax, ..Default::default() };
        assert!(shared_max.check().unwrap_err().to_string().contains("--pooling avg-max needs per-head necks"));
        assert!(TrainConfig { val_split: 0.0, val_labels: Some("v.csv".into()), ..Default::default() }.check().is_ok(), "no split needed with --val-labels");
        assert_eq!(TrainConfig::default().check().unwrap().stored(), &TrainConfig::default());
    }

    #[test]
    fn every_option_that_does_not_apply_is_refused_naming_where_it_applies() {
        let flat = TrainConfig::default();
        let e = flat.refuse_inapplicable(["epochs", "levels", "schedule"]).unwrap_err();
        assert_eq!(e.to_string(), "--levels applies to --mode hierarchical and hybrid, not flat");
        assert!(flat.refuse_inapplicable(["epochs", "top-k", "lr", "seed", "ontology"]).is_ok());
        let hier = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Curriculum, ..Default::default() };
        assert!(hier.refuse_inapplicable(["levels", "schedule", "calibration", "max-constraint", "neck", "stage-lr-decay", "head-weights", "condition", "single-valued", "level-heads"]).is_ok());
        let uncalibrated = TrainConfig { calibration: Calibration::None, ..hier.clone() };
        assert!(uncalibrated.refuse_inapplicable(["single-valued"]).unwrap_err().to_string().contains("not --calibration none"));
        assert_eq!(hier.refuse_inapplicable(["top-k"]).unwrap_err().to_string(), "--top-k applies to --mode flat and knn, not hierarchical");
        let joint = TrainConfig { schedule: HierSchedule::Joint, ..hier.clone() };
        assert!(joint.refuse_inapplicable(["stage-lr-decay"]).unwrap_err().to_string().ends_with("not --schedule joint"));
        let knn = TrainConfig { mode: Mode::Knn, ..Default::default() };
        for o in ["epochs", "lr", "strategy", "class-weights", "keep", "feature-cache-gib"] {
            assert!(knn.refuse_inapplicable([o]).is_err(), "{o}");
        }
        assert!(knn.refuse_inapplicable(["knn-k", "top-k", "weights", "batch-size"]).is_ok());
        let head = TrainConfig { strategy: Strategy::Head, ..Default::default() };
        assert!(head.refuse_inapplicable(["feature-cache-gib"]).is_ok() && head.refuse_inapplicable(["layerwise-lr-decay"]).is_err());
        let given_val = TrainConfig { val_labels: Some("v.csv".into()), ..Default::default() };
        assert!(given_val.refuse_inapplicable(["val-split"]).is_err() && flat.refuse_inapplicable(["val-split"]).is_ok());
        // with --val-labels, the groups and split seed change nothing unless a sample is drawn
        assert!(given_val.refuse_inapplicable(["groups"]).unwrap_err().to_string().starts_with("--groups applies to"));
        assert!(given_val.refuse_inapplicable(["split-seed"]).is_err() && flat.refuse_inapplicable(["groups", "split-seed"]).is_ok());
        assert!(TrainConfig { max_train_images: 50, ..given_val.clone() }.refuse_inapplicable(["groups", "split-seed"]).is_ok());
        // the scope table names each option once
        let mut names: Vec<&str> = OPTION_SCOPES.iter().map(|(o, _)| *o).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPTION_SCOPES.len());
        // where they apply, the checks pass: a staged hierarchical run with layerwise is the one
        // combination refused by value
        assert!(TrainConfig { strategy: Strategy::Layerwise, schedule: HierSchedule::Joint, ..hier.clone() }.check().is_ok());
        assert!(TrainConfig { mode: Mode::Hybrid, head_weights: "modality=2,rest=0.5".parse().unwrap(), ..Default::default() }.check().is_ok());
        assert!(TrainConfig { strategy: Strategy::Layerwise, ..flat.clone() }.check().is_ok());
    }

    #[test]
    fn whole_number_rules_are_the_checks_own() {
        let e = TrainConfig { epochs: 0, ..Default::default() }.check().unwrap_err().to_string();
        assert!(e.ends_with(whole_number_rule("epochs").unwrap()), "{e}");
        let e = TrainConfig { batch_size: 0, ..Default::default() }.check().unwrap_err().to_string();
        assert!(e.ends_with(whole_number_rule("batch-size").unwrap()), "{e}");
        let e = TrainConfig { image_size: 8, ..Default::default() }.check().unwrap_err().to_string();
        assert!(e.ends_with(whole_number_rule("image-size").unwrap()), "{e}");
        assert_eq!(whole_number_rule("lr"), None);
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
    fn used_settings_reset_exactly_the_options_that_do_not_apply() {
        // every scoped option names a field of the stored configuration
        let fields = serde_json::to_value(TrainConfig::default()).unwrap();
        for (option, _) in OPTION_SCOPES {
            assert!(fields.get(field_of(option)).is_some(), "--{option} names no field");
        }
        let flat = TrainConfig { calibration: Calibration::None, rest_top_k: 3, knn_k: 2, condition_on_previous: true, epochs: 4, top_k: 9, ..TrainConfig::default() };
        let used = flat.used_settings();
        assert_eq!((used.calibration, used.rest_top_k, used.knn_k, used.condition_on_previous), (Calibration::LogitAdjust, 100, 10, false));
        assert_eq!((used.epochs, used.top_k), (4, 9), "a flat run's own options stay");
        let knn = TrainConfig { mode: Mode::Knn, epochs: 4, augment: None, knn_k: 2, ..TrainConfig::default() }.used_settings();
        assert_eq!((knn.epochs, knn.augment.is_some(), knn.knn_k), (10, true, 2), "kNN trains nothing");
        let hier = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Joint, stage_lr_decay: 0.5, top_k: 9, conditional_epochs: 2, ..TrainConfig::default() }.used_settings();
        assert_eq!((hier.stage_lr_decay, hier.top_k, hier.conditional_epochs), (1.0, 25, 2));
    }

    #[test]
    fn absolute_paths_keep_the_file_names() {
        let c = TrainConfig { train_labels: "a/labels.csv".into(), ontology: Some("o.tsv".into()), ..Default::default() }.with_absolute_paths();
        assert!(c.train_labels.is_absolute() && c.train_labels.ends_with("a/labels.csv"));
        assert!(c.ontology.as_ref().unwrap().is_absolute());
        assert!(c.val_labels.is_none());
    }
}
