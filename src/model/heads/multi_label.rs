//! The multi-label head kind: independent sigmoids, one per concept, so several of its concepts
//! may be present on one image.
//!
//! With a max-constraint (C-HMCNN, `descendants` on the spec) a concept's probability is the
//! largest of its descendants' within the head, its targets hold their ancestors and it is
//! trained with MCLoss; otherwise binary cross-entropy with per-concept positive weights. It
//! makes no decision of its own at decoding, unless its spec marks it single-valued (a sigmoid
//! head over a single-valued level), when its best concept (or two) keeps its score.
use std::collections::BTreeSet;

use ndarray::ArrayView1;
use tch::{Reduction, Tensor};

use super::behaviour::{HeadBehaviour, HeadTargets, SingleLabelDecoding};
use crate::data::dataset::{balanced_pos_weights, multi_hot};

/// [`HeadBehaviour`] of [`super::HeadKind::MultiLabel`].
pub struct MultiLabelHead;

/// C-HMCNN's max-constraint module: `out[b, a] = max over c of R[a, c] * h[b, c]`, `[B, K]`.
pub fn max_constraint(h: &Tensor, r: &Tensor) -> Tensor {
    (h.unsqueeze(1) * r.unsqueeze(0)).amax([2].as_slice(), false)
}

/// C-HMCNN's MCLoss (Giunchiglia & Lukasiewicz, NeurIPS 2020) with optional positive weights:
/// binary cross-entropy of `y * MCM(y * h) + (1 - y) * MCM(h)` against `y`, `h = sigmoid(logits)`,
/// where `MCM(x)[a] = max over the descendants b of a (a included) of x[b]`. A positive concept is
/// pushed up through its positive descendants only; a negative one is held down by its largest
/// descendant, so the constrained output, not the raw one, is what is trained.
pub fn mc_loss(logits: &Tensor, y: &Tensor, r: &Tensor, pos_weight: Option<&Tensor>) -> Tensor {
    let h = logits.sigmoid();
    let constrained = max_constraint(&h, r);
    let positive = max_constraint(&(y * &h), r);
    let negative: Tensor = 1.0 - y;
    let out: Tensor = (y * positive + negative * constrained).clamp(1e-7, 1.0 - 1e-7);
    let weight = pos_weight.map(|pw| y * (pw - 1.0) + 1.0);
    out.binary_cross_entropy(y, weight.as_ref(), Reduction::Mean)
}

/// The multi-hot rows of a multi-label head (built by this kind only).
fn rows(targets: &HeadTargets) -> (&[f32], usize) {
    match targets {
        HeadTargets::Multi(v, k) => (v, *k),
        HeadTargets::Single(_) => unreachable!("a multi-label head's targets are multi-hot rows"),
    }
}

impl HeadBehaviour for MultiLabelHead {
    fn n_outputs(&self, concepts: usize) -> i64 {
        concepts as i64
    }

    fn extra_outputs(&self) -> &'static str {
        ""
    }

    fn probabilities(&self, logits: &Tensor, _concepts: usize, constraint: Option<&Tensor>) -> Tensor {
        let h = logits.sigmoid();
        match constraint {
            Some(r) => max_constraint(&h, r),
            None => h,
        }
    }

    fn targets(&self, concepts: &[String], descendants: &[Vec<usize>], labels: &[BTreeSet<String>]) -> HeadTargets {
        let k = concepts.len();
        let mut rows = multi_hot(concepts, labels);
        // with a max-constraint a target holds its ancestors within the head (C-HMCNN's
        // hierarchy-consistent labels), whether or not the label file lists them
        for row in rows.chunks_mut(k.max(1)).filter(|_| !descendants.is_empty()) {
            let closed: Vec<f32> = descendants.iter().map(|d| if d.iter().any(|&b| row[b] > 0.5) { 1.0 } else { 0.0 }).collect();
            row.copy_from_slice(&closed);
        }
        HeadTargets::Multi(rows, k)
    }

    fn counts(&self, targets: &HeadTargets, _concepts: usize) -> Vec<usize> {
        let (v, k) = rows(targets);
        (0..k).map(|j| v.iter().skip(j).step_by(k).filter(|x| **x > 0.5).count()).collect()
    }

    /// Positive weights: the head's mean count over each concept's (`balanced`), or the model's
    /// mean over it (`balanced-model`), as a flat model over the same concepts would weigh them.
    fn class_weights(&self, targets: &HeadTargets, concepts: usize, model_mean: Option<f64>) -> Vec<f32> {
        let counts = self.counts(targets, concepts);
        match model_mean {
            None => balanced_pos_weights(&counts),
            Some(m) => counts.iter().map(|&n| if n == 0 { 1.0 } else { (m / n as f64) as f32 }).collect(),
        }
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, constraint: Option<&Tensor>) -> Tensor {
        match constraint {
            None => logits.binary_cross_entropy_with_logits(targets, None::<&Tensor>, weights, Reduction::Mean),
            Some(r) => mc_loss(logits, targets, r, weights),
        }
    }

    fn exclusive(&self) -> bool {
        false
    }

    fn takes_max_constraint(&self) -> bool {
        true
    }

    fn single_valued_group(&self, single_valued: bool, _single_label: SingleLabelDecoding) -> bool {
        single_valued
    }

    fn choose(&self, _probs: ArrayView1<f32>, _scores: &mut [f32], _single_label: SingleLabelDecoding) {}

    fn describe_probabilities(&self) -> &'static str {
        "sigmoid of a multi-label head's logits (after the max-constraint where the run has it)"
    }

    fn describe_decoding(&self, _single_label: SingleLabelDecoding) -> &'static str {
        "single valued: on each multi-label head with `keep` (over a single-valued level), the `keep` concepts with the largest probability (the first in column order on ties) keep their score from step 1 and the head's other concepts score 0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    fn labels(sets: &[&[&str]]) -> Vec<BTreeSet<String>> {
        sets.iter().map(|s| s.iter().map(|c| c.to_string()).collect()).collect()
    }

    #[test]
    fn one_output_per_concept_and_sigmoid_probabilities_capped_by_the_max_constraint() {
        let head = MultiLabelHead;
        assert_eq!((head.n_outputs(3), head.extra_outputs()), (3, ""));
        // logits 0, ln 3, -ln 3: sigmoids 0.5, 0.75, 0.25
        let logits = Tensor::from_slice(&[0f32, 3f32.ln(), -(3f32.ln())]).view([1, 3]);
        let p = values(&head.probabilities(&logits, 3, None));
        assert!(p.iter().zip([0.5, 0.75, 0.25]).all(|(a, b)| (a - b).abs() < 1e-6), "{p:?}");
        // concept 0 is the parent of 1: it takes 1's 0.75
        let r = Tensor::from_slice(&[1f32, 1., 0., 0., 1., 0., 0., 0., 1.]).view([3, 3]);
        let p = values(&head.probabilities(&logits, 3, Some(&r)));
        assert!(p.iter().zip([0.75, 0.75, 0.25]).all(|(a, b)| (a - b).abs() < 1e-6), "{p:?}");
    }

    #[test]
    fn targets_are_multi_hot_and_hold_their_ancestors_under_a_max_constraint() {
        let head = MultiLabelHead;
        let concepts: Vec<String> = ["A", "B", "C"].iter().map(|c| c.to_string()).collect();
        let sets = labels(&[&["B", "X"], &[], &["A", "C"]]);
        let t = head.targets(&concepts, &[], &sets);
        assert_eq!(t, HeadTargets::Multi(vec![0., 1., 0., 0., 0., 0., 1., 0., 1.], 3));
        assert_eq!(head.counts(&t, 3), vec![1, 1, 1]);
        // A > B: an image with B has A too
        let t = head.targets(&concepts, &[vec![0, 1], vec![1], vec![2]], &sets);
        assert_eq!(t, HeadTargets::Multi(vec![1., 1., 0., 0., 0., 0., 1., 0., 1.], 3));
        assert_eq!(head.counts(&t, 3), vec![2, 1, 1]);
        assert_eq!(t.batch(&[2, 0], Device::Cpu).size(), vec![2, 3]);
    }

    #[test]
    fn positive_weights_against_the_head_or_the_model() {
        let head = MultiLabelHead;
        // counts 3 and 1: the head's mean is 2
        let t = HeadTargets::Multi(vec![1., 1., 1., 0., 1., 0., 0., 0.], 2);
        assert_eq!(head.class_weights(&t, 2, None), vec![(2.0f64 / 3.0) as f32, 2.0]);
        assert_eq!(head.class_weights(&t, 2, Some(6.0)), vec![2.0, 6.0]);
    }

    #[test]
    fn loss_is_weighted_bce_or_mc_loss() {
        let head = MultiLabelHead;
        // x=0, y=1, pw=2 -> 2 ln 2; x=2, y=0 -> -ln(1 - σ(2)) = 2.126928; mean of the two
        let logits = Tensor::from_slice(&[0f32, 2.0]).view([1, 2]);
        let y = Tensor::from_slice(&[1f32, 0.0]).view([1, 2]);
        let w = Tensor::from_slice(&[2f32, 1.0]);
        let v = head.loss(&logits, &y, Some(&w), None).double_value(&[]);
        assert!((v - (2.0 * 2f64.ln() + 2.126928) / 2.0).abs() < 1e-5, "{v}");
        // with the identity as constraint MCLoss is plain BCE
        let eye = Tensor::eye(2, (tch::Kind::Float, Device::Cpu));
        let mc = head.loss(&logits, &y, Some(&w), Some(&eye)).double_value(&[]);
        assert!((mc - v).abs() < 1e-5, "{mc} vs {v}");
    }

    #[test]
    fn decoding_leaves_the_scores_to_the_thresholds_unless_single_valued() {
        let head = MultiLabelHead;
        let probs = [0.9f32, 0.8];
        let mut scores = [0.7f32, 0.8];
        head.choose(ArrayView1::from(&probs), &mut scores, SingleLabelDecoding::Argmax);
        assert_eq!(scores, [0.7, 0.8]);
        assert!(!head.exclusive() && head.takes_max_constraint());
        assert!(head.single_valued_group(true, SingleLabelDecoding::Argmax) && !head.single_valued_group(false, SingleLabelDecoding::Threshold));
    }
}
