//! The stage schedule of a run, derived from its configuration: which heads count in the loss,
//! which parameters train at which learning rate, and for how many epochs, stage by stage.
//! Printed at the start of training and written as `schedule.json`.
use serde::{Deserialize, Serialize};

use super::config::{HierSchedule, Mode, Strategy, TrainConfig};
use crate::model::TRUNK_GROUPS;

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

impl Schedule {
    /// Epochs over all stages.
    pub fn total_epochs(&self) -> usize {
        self.stages.iter().map(|s| s.epochs).sum()
    }
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
