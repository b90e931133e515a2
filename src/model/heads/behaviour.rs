//! What every head kind provides ([`HeadBehaviour`]) and the values the kinds hand their callers
//! ([`HeadTargets`], [`SingleLabelDecoding`]).
//!
//! This file sits below the kinds' files (`multi_label.rs`, `single_label.rs`), which implement
//! the trait, and below `heads/mod.rs`, which picks a kind's implementation: so nothing here may
//! name either. The operations take plain values (tensors, slices, label sets, flags), never a
//! training or evaluation type, so that the model's floor can hold them.
use std::collections::BTreeSet;

use ndarray::ArrayView1;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// The operations that differ from one head kind to another, one implementation per kind (see
/// [`super::HeadKind::behaviour`]). `concepts` is always the head's number of concepts.
pub trait HeadBehaviour: Sync {
    /// Logits per image: one per concept, plus any extra class of the kind.
    fn n_outputs(&self, concepts: usize) -> i64;

    /// The outputs beyond one per concept, as the training plan names them after the concept
    /// count (`" + none"`), or `""`.
    fn extra_outputs(&self) -> &'static str;

    /// Concept probabilities `[B, concepts]` from logits `[B, n_outputs]` whose logit adjustment
    /// is already removed; `constraint`: the head's max-constraint matrix, if it has one.
    fn probabilities(&self, logits: &Tensor, concepts: usize, constraint: Option<&Tensor>) -> Tensor;

    /// The training targets of the images whose label sets are `labels`; `descendants`: the
    /// head's max-constraint (each concept's descendants within the head), empty for none.
    fn targets(&self, concepts: &[String], descendants: &[Vec<usize>], labels: &[BTreeSet<String>]) -> HeadTargets;

    /// How many images of `targets` have each of the head's concepts.
    fn counts(&self, targets: &HeadTargets, concepts: usize) -> Vec<usize>;

    /// Balanced class weights from `targets`, one per output. `model_mean`: the mean count of
    /// the whole model's concepts (`--class-weights balanced-model`), for kinds that weigh a
    /// concept against the model rather than against its head.
    fn class_weights(&self, targets: &HeadTargets, concepts: usize, model_mean: Option<f64>) -> Vec<f32>;

    /// The mean loss of a batch: `logits` `[B, n_outputs]`, `targets` as [`HeadTargets::batch`]
    /// gives them, `weights` from [`HeadBehaviour::class_weights`], `constraint` the head's
    /// max-constraint matrix.
    fn loss(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, constraint: Option<&Tensor>) -> Tensor;

    /// Whether the head's concepts exclude each other (a softmax over them and "none"): it
    /// names one concept or none, a concept it did not choose scores 0 at decoding, and
    /// calibration (`--calibration`, which is about that choice) applies to it.
    fn exclusive(&self) -> bool;

    /// Whether the kind can carry C-HMCNN's max-constraint (`--max-constraint`).
    fn takes_max_constraint(&self) -> bool;

    /// Whether the head is decided as one single-valued group: its best concept (or two) keeps
    /// its score for the thresholds and the others score 0. `single_valued`: the spec's flag (a
    /// sigmoid head over a single-valued level).
    fn single_valued_group(&self, single_valued: bool, single_label: SingleLabelDecoding) -> bool;

    /// The decision the kind makes on its own before the thresholds, if any: `probs` are the
    /// head's probabilities (after the lift), `scores` its scores after the cap, rewritten here.
    fn choose(&self, probs: ArrayView1<f32>, scores: &mut [f32], single_label: SingleLabelDecoding);

    /// How the kind's probabilities are computed, in words (`model.json`'s output meaning).
    fn describe_probabilities(&self) -> &'static str;

    /// The kind's decoding step, in words (one of `model.json`'s decoding steps).
    fn describe_decoding(&self, single_label: SingleLabelDecoding) -> &'static str;
}

/// One head's targets for every image of a dataset, in one of the shapes a kind builds.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadTargets {
    /// Multi-hot rows, `K` floats per image.
    Multi(Vec<f32>, usize),
    /// The class of each image: the index of its concept, or `K` for "none".
    Single(Vec<i64>),
}

impl HeadTargets {
    /// The targets of the images at `idx`, as a tensor on `device`.
    pub fn batch(&self, idx: &[usize], device: Device) -> Tensor {
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
}

/// How a single-label head's probabilities become a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SingleLabelDecoding {
    /// Arg-max over the concepts and "none"; the chosen concept scores 1, the others 0, so no
    /// threshold can switch the level off.
    #[default]
    Argmax,
    /// The most probable concept (excluding "none") keeps its probability as its score, the
    /// others score 0, and the level's threshold decides: a level can abstain.
    Threshold,
}
