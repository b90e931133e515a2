//! The stage schedule of a run, derived from its configuration: which heads count in the loss,
//! which parameters train at which learning rate, and for how many epochs, stage by stage.
//! Printed at the start of training and written as `schedule.json`.
use serde::{Deserialize, Serialize};

use super::checked::CheckedConfig;
use super::config::{HierSchedule, Strategy};

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
    pub(crate) fn total_epochs(&self) -> usize {
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

/// `total` epochs over `parts` stages, later stages (which train more) getting the remainder.
/// With `at_least_one` every stage gets an epoch even when that spends more than `total` (the rule
/// before the fair schedule); without it a stage may get none (and is then left out).
fn split_epochs(total: usize, parts: usize, at_least_one: bool) -> Vec<usize> {
    let parts = parts.max(1);
    let base = total / parts;
    let rem = total % parts;
    (0..parts).map(|i| (base + usize::from(i >= parts - rem)).max(usize::from(at_least_one))).collect()
}

/// Derive the stage schedule for `cfg` with the given head names (in order); `shared_neck`: the
/// model has one neck shared by its heads, which trains whenever a head does.
pub fn build_schedule(cfg: &CheckedConfig, head_names: &[String], shared_neck: bool) -> Schedule {
    let Some(fit) = cfg.fit() else {
        return Schedule { stages: Vec::new() }; // kNN: nothing is trained
    };
    let head_prefix = |i: usize| format!("heads.{}", head_names[i]);
    let neck: Vec<String> = if shared_neck { vec!["neck".into()] } else { Vec::new() };
    let all_heads: Vec<usize> = (0..head_names.len()).collect();
    let heads: Vec<String> = all_heads.iter().map(|&i| head_prefix(i)).chain(neck.iter().cloned()).collect();
    let trunk_all: Vec<String> = cfg.trunk.groups().iter().map(|s| s.to_string()).collect();
    let trunk_trains = fit.strategy != Strategy::Head;
    let mut stages = Vec::new();
    // the levels added stage by stage (stepwise, curriculum), or every head at once
    let staged = cfg.levels().filter(|l| l.schedule != HierSchedule::Joint && head_names.len() > 1);
    match staged {
        Some(levels_cfg) => {
            // curriculum: the levels are added over the first half, then all train together.
            // A hybrid model's residual head lies on no level: it trains from the first stage.
            let joint = if levels_cfg.schedule == HierSchedule::Curriculum { fit.epochs - fit.epochs / 2 } else { 0 };
            let rest: Vec<usize> = head_names.iter().position(|n| n == super::data::REST).into_iter().collect();
            let levels: Vec<usize> = all_heads.iter().copied().filter(|i| !rest.contains(i)).collect();
            let epochs = split_epochs(fit.epochs - joint, levels.len(), !fit.fair_schedule && joint == 0);
            for (l, &e) in epochs.iter().enumerate().filter(|(_, &e)| e > 0) {
                let lr = fit.lr * levels_cfg.stage_lr_decay.powi(l as i32);
                let new: Vec<usize> = std::iter::once(levels[l]).chain(rest.iter().copied().filter(|_| l == 0)).collect();
                let mut groups = vec![ParamGroup { prefixes: new.iter().map(|&i| head_prefix(i)).chain(neck.iter().cloned()).collect(), lr: fit.lr }];
                let earlier: Vec<usize> = levels[..l].iter().copied().chain(rest.iter().copied().filter(|_| l > 0)).collect();
                if !earlier.is_empty() {
                    groups.push(ParamGroup { prefixes: earlier.iter().map(|&i| head_prefix(i)).collect(), lr });
                }
                if trunk_trains {
                    groups.push(ParamGroup { prefixes: trunk_all.clone(), lr });
                }
                let mut in_loss: Vec<usize> = levels[..=l].iter().chain(rest.iter()).copied().collect();
                in_loss.sort_unstable();
                let name = if l == 0 && !rest.is_empty() { format!("+{}+{}", head_names[levels[0]], super::data::REST) } else { format!("+{}", head_names[levels[l]]) };
                stages.push(Stage { name, epochs: e, heads_in_loss: in_loss, groups, trunk_trains });
            }
            if joint > 0 {
                let prefixes = heads.iter().cloned().chain(if trunk_trains { trunk_all.clone() } else { Vec::new() }).collect();
                stages.push(Stage { name: "joint".into(), epochs: joint, heads_in_loss: all_heads.clone(), groups: vec![ParamGroup { prefixes, lr: fit.lr }], trunk_trains });
            }
        }
        None => match fit.strategy {
            Strategy::Head => stages.push(Stage {
                name: "heads".into(),
                epochs: fit.epochs,
                heads_in_loss: all_heads.clone(),
                groups: vec![ParamGroup { prefixes: heads, lr: fit.lr }],
                trunk_trains: false,
            }),
            Strategy::Full => stages.push(Stage {
                name: "full".into(),
                epochs: fit.epochs,
                heads_in_loss: all_heads.clone(),
                groups: vec![ParamGroup { prefixes: heads.into_iter().chain(trunk_all.clone()).collect(), lr: fit.lr }],
                trunk_trains: true,
            }),
            Strategy::Layerwise => {
                // the trunk's groups from the output side down: ResNet's layer4, layer3, layer2, layer1, stem
                let blocks: Vec<Vec<String>> = cfg.trunk.layerwise_groups().iter().map(|g| g.iter().map(|s| s.to_string()).collect()).collect();
                let n_stages = (blocks.len() + 1).min(fit.epochs.max(1));
                let epochs = split_epochs(fit.epochs, n_stages, true);
                let mut unfrozen: Vec<String> = Vec::new();
                for (s, &e) in epochs.iter().enumerate() {
                    if s > 0 {
                        unfrozen.extend(blocks[s - 1].iter().cloned());
                    }
                    // Keras recipe: recompile with a lower learning rate each time more is unfrozen.
                    let lr = fit.lr * fit.layerwise_lr_decay.powi(s as i32);
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
        },
    }
    Schedule { stages }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::{Mode, TrainConfig};

    #[test]
    fn epochs_are_split_with_at_least_one_each() {
        assert_eq!(split_epochs(6, 3, true), vec![2, 2, 2]);
        assert_eq!(split_epochs(7, 3, true), vec![2, 2, 3]);
        assert_eq!(split_epochs(2, 3, true), vec![1, 1, 1]);
        assert_eq!(split_epochs(2, 3, false), vec![0, 1, 1]);
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_hybrid_residual_head_trains_from_the_first_stage() {
        let heads = names(&["modality", "anatomy", "plane", crate::train::data::REST]);
        for schedule in [HierSchedule::Stepwise, HierSchedule::Curriculum] {
            let cfg = TrainConfig { mode: Mode::Hybrid, schedule, epochs: 6, ..Default::default() };
            let s = build_schedule(&cfg.clone().check().unwrap(), &heads, false);
            assert_eq!(s.total_epochs(), 6, "{s}");
            // the levels come one per stage; the residual head is in every stage's loss and trained
            for (i, stage) in s.stages.iter().enumerate() {
                assert!(stage.heads_in_loss.contains(&3), "{schedule:?} stage {i}:\n{s}");
                assert!(stage.groups.iter().any(|g| g.prefixes.contains(&"heads.rest".to_string())), "{schedule:?} stage {i}:\n{s}");
            }
            assert_eq!(s.stages[0].heads_in_loss, vec![0, 3], "{s}");
            assert_eq!(s.stages[1].heads_in_loss, vec![0, 1, 3], "{s}");
        }
    }

    #[test]
    fn a_fair_stepwise_schedule_spends_exactly_its_epochs() {
        let levels = names(&["modality", "anatomy", "laterality", "plane", "view", "technique", "finding"]);
        for (epochs, fair, want_total, want_stages) in [(12, true, 12, 7), (5, true, 5, 5), (5, false, 7, 7), (14, false, 14, 7)] {
            let cfg = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Stepwise, epochs, fair_schedule: fair, ..Default::default() };
            let s = build_schedule(&cfg.clone().check().unwrap(), &levels, false);
            assert_eq!((s.total_epochs(), s.stages.len()), (want_total, want_stages), "{epochs} epochs, fair {fair}:\n{s}");
            // the last stage trains every head, whatever was merged
            assert_eq!(s.stages.last().unwrap().heads_in_loss, (0..7).collect::<Vec<_>>());
        }
        // 5 epochs over 7 levels: modality and anatomy join the third level's stage
        let cfg = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Stepwise, epochs: 5, ..Default::default() };
        assert_eq!(build_schedule(&cfg.clone().check().unwrap(), &levels, false).stages[0].heads_in_loss, vec![0, 1, 2]);
    }

    #[test]
    fn curriculum_adds_levels_then_trains_jointly() {
        let cfg = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Curriculum, epochs: 8, ..Default::default() };
        let s = build_schedule(&cfg.clone().check().unwrap(), &names(&["modality", "anatomy", "laterality"]), true);
        assert_eq!(s.total_epochs(), 8);
        let last = s.stages.last().unwrap();
        assert_eq!((last.name.as_str(), last.epochs, last.heads_in_loss.len()), ("joint", 4, 3));
        assert_eq!(s.stages.iter().map(|st| st.epochs).collect::<Vec<_>>(), vec![1, 1, 2, 4]);
        // the shared neck trains from the first stage on
        assert!(s.stages.iter().all(|st| st.groups.iter().any(|g| g.prefixes.contains(&"neck".to_string()))));
    }

    #[test]
    fn layerwise_unfreezes_from_the_top() {
        let cfg = TrainConfig { strategy: Strategy::Layerwise, epochs: 6, ..Default::default() };
        let s = build_schedule(&cfg.clone().check().unwrap(), &["flat".into()], false);
        assert_eq!(s.stages.len(), 6);
        assert_eq!(s.stages[0].groups[0].prefixes, vec!["heads.flat"]);
        assert_eq!(s.stages[1].groups[0].prefixes, vec!["heads.flat", "layer4"]);
        assert_eq!(s.stages[5].groups[0].prefixes.len(), 7);
        assert!(s.stages[2].groups[0].lr < s.stages[1].groups[0].lr);
    }

    /// Every trunk unfreezes in five steps named after its groups (torchvision's stages, output
    /// side first), and the last stage trains all of the trunk.
    #[test]
    fn layerwise_steps_follow_each_trunks_groups() {
        use crate::model::TrunkKind;
        let cases = [
            (TrunkKind::Resnet50, vec!["+layer4", "+layer3", "+layer2", "+layer1", "+conv1+bn1"]),
            (
                TrunkKind::Densenet121,
                vec![
                    "+features.transition3+features.denseblock4+features.norm5",
                    "+features.transition2+features.denseblock3",
                    "+features.transition1+features.denseblock2",
                    "+features.denseblock1",
                    "+features.conv0+features.norm0",
                ],
            ),
            (TrunkKind::EfficientnetB0, vec!["+features.6+features.7+features.8", "+features.4+features.5", "+features.3", "+features.2", "+features.0+features.1"]),
            (TrunkKind::ConvnextTiny, vec!["+features.6+features.7", "+features.4+features.5", "+features.2+features.3", "+features.1", "+features.0"]),
        ];
        for (trunk, steps) in cases {
            let cfg = TrainConfig { trunk, strategy: Strategy::Layerwise, epochs: 6, ..Default::default() };
            let s = build_schedule(&cfg.clone().check().unwrap(), &["flat".into()], false);
            let got: Vec<&str> = s.stages.iter().map(|st| st.name.as_str()).collect();
            assert_eq!(got, [vec!["heads"], steps].concat(), "{trunk}");
            let mut last = s.stages[5].groups[0].prefixes.clone();
            last.sort();
            let mut all: Vec<String> = std::iter::once("heads.flat").chain(trunk.groups()).map(String::from).collect();
            all.sort();
            assert_eq!(last, all, "{trunk}");
        }
    }

    #[test]
    fn stepwise_adds_one_head_per_stage() {
        let cfg = TrainConfig { mode: Mode::Hierarchical, schedule: HierSchedule::Stepwise, epochs: 3, ..Default::default() };
        let names: Vec<String> = ["modality", "anatomy", "laterality"].iter().map(|s| s.to_string()).collect();
        let s = build_schedule(&cfg.clone().check().unwrap(), &names, false);
        assert_eq!(s.stages.len(), 3);
        assert_eq!(s.stages[2].heads_in_loss, vec![0, 1, 2]);
        assert_eq!(s.stages[1].groups[0].prefixes, vec!["heads.anatomy"]);
        assert_eq!(s.stages[1].groups[1].prefixes, vec!["heads.modality"]);
    }
}
