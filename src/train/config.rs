//! Typed training configuration and the stage schedule derived from it.
//!
//! A [`TrainConfig`] is validated before any work starts and written as `config.json` in the run
//! directory; [`Schedule`] (the list of [`Stage`]s) is derived from it, printed at the start of
//! training and written as `schedule.json`.
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::pipeline::AugmentConfig;
use crate::model::{MemoryFormat, TrunkKind, TRUNK_GROUPS};
use crate::ontology::Level;

/// Flat (one head over the top-K concepts) or hierarchical (one head per level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Flat,
    Hierarchical,
}

/// How the trunk is fine-tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HierSchedule {
    /// All heads at once, per-level losses summed with weights.
    Joint,
    /// Stage l adds level l's head to the loss (the paper's proposed stepwise training).
    Stepwise,
}

/// Class weighting of the losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// scikit-learn "balanced" weights (see [`crate::data::dataset::balanced_pos_weights`]).
    Balanced,
    None,
}

/// Where to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

macro_rules! from_str_enum {
    ($t:ty, $($s:literal => $v:expr),+) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($v),)+
                    o => Err(format!("unknown value '{o}' (expected one of: {})", [$($s),+].join(", "))),
                }
            }
        }
    };
}
from_str_enum!(Mode, "flat" => Mode::Flat, "hierarchical" => Mode::Hierarchical);
from_str_enum!(Strategy, "head" => Strategy::Head, "full" => Strategy::Full, "layerwise" => Strategy::Layerwise);
from_str_enum!(HierSchedule, "joint" => HierSchedule::Joint, "stepwise" => HierSchedule::Stepwise);
from_str_enum!(ClassWeights, "balanced" => ClassWeights::Balanced, "none" => ClassWeights::None);
from_str_enum!(DeviceChoice, "auto" => DeviceChoice::Auto, "cpu" => DeviceChoice::Cpu, "cuda" => DeviceChoice::Cuda);

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
            schedule: HierSchedule::Stepwise,
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
            layerwise_lr_decay: 0.5,
            class_weights: ClassWeights::Balanced,
            val_split: 0.15,
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
        }
    }
}

impl TrainConfig {
    /// Reject inconsistent settings before any work starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if self.feature_cache_gib.is_nan() || self.feature_cache_gib < 0.0 {
            return Err(format!("--feature-cache-gib {} must be 0 or more", self.feature_cache_gib));
        }
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if !(16..=1024).contains(&self.image_size) {
            return Err(format!("--image-size {} is outside 16..=1024", self.image_size));
        }
        if !(self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!("--lr {} must be in (0, 1)", self.lr));
        }
        if self.val_labels.is_none() && !(self.val_split > 0.0 && self.val_split < 1.0) {
            return Err(format!("--val-split {} must be in (0, 1) when no --val-labels is given", self.val_split));
        }
        if self.mode == Mode::Flat && self.top_k == 0 {
            return Err("--top-k must be at least 1".into());
        }
        if self.mode == Mode::Hierarchical && self.levels.is_empty() {
            return Err("--levels must name at least one level".into());
        }
        if !self.train_labels.is_file() {
            return Err(format!("training labels {} not found", self.train_labels.display()));
        }
        if !self.images.is_dir() {
            return Err(format!("images directory {} not found", self.images.display()));
        }
        Ok(())
    }
}

fn default_feature_cache_gib() -> f64 {
    4.0
}

fn default_layerwise_decay() -> f64 {
    0.5
}

/// A group of parameters trained together at one learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    /// Variable-name prefixes (`layer4`, `heads.modality`, ...).
    pub prefixes: Vec<String>,
    pub lr: f64,
}

/// One stage of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub epochs: usize,
    /// Heads (by index) whose losses count in this stage.
    pub heads_in_loss: Vec<usize>,
    /// What is trained, at which learning rate; everything else is frozen.
    pub groups: Vec<ParamGroup>,
    /// Whether the trunk's BatchNorm layers update their statistics (true when any trunk block trains).
    pub trunk_trains: bool,
}

/// The stages of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub stages: Vec<Stage>,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            writeln!(f, "  stage {} '{}': {} epoch(s), loss on heads {:?}", i + 1, s.name, s.epochs, s.heads_in_loss)?;
            for g in &s.groups {
                writeln!(f, "      lr {:.2e}: {}", g.lr, g.prefixes.join(", "))?;
            }
        }
        Ok(())
    }
}

fn split_epochs(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    let base = total / parts;
    let rem = total % parts;
    // Later stages (which train more) get the remainder; every stage gets at least one epoch.
    (0..parts).map(|i| (base + usize::from(i >= parts - rem)).max(1)).collect()
}

/// Trunk prefixes unfrozen at layerwise step `k` (1-based): layer4, then layer3, ..., then the stem.
fn trunk_blocks_top_down() -> Vec<Vec<String>> {
    vec![
        vec!["layer4".into()],
        vec!["layer3".into()],
        vec!["layer2".into()],
        vec!["layer1".into()],
        vec!["conv1".into(), "bn1".into()],
    ]
}

/// Derive the stage schedule for `cfg` with the given head names (in order).
pub fn build_schedule(cfg: &TrainConfig, head_names: &[String]) -> Schedule {
    let head_prefix = |i: usize| format!("heads.{}", head_names[i]);
    let all_heads: Vec<usize> = (0..head_names.len()).collect();
    let trunk_all: Vec<String> = TRUNK_GROUPS.iter().map(|s| s.to_string()).collect();
    let mut stages = Vec::new();
    match (cfg.mode, cfg.schedule) {
        (Mode::Hierarchical, HierSchedule::Stepwise) if head_names.len() > 1 => {
            let epochs = split_epochs(cfg.epochs, head_names.len());
            for (l, &e) in epochs.iter().enumerate() {
                let lr = cfg.lr * cfg.stage_lr_decay.powi(l as i32);
                let mut groups = vec![ParamGroup { prefixes: vec![head_prefix(l)], lr: cfg.lr }];
                if l > 0 {
                    groups.push(ParamGroup { prefixes: (0..l).map(head_prefix).collect(), lr });
                }
                let trunk_trains = cfg.strategy != Strategy::Head;
                if trunk_trains {
                    groups.push(ParamGroup { prefixes: trunk_all.clone(), lr });
                }
                stages.push(Stage {
                    name: format!("+{}", head_names[l]),
                    epochs: e,
                    heads_in_loss: (0..=l).collect(),
                    groups,
                    trunk_trains,
                });
            }
        }
        _ => {
            let heads: Vec<String> = all_heads.iter().map(|&i| head_prefix(i)).collect();
            match cfg.strategy {
                Strategy::Head => stages.push(Stage {
                    name: "heads".into(),
                    epochs: cfg.epochs,
                    heads_in_loss: all_heads.clone(),
                    groups: vec![ParamGroup { prefixes: heads, lr: cfg.lr }],
                    trunk_trains: false,
                }),
                Strategy::Full => stages.push(Stage {
                    name: "full".into(),
                    epochs: cfg.epochs,
                    heads_in_loss: all_heads.clone(),
                    groups: vec![ParamGroup { prefixes: heads.into_iter().chain(trunk_all.clone()).collect(), lr: cfg.lr }],
                    trunk_trains: true,
                }),
                Strategy::Layerwise => {
                    let blocks = trunk_blocks_top_down();
                    let n_stages = (blocks.len() + 1).min(cfg.epochs.max(1));
                    let epochs = split_epochs(cfg.epochs, n_stages);
                    let mut unfrozen: Vec<String> = Vec::new();
                    for (s, &e) in epochs.iter().enumerate() {
                        if s > 0 {
                            unfrozen.extend(blocks[s - 1].iter().cloned());
                        }
                        // Keras recipe: recompile with a lower learning rate each time more is unfrozen.
                        let lr = cfg.lr * cfg.layerwise_lr_decay.powi(s as i32);
                        let name = if s == 0 { "heads".to_string() } else { format!("+{}", blocks[s - 1].join("+")) };
                        stages.push(Stage {
                            name,
                            epochs: e,
                            heads_in_loss: all_heads.clone(),
                            groups: vec![ParamGroup { prefixes: heads.iter().cloned().chain(unfrozen.iter().cloned()).collect(), lr }],
                            trunk_trains: s > 0,
                        });
                    }
                }
            }
        }
    }
    Schedule { stages }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_split_with_at_least_one_each() {
        assert_eq!(split_epochs(6, 3), vec![2, 2, 2]);
        assert_eq!(split_epochs(7, 3), vec![2, 2, 3]);
        assert_eq!(split_epochs(2, 3), vec![1, 1, 1]);
    }

    #[test]
    fn layerwise_unfreezes_from_the_top() {
        let cfg = TrainConfig { strategy: Strategy::Layerwise, epochs: 6, ..Default::default() };
        let s = build_schedule(&cfg, &["flat".into()]);
        assert_eq!(s.stages.len(), 6);
        assert_eq!(s.stages[0].groups[0].prefixes, vec!["heads.flat"]);
        assert_eq!(s.stages[1].groups[0].prefixes, vec!["heads.flat", "layer4"]);
        assert_eq!(s.stages[5].groups[0].prefixes.len(), 7);
        assert!(s.stages[2].groups[0].lr < s.stages[1].groups[0].lr);
    }

    #[test]
    fn stepwise_adds_one_head_per_stage() {
        let cfg = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Stepwise, epochs: 3, ..Default::default() };
        let names: Vec<String> = ["modality", "anatomy", "laterality"].iter().map(|s| s.to_string()).collect();
        let s = build_schedule(&cfg, &names);
        assert_eq!(s.stages.len(), 3);
        assert_eq!(s.stages[2].heads_in_loss, vec![0, 1, 2]);
        assert_eq!(s.stages[1].groups[0].prefixes, vec!["heads.anatomy"]);
        assert_eq!(s.stages[1].groups[1].prefixes, vec!["heads.modality"]);
    }
}
