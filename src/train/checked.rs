//! What a checked training configuration means: the parts every run has, and the mode with only
//! its own options.
//!
//! [`TrainConfig`](super::TrainConfig) is what was typed (and what a run stores as `config.json`):
//! one flat record of every option, so the command line, old runs and `experiment`'s variants can
//! all fill it. [`TrainConfig::check`](super::TrainConfig::check) turns it into a
//! [`CheckedConfig`] (after the value checks here, each error naming its option), the only form training reads (ripgrep's low and high arguments, linfa's
//! checked parameters). There an option lives where it applies: [`Common`] holds what every run
//! has (its inputs, split, trunk and runtime), [`Fit`] what a trained run adds (the optimiser, the
//! stages, augmentation), and [`ModeOptions`] one variant per mode carrying only that mode's
//! options, so a flat run cannot read a hierarchical option by mistake: it has none to read.
use std::path::PathBuf;

use std::borrow::Cow;

use super::config::{Calibration, ClassWeights, ConfigError, DeviceChoice, HeadWeights, HierSchedule, Keep, LabelSpec, LevelHeads, Mode, Strategy, TrainConfig};
use super::config::{BATCH_SIZE_RULE, EPOCHS_RULE, MAX_BATCH_SIZE, MAX_EPOCHS};
use crate::data::augment::AugmentConfig;
use crate::model::{HeadLayers, MemoryFormat, Neck, Pooling, SingleValuedRule, TrunkKind};
use crate::ontology::Level;

/// What every run has, whatever its mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub train_labels: PathBuf,
    pub images: PathBuf,
    pub out: PathBuf,
    pub val_labels: Option<PathBuf>,
    pub groups: Option<PathBuf>,
    pub ontology: Option<PathBuf>,
    pub trunk: TrunkKind,
    pub weights: Option<PathBuf>,
    pub image_size: u32,
    pub batch_size: usize,
    /// The share of the training images held out for validation; `None` with `--val-labels`.
    pub val_split: Option<f64>,
    pub split_seed: Option<u64>,
    pub seed: u64,
    pub device: DeviceChoice,
    pub skip_bad: bool,
    pub prefetch: usize,
    pub max_train_images: usize,
    pub memory_format: MemoryFormat,
    pub amp: bool,
    pub image_cache: Option<PathBuf>,
    pub thresholds: crate::eval::thresholds::TuneMode,
}

impl Common {
    /// The seed of the train/validation split and of the `--max-train-images` sample.
    pub fn split_seed(&self) -> u64 {
        self.split_seed.unwrap_or(self.seed)
    }
}

/// What a trained run (flat, hierarchical, hybrid; not kNN) adds: how it is fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub strategy: Strategy,
    pub epochs: usize,
    pub lr: f64,
    /// Per unfreezing stage of `--strategy layerwise`.
    pub layerwise_lr_decay: f64,
    pub class_weights: ClassWeights,
    pub augment: Option<AugmentConfig>,
    pub fair_schedule: bool,
    pub keep: Keep,
    pub pooling: Pooling,
    pub head_layers: HeadLayers,
    pub feature_cache_gib: f64,
}

/// The concepts of a flat or kNN model: the `top_k` most frequent on at least `min_count` training images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopK {
    pub top_k: usize,
    pub min_count: usize,
}

/// What a model with one head per level adds (hierarchical and hybrid).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelOptions {
    pub levels: Vec<Level>,
    pub schedule: HierSchedule,
    /// Per stage of a stepwise or curriculum schedule.
    pub stage_lr_decay: f64,
    pub condition_on_previous: bool,
    pub calibration: Calibration,
    pub head_weights: HeadWeights,
    pub max_constraint: bool,
    pub neck: Neck,
    pub level_heads: LevelHeads,
    pub single_valued: SingleValuedRule,
    pub conditional_epochs: usize,
    pub local_per_parent: bool,
    /// The label space (`--concepts`); `None`: every concept of the levels on at least `min_count` images.
    pub concepts: Option<LabelSpec>,
    pub min_count: usize,
}

/// What a hybrid model's residual head adds.
#[derive(Debug, Clone, PartialEq)]
pub struct RestOptions {
    pub top_k: usize,
    pub pooling: Pooling,
    pub noise: crate::eval::ceiling::Noise,
}

/// The mode, with only its own options.
#[derive(Debug, Clone, PartialEq)]
pub enum ModeOptions {
    Flat { concepts: TopK, fit: Fit },
    Hierarchical { levels: LevelOptions, fit: Fit },
    Hybrid { levels: LevelOptions, rest: RestOptions, fit: Fit },
    /// Nothing is trained: the training images' embeddings are the index.
    Knn { concepts: TopK, k: usize },
}

/// `Err(ConfigError::Value)` unless `ok`.
fn require(ok: bool, option: &'static str, value: impl std::fmt::Display, rule: impl Into<Cow<'static, str>>) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Value { option, value: value.to_string(), rule: rule.into() })
    }
}

impl TrainConfig {
    /// Check every value before any work starts.
    pub fn check(self) -> Result<CheckedConfig, ConfigError> {
        self.canonical().check_values()
    }

    fn check_values(self) -> Result<CheckedConfig, ConfigError> {
        require((1..=MAX_EPOCHS).contains(&self.epochs), "epochs", self.epochs, EPOCHS_RULE)?;
        require((1..=MAX_BATCH_SIZE).contains(&self.batch_size), "batch-size", self.batch_size, BATCH_SIZE_RULE)?;
        super::config::check_image_size(self.image_size)?;
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
            return Err(ConfigError::Combination("--levels must name at least one level in hierarchical and hybrid mode".into()));
        }
        if self.mode.has_levels() {
            // one head per level: a level named twice would be two heads of one name
            if let Some(twice) = self.levels.iter().enumerate().find(|(i, l)| self.levels[..*i].contains(l)).map(|(_, l)| l) {
                let given: Vec<&str> = self.levels.iter().map(|l| l.as_str()).collect();
                return Err(ConfigError::Value { option: "levels", value: given.join(","), rule: format!("level '{twice}' is named twice; name each level once").into() });
            }
            if let HeadWeights::Custom(m) = &self.head_weights {
                let mut heads: Vec<&str> = self.levels.iter().map(|l| l.as_str()).collect();
                if self.mode == Mode::Hybrid {
                    heads.push(crate::model::REST);
                }
                if let Some(unknown) = m.keys().find(|k| !heads.contains(&k.as_str())) {
                    return Err(ConfigError::Value {
                        option: "head-weights",
                        value: self.head_weights.to_string(),
                        rule: format!("'{unknown}' is not a head of this run (its heads: {})", heads.join(", ")).into(),
                    });
                }
            }
            if self.strategy == Strategy::Layerwise && self.schedule != HierSchedule::Joint {
                return Err(ConfigError::Combination(
                    "--strategy layerwise needs --schedule joint in hierarchical and hybrid mode (stepwise and curriculum schedules add the heads stage by stage, not the trunk's blocks)".into(),
                ));
            }
        }
        if self.mode.has_levels() && self.conditional_epochs >= self.epochs {
            return Err(ConfigError::Value { option: "conditional-epochs", value: self.conditional_epochs.to_string(), rule: format!("must be below --epochs ({}): the last epochs train every concept on every image", self.epochs).into() });
        }
        if self.mode.has_levels() && self.local_per_parent && self.conditional_epochs > 0 {
            return Err(ConfigError::Combination("--conditional-epochs and --local-per-parent: a local classifier per parent learns a child on its parents' images in every epoch; give one".into()));
        }
        if self.mode.has_levels() && self.level_heads == LevelHeads::Sigmoid && self.calibration != Calibration::LogitAdjust {
            return Err(ConfigError::Combination("--calibration applies to softmax level heads; with --level-heads sigmoid every level is a set of sigmoids decided by its thresholds".into()));
        }
        if self.mode.has_levels() && self.neck == crate::model::Neck::Shared && self.pooling != crate::model::Pooling::Avg {
            return Err(ConfigError::Combination("--pooling avg-max needs per-head necks (--neck per-head): a shared neck averages".into()));
        }
        if self.mode == Mode::Hybrid {
            require(self.rest_top_k >= 1, "rest-top-k", self.rest_top_k, "must be at least 1")?;
        }
        if let Some(a) = &self.augment {
            require(a.rotation_deg.is_finite() && (0.0..=180.0).contains(&a.rotation_deg), "rotation", a.rotation_deg, "must be in 0..=180 degrees")?;
            require(a.zoom.is_finite() && (0.0..1.0).contains(&a.zoom), "zoom", a.zoom, "must be in [0, 1)")?;
            require(a.shear_deg.is_finite() && (0.0..90.0).contains(&a.shear_deg), "shear", a.shear_deg, "must be in [0, 90) degrees")?;
        }
        Ok(CheckedConfig::new(self))
    }
}

/// A [`TrainConfig`] whose values passed [`TrainConfig::check`] (only that function makes one),
/// read through its typed parts: [`Common`] (also by `Deref`), [`CheckedConfig::fit`],
/// [`CheckedConfig::levels`], [`CheckedConfig::rest`] and [`CheckedConfig::options`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedConfig {
    common: Common,
    mode: ModeOptions,
    /// What was given (in the one form a run stores), for `config.json`.
    stored: TrainConfig,
}

impl std::ops::Deref for CheckedConfig {
    type Target = Common;
    fn deref(&self) -> &Common {
        &self.common
    }
}

impl CheckedConfig {
    /// Split a configuration that passed its checks into its typed parts.
    fn new(c: TrainConfig) -> CheckedConfig {
        let common = Common {
            train_labels: c.train_labels.clone(),
            images: c.images.clone(),
            out: c.out.clone(),
            val_labels: c.val_labels.clone(),
            groups: c.groups.clone(),
            ontology: c.ontology.clone(),
            trunk: c.trunk,
            weights: c.weights.clone(),
            image_size: c.image_size,
            batch_size: c.batch_size,
            val_split: c.val_labels.is_none().then_some(c.val_split),
            split_seed: c.split_seed,
            seed: c.seed,
            device: c.device,
            skip_bad: c.skip_bad,
            prefetch: c.prefetch,
            max_train_images: c.max_train_images,
            memory_format: c.memory_format,
            amp: c.amp,
            image_cache: c.image_cache.clone(),
            thresholds: c.thresholds,
        };
        let fit = || Fit {
            strategy: c.strategy,
            epochs: c.epochs,
            lr: c.lr,
            layerwise_lr_decay: c.layerwise_lr_decay,
            class_weights: c.class_weights,
            augment: c.augment,
            fair_schedule: c.fair_schedule,
            keep: c.keep,
            pooling: c.pooling,
            head_layers: c.head_layers,
            feature_cache_gib: c.feature_cache_gib,
        };
        let levels = || LevelOptions {
            levels: c.levels.clone(),
            schedule: c.schedule,
            stage_lr_decay: c.stage_lr_decay,
            condition_on_previous: c.condition_on_previous,
            calibration: c.calibration,
            head_weights: c.head_weights.clone(),
            max_constraint: c.max_constraint,
            neck: c.neck,
            level_heads: c.level_heads,
            single_valued: c.single_valued,
            conditional_epochs: c.conditional_epochs,
            local_per_parent: c.local_per_parent,
            concepts: c.concepts,
            min_count: c.min_count,
        };
        let top_k = TopK { top_k: c.top_k, min_count: c.min_count };
        let mode = match c.mode {
            Mode::Flat => ModeOptions::Flat { concepts: top_k, fit: fit() },
            Mode::Hierarchical => ModeOptions::Hierarchical { levels: levels(), fit: fit() },
            Mode::Hybrid => ModeOptions::Hybrid { levels: levels(), rest: RestOptions { top_k: c.rest_top_k, pooling: c.rest_pooling, noise: c.noise }, fit: fit() },
            Mode::Knn => ModeOptions::Knn { concepts: top_k, k: c.knn_k },
        };
        CheckedConfig { common, mode, stored: c }
    }

    /// The mode and its options.
    pub fn options(&self) -> &ModeOptions {
        &self.mode
    }

    /// The mode's name.
    pub fn mode(&self) -> Mode {
        match self.mode {
            ModeOptions::Flat { .. } => Mode::Flat,
            ModeOptions::Hierarchical { .. } => Mode::Hierarchical,
            ModeOptions::Hybrid { .. } => Mode::Hybrid,
            ModeOptions::Knn { .. } => Mode::Knn,
        }
    }

    /// How a trained run is fitted; `None` for kNN (nothing is trained).
    pub fn fit(&self) -> Option<&Fit> {
        match &self.mode {
            ModeOptions::Flat { fit, .. } | ModeOptions::Hierarchical { fit, .. } | ModeOptions::Hybrid { fit, .. } => Some(fit),
            ModeOptions::Knn { .. } => None,
        }
    }

    /// The level options of a hierarchical or hybrid run.
    pub fn levels(&self) -> Option<&LevelOptions> {
        match &self.mode {
            ModeOptions::Hierarchical { levels, .. } | ModeOptions::Hybrid { levels, .. } => Some(levels),
            _ => None,
        }
    }

    /// The residual head's options of a hybrid run.
    pub fn rest(&self) -> Option<&RestOptions> {
        match &self.mode {
            ModeOptions::Hybrid { rest, .. } => Some(rest),
            _ => None,
        }
    }

    /// The configuration as a run stores it (`config.json`).
    pub fn stored(&self) -> &TrainConfig {
        &self.stored
    }

    /// The configuration, for deriving another one (which must be checked again).
    pub fn into_inner(self) -> TrainConfig {
        self.stored
    }

    /// Epochs the run trains for (0 for kNN).
    pub fn epochs(&self) -> usize {
        self.fit().map_or(0, |f| f.epochs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_carries_only_its_own_options() {
        let flat = TrainConfig { top_k: 7, epochs: 3, ..TrainConfig::default() }.check().unwrap();
        assert_eq!(flat.mode(), Mode::Flat);
        assert!(flat.levels().is_none() && flat.rest().is_none());
        assert_eq!((flat.fit().unwrap().epochs, flat.epochs()), (3, 3));
        assert!(matches!(flat.options(), ModeOptions::Flat { concepts: TopK { top_k: 7, min_count: 1 }, .. }));

        let hier = TrainConfig { mode: Mode::Hierarchical, conditional_epochs: 2, ..TrainConfig::default() }.check().unwrap();
        assert_eq!(hier.levels().unwrap().conditional_epochs, 2);
        assert!(hier.rest().is_none() && hier.fit().is_some());

        let hybrid = TrainConfig { mode: Mode::Hybrid, rest_top_k: 9, ..TrainConfig::default() }.check().unwrap();
        assert_eq!(hybrid.rest().unwrap().top_k, 9);
        assert!(hybrid.levels().is_some());

        let knn = TrainConfig { mode: Mode::Knn, knn_k: 4, ..TrainConfig::default() }.check().unwrap();
        assert!(knn.fit().is_none() && knn.levels().is_none() && knn.epochs() == 0);
        assert!(matches!(knn.options(), ModeOptions::Knn { k: 4, .. }));
    }

    #[test]
    fn the_split_share_exists_only_where_the_run_holds_out_its_own_images() {
        let own = TrainConfig { val_split: 0.2, split_seed: None, seed: 5, ..TrainConfig::default() }.check().unwrap();
        assert_eq!((own.val_split, own.split_seed()), (Some(0.2), 5));
        let given = TrainConfig { val_labels: Some("v.csv".into()), split_seed: Some(9), ..TrainConfig::default() }.check().unwrap();
        assert_eq!((given.val_split, given.split_seed()), (None, 9));
    }

    #[test]
    fn the_stored_form_is_what_was_given() {
        let c = TrainConfig { mode: Mode::Hierarchical, epochs: 4, ..TrainConfig::default() };
        let checked = c.clone().check().unwrap();
        assert_eq!(checked.stored(), &c.clone().canonical());
        assert_eq!(checked.into_inner(), c.canonical());
    }
}
