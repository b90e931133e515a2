//! The single-label head kind: a softmax over the head's concepts plus an explicit "none of
//! these" class, so at most one of its concepts is present on an image (a single-valued level
//! such as modality).
//!
//! Its target is a class index ("none" last), its loss cross-entropy with scikit-learn
//! "balanced" class weights, its probabilities the softmax without the "none" column. At
//! decoding it chooses on its own ([`SingleLabelDecoding::Argmax`]: the arg-max over its concepts
//! and "none" scores 1), or, calibrated ([`SingleLabelDecoding::Threshold`]), lets its best
//! concept keep its probability for the thresholds.
use std::collections::BTreeSet;

use ndarray::ArrayView1;
use tch::{Kind, Reduction, Tensor};

use super::behaviour::{HeadBehaviour, HeadTargets, SingleLabelDecoding};

/// [`HeadBehaviour`] of [`super::HeadKind::SingleLabel`].
pub struct SingleLabelHead;

/// The class indices of a single-label head (built by this kind only).
fn classes(targets: &HeadTargets) -> &[i64] {
    match targets {
        HeadTargets::Single(v) => v,
        HeadTargets::Multi(..) => unreachable!("a single-label head's targets are class indices"),
    }
}

/// How many images the targets put in each class: the `k` concepts, then "none".
fn class_counts(classes: &[i64], k: usize) -> Vec<usize> {
    let mut counts = vec![0usize; k + 1];
    classes.iter().for_each(|&c| counts[c as usize] += 1);
    counts
}

impl HeadBehaviour for SingleLabelHead {
    fn n_outputs(&self, concepts: usize) -> i64 {
        concepts as i64 + 1
    }

    fn extra_outputs(&self) -> &'static str {
        " + none"
    }

    fn probabilities(&self, logits: &Tensor, concepts: usize, _constraint: Option<&Tensor>) -> Tensor {
        logits.softmax(-1, Kind::Float).narrow(1, 0, concepts as i64)
    }

    /// The first of the head's concepts in the image's label set, or "none" (`concepts.len()`).
    fn targets(&self, concepts: &[String], _descendants: &[Vec<usize>], labels: &[BTreeSet<String>]) -> HeadTargets {
        HeadTargets::Single(labels.iter().map(|set| concepts.iter().position(|c| set.contains(c)).unwrap_or(concepts.len()) as i64).collect())
    }

    fn counts(&self, targets: &HeadTargets, concepts: usize) -> Vec<usize> {
        let mut counts = class_counts(classes(targets), concepts);
        counts.pop(); // "none"
        counts
    }

    /// scikit-learn "balanced" over the classes present, "none" included: `N / (C * n_c)`; the
    /// same whatever `model_mean`.
    fn class_weights(&self, targets: &HeadTargets, concepts: usize, _model_mean: Option<f64>) -> Vec<f32> {
        let v = classes(targets);
        let counts = class_counts(v, concepts);
        let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
        let total = v.len() as f64;
        counts.iter().map(|&c| if c == 0 { 1.0 } else { (total / (present * c as f64)) as f32 }).collect()
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, _constraint: Option<&Tensor>) -> Tensor {
        logits.cross_entropy_loss(targets, weights, Reduction::Mean, -100, 0.0)
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn takes_max_constraint(&self) -> bool {
        false
    }

    fn single_valued_group(&self, _single_valued: bool, single_label: SingleLabelDecoding) -> bool {
        single_label == SingleLabelDecoding::Threshold
    }

    /// Arg-max decoding: the arg-max over `[concepts..., none]` (none = 1 minus the concepts'
    /// sum; a later concept wins only when strictly larger) scores 1, the others 0.
    fn choose(&self, probs: ArrayView1<f32>, scores: &mut [f32], single_label: SingleLabelDecoding) {
        if single_label != SingleLabelDecoding::Argmax || scores.is_empty() {
            return;
        }
        let none = 1.0 - probs.sum();
        // usize::MAX stands for "none"
        let (best, _) = probs.iter().copied().enumerate().fold((usize::MAX, none), |acc, x| if x.1 > acc.1 { x } else { acc });
        for (k, s) in scores.iter_mut().enumerate() {
            *s = if k == best { 1.0 } else { 0.0 };
        }
    }

    fn describe_probabilities(&self) -> &'static str {
        "softmax over a single-label head's concepts and \"none\" without the \"none\" column"
    }

    fn describe_decoding(&self, single_label: SingleLabelDecoding) -> &'static str {
        match single_label {
            SingleLabelDecoding::Argmax => "single label: on each head of kind single_label, the arg-max over \"none\" (1 minus the sum of the head's probabilities) and the head's concepts (by probability, taken in column order, a later one only when strictly larger) scores 1 and the head's other concepts 0 (this replaces step 1's score on these heads)",
            SingleLabelDecoding::Threshold => "single label: on each head of kind single_label, the `keep` concepts with the largest probability (the first in column order on ties) keep their score from step 1 and the head's other concepts score 0, so the level predicts at most `keep` concepts (1 unless the run allows a second plane or view) and may predict none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn a_none_output_and_softmax_probabilities_without_it() {
        let head = SingleLabelHead;
        assert_eq!((head.n_outputs(2), head.extra_outputs()), (3, " + none"));
        // logits ln 1, ln 2, ln 1: softmax 0.25, 0.5, 0.25 ("none" last, dropped)
        let logits = Tensor::from_slice(&[0f32, 2f32.ln(), 0.0]).view([1, 3]);
        let p = Vec::<f32>::try_from(head.probabilities(&logits, 2, None).flatten(0, -1)).unwrap();
        assert!(p.len() == 2 && (p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn targets_are_class_indices_with_none_last_and_balanced_weights() {
        let head = SingleLabelHead;
        let concepts: Vec<String> = vec!["A".into(), "B".into()];
        let labels: Vec<BTreeSet<String>> = [vec!["B"], vec![], vec!["A", "X"], vec!["B"]].iter().map(|s| s.iter().map(|c| c.to_string()).collect()).collect();
        let t = head.targets(&concepts, &[], &labels);
        assert_eq!(t, HeadTargets::Single(vec![1, 2, 0, 1]));
        assert_eq!(head.counts(&t, 2), vec![1, 2]);
        // classes A 1, B 2, none 1 of 4 images, 3 present: 4/3, 2/3, 4/3, whatever the model's mean
        let w = head.class_weights(&t, 2, None);
        assert_eq!(w, vec![(4.0f64 / 3.0) as f32, (4.0f64 / 6.0) as f32, (4.0f64 / 3.0) as f32]);
        assert_eq!(head.class_weights(&t, 2, Some(7.0)), w);
        assert_eq!(Vec::<i64>::try_from(t.batch(&[3, 1], Device::Cpu)).unwrap(), vec![1, 2]);
    }

    #[test]
    fn loss_is_weighted_cross_entropy_over_the_concepts_and_none() {
        // CE([1,0,0], 0) = ln(1 + 2/e) = 0.551445; CE([0,0,0], 2 = none) = ln 3; w = [2, 1, 1]:
        // (2 * 0.551445 + 1.098612) / 3 = 0.733834
        let logits = Tensor::from_slice(&[1f32, 0.0, 0.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let w = Tensor::from_slice(&[2f32, 1.0, 1.0]);
        let v = SingleLabelHead.loss(&logits, &Tensor::from_slice(&[0i64, 2]), Some(&w), None).double_value(&[]);
        assert!((v - 0.733834).abs() < 1e-5, "{v}");
    }

    #[test]
    fn arg_max_decoding_picks_one_concept_or_none() {
        let head = SingleLabelHead;
        let decide = |probs: [f32; 3], rule| {
            let mut scores = probs;
            head.choose(ArrayView1::from(&probs), &mut scores, rule);
            scores
        };
        // none = 0.3 loses to 0.4 (the later 0.4 is not strictly larger)
        assert_eq!(decide([0.4, 0.2, 0.4], SingleLabelDecoding::Argmax), [1.0, 0.0, 0.0]);
        // none = 0.7 wins: every concept scores 0
        assert_eq!(decide([0.1, 0.1, 0.1], SingleLabelDecoding::Argmax), [0.0, 0.0, 0.0]);
        // calibrated: nothing decided here, the group keeps the best for its threshold
        assert_eq!(decide([0.1, 0.1, 0.1], SingleLabelDecoding::Threshold), [0.1, 0.1, 0.1]);
        assert!(head.single_valued_group(false, SingleLabelDecoding::Threshold) && !head.single_valued_group(true, SingleLabelDecoding::Argmax));
        assert!(head.exclusive() && !head.takes_max_constraint());
    }
}
