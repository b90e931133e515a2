//! Heads: what a head is ([`HeadSpec`], its [`HeadKind`]), and one home per kind.
//!
//! Everything that differs between kinds (output width, probabilities from logits, training
//! targets, class weights, loss, decoding, the words `model.json` uses) is an operation of
//! [`HeadBehaviour`], implemented once in the kind's own file: `multi_label.rs` (independent
//! sigmoids), `single_label.rs` (softmax with a "none" class), `local_per_parent.rs` (a child learned
//! against its parent's images, its probability the chain rule's). Callers (the model, training's
//! targets and losses, the decoder, the trainer's plan, export) ask `spec.kind.behaviour()` and
//! never match on the kind. A new kind is a new file implementing [`HeadBehaviour`], a variant of
//! [`HeadKind`] and its arm in [`HeadKind::behaviour`].
//!
//! `behaviour.rs` holds what the kinds share (the trait, [`HeadTargets`], [`SingleLabelDecoding`])
//! below them, so that no file here imports one that imports it.
pub mod behaviour;
pub mod local_per_parent;
pub mod multi_label;
pub mod single_label;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

pub use self::behaviour::{HeadBehaviour, HeadTargets, SingleLabelDecoding};
use self::local_per_parent::LocalPerParentHead;
use self::multi_label::MultiLabelHead;
use self::single_label::SingleLabelHead;
use crate::model::pooling::Pooling;

/// How a head turns logits into concept probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Independent sigmoids, one per concept (several concepts may be present).
    MultiLabel,
    /// Softmax over the concepts plus an explicit "none of these" class (at most one present).
    SingleLabel,
    /// Sigmoids over a level whose concepts nest: a child learned only on its parents' images,
    /// its probability the product down the chain (`--local-per-parent`, HiClass's LCPN).
    LocalPerParent,
}

impl HeadKind {
    /// Every kind, in declaration order.
    pub const ALL: [HeadKind; 3] = [HeadKind::MultiLabel, HeadKind::SingleLabel, HeadKind::LocalPerParent];

    /// The kind's operations.
    pub fn behaviour(self) -> &'static dyn HeadBehaviour {
        match self {
            HeadKind::MultiLabel => &MultiLabelHead,
            HeadKind::SingleLabel => &SingleLabelHead,
            HeadKind::LocalPerParent => &LocalPerParentHead,
        }
    }
}

/// One output head: a name (the level, or `flat`), its concepts, and its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadSpec {
    pub name: String,
    pub concepts: Vec<String>,
    pub kind: HeadKind,
    /// Subtracted from the logits before the sigmoid or softmax (one per output): the log of the
    /// class weights the head was trained with, so its probabilities carry no weight prior
    /// (logit adjustment). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logit_adjustment: Vec<f32>,
    /// C-HMCNN's max-constraint module (multi-label heads): for each concept, its descendants
    /// within this head, itself included; a concept's probability is the largest of theirs.
    /// Empty: no constraint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descendants: Vec<Vec<usize>>,
    /// How the head's own neck pools the feature map (per-head necks; a shared neck averages).
    #[serde(default, skip_serializing_if = "Pooling::is_avg")]
    pub pooling: Pooling,
    /// A multi-label head over a single-valued level (`--level-heads sigmoid`: no two of its
    /// concepts on one training image): decoding keeps its best concept (or two, see
    /// [`crate::model::SingleValuedRule`]) and the thresholds decide.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_valued: bool,
}

impl HeadSpec {
    /// A head without logit adjustment or constraint.
    pub fn new(name: impl Into<String>, concepts: Vec<String>, kind: HeadKind) -> HeadSpec {
        HeadSpec { name: name.into(), concepts, kind, logit_adjustment: Vec::new(), descendants: Vec::new(), pooling: Pooling::Avg, single_valued: false }
    }

    /// Logit width: one per concept, plus the "none" class for single-label heads.
    pub fn n_outputs(&self) -> i64 {
        self.kind.behaviour().n_outputs(self.concepts.len())
    }

    /// The 0/1 matrix `R[a, b]` = "b is a descendant of a (or a itself)" of the max-constraint, `[K, K]`.
    pub fn constraint_matrix(&self, device: Device) -> Option<Tensor> {
        if self.descendants.is_empty() {
            return None;
        }
        let k = self.concepts.len();
        let mut r = vec![0f32; k * k];
        for (a, ds) in self.descendants.iter().enumerate() {
            for &b in ds {
                r[a * k + b] = 1.0;
            }
        }
        Some(Tensor::from_slice(&r).view([k as i64, k as i64]).to_device(device))
    }
}

// (`HeadTargets` is defined in `behaviour.rs`, below the kinds that build it; what needs a spec
// and its kind's operations is here.)
impl HeadTargets {
    /// The targets of head `spec` for the images whose label sets are `labels`.
    pub fn build(spec: &HeadSpec, labels: &[BTreeSet<String>]) -> HeadTargets {
        spec.kind.behaviour().targets(&spec.concepts, &spec.descendants, labels)
    }

    /// How many images have each of the head's concepts.
    pub fn counts(&self, spec: &HeadSpec) -> Vec<usize> {
        spec.kind.behaviour().counts(self, spec.concepts.len())
    }

    /// Balanced class weights for this head's loss.
    /// `model_mean`: the mean count of the model's concepts (`--class-weights balanced-model`); a
    /// multi-label concept's positive weight is then that mean over its count, not its head's mean.
    pub fn weights(&self, spec: &HeadSpec, model_mean: Option<f64>) -> Vec<f32> {
        spec.kind.behaviour().class_weights(self, spec.concepts.len(), model_mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_behaviour_and_its_name_in_model_json() {
        for kind in HeadKind::ALL {
            let spec = HeadSpec::new("h", vec!["A".into(), "B".into()], kind);
            assert_eq!(spec.n_outputs(), 2 + i64::from(!kind.behaviour().extra_outputs().is_empty()));
            let back: HeadKind = serde_json::from_str(&serde_json::to_string(&kind).unwrap()).unwrap();
            assert_eq!(back, kind);
        }
        assert_eq!(serde_json::to_string(&HeadKind::ALL).unwrap(), r#"["multi_label","single_label","local_per_parent"]"#);
    }

    #[test]
    fn all_lists_every_kind() {
        // a new kind stops this match compiling: list it here and in `HeadKind::ALL`
        let listed = |kind: HeadKind| match kind {
            HeadKind::MultiLabel | HeadKind::SingleLabel | HeadKind::LocalPerParent => HeadKind::ALL.contains(&kind),
        };
        assert!(listed(HeadKind::MultiLabel) && listed(HeadKind::SingleLabel) && listed(HeadKind::LocalPerParent));
    }
}
