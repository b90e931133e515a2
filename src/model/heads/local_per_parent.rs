//! The local-classifier-per-parent head kind (HiClass's LCPN, multi-label): over a level whose
//! concepts nest (Heart under Chest, COVID-19 under Pneumonia), a concept with a parent in the
//! head is learned only against the other images of its parent, and its probability is the
//! chain rule's.
//!
//! Each output is a sigmoid `s`. A concept with no ancestor in the head is an ordinary sigmoid
//! trained on every image; a concept with ancestors is trained only on the images where one of
//! them is present (so `s` estimates `P(concept | parent)`: Heart learns against other Chest images,
//! not against every image), and its probability is `s * P(parent)`, `P(parent)` the smallest
//! probability among its ancestors in the head (on a chain, the nearest one), computed down the
//! chain. A child therefore never scores above its parent: coherent by construction, as with the
//! max-constraint, but the parent decides where the child is looked for, where the max-constraint
//! lets a confident child lift its parent. Targets hold their ancestors; positive weights as the
//! multi-label kind's. The spec's `descendants` (its nesting) are required: a head whose concepts
//! do not nest is a plain multi-label head.
use std::collections::BTreeSet;

use ndarray::ArrayView1;
use tch::{Kind, Reduction, Tensor};

use super::behaviour::{HeadBehaviour, HeadTargets, SingleLabelDecoding};
use super::multi_label::{max_constraint, MultiLabelHead};

/// [`HeadBehaviour`] of [`super::HeadKind::LocalPerParent`].
pub struct LocalPerParentHead;

/// From the max-constraint matrix `R[a, b]` ("b is a descendant of a, or a itself"), the ancestor
/// matrix `A[c, p]` ("p is a strict ancestor of c") and which concepts have one (`[K]`, bool).
pub fn ancestors(r: &Tensor) -> (Tensor, Tensor) {
    let k = r.size()[0];
    let a = r.tr() - Tensor::eye(k, (Kind::Float, r.device()));
    let has = a.sum_dim_intlist([1].as_slice(), false, Kind::Float).gt(0.0);
    (a, has)
}

/// Binary cross-entropy where a concept with an ancestor in its head (`has`, `A[c, p]` the
/// ancestor matrix) counts only on the images where one of its ancestors is present; the others
/// count everywhere. The mean is over every entry, as the multi-label kind's plain BCE. Used by
/// this kind throughout, and by conditional training (`--conditional-epochs`) for its first epochs.
pub fn conditional_bce(logits: &Tensor, y: &Tensor, a: &Tensor, has: &Tensor, pos_weight: Option<&Tensor>) -> Tensor {
    let parent_present = max_constraint(y, a);
    let mask = parent_present.where_self(has, &Tensor::ones_like(y));
    logits.binary_cross_entropy_with_logits(y, Some(&mask), pos_weight, Reduction::Mean)
}

/// The chain rule down the head's nesting: `p[c] = s[c] * min over ancestors q of p[q]` for a
/// concept with ancestors, `s[c]` otherwise (`s`: `[B, K]` conditional sigmoids).
pub fn chain_probabilities(s: &Tensor, r: &Tensor) -> Tensor {
    let (a, _) = ancestors(r);
    // a chain of d concepts needs d - 1 passes, and K - 1 is enough for any head; a pass after the
    // fixed point changes nothing. (Counting the passes from `a` would read a value back from the
    // device on every forward.)
    let elsewhere = a.ones_like().g_sub(&a).unsqueeze(0);
    let a = a.unsqueeze(0);
    let mut p = s.shallow_clone();
    for _ in 1..r.size()[0] {
        // smallest ancestor probability, taken exactly: `p * 1 + 0` is `p` and `p * 0 + 1` is 1 in
        // floating point, where `1 - max(1 - p)` can round above `p` and let a child exceed its
        // parent; a concept without ancestors gets exactly 1, so `s * 1` keeps its own sigmoid
        let parent = (p.unsqueeze(1) * &a + &elsewhere).amin([2].as_slice(), false);
        p = s * parent;
    }
    p
}

impl HeadBehaviour for LocalPerParentHead {
    fn n_outputs(&self, concepts: usize) -> i64 {
        concepts as i64
    }

    fn extra_outputs(&self) -> &'static str {
        ""
    }

    fn probabilities(&self, logits: &Tensor, _concepts: usize, constraint: Option<&Tensor>) -> Tensor {
        let r = constraint.expect("a local-per-parent head has its nesting (descendants)");
        chain_probabilities(&logits.sigmoid(), r)
    }

    fn targets(&self, concepts: &[String], descendants: &[Vec<usize>], labels: &[BTreeSet<String>]) -> HeadTargets {
        MultiLabelHead.targets(concepts, descendants, labels)
    }

    fn counts(&self, targets: &HeadTargets, concepts: usize) -> Vec<usize> {
        MultiLabelHead.counts(targets, concepts)
    }

    fn class_weights(&self, targets: &HeadTargets, concepts: usize, model_mean: Option<f64>) -> Vec<f32> {
        MultiLabelHead.class_weights(targets, concepts, model_mean)
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor, weights: Option<&Tensor>, constraint: Option<&Tensor>) -> Tensor {
        let (a, has) = ancestors(constraint.expect("a local-per-parent head has its nesting (descendants)"));
        conditional_bce(logits, targets, &a, &has, weights)
    }

    // at decoding it is a multi-label head: it decides nothing alone, unless over a single-valued level

    fn exclusive(&self) -> bool {
        MultiLabelHead.exclusive()
    }

    fn takes_max_constraint(&self) -> bool {
        MultiLabelHead.takes_max_constraint()
    }

    fn single_valued_group(&self, single_valued: bool, single_label: SingleLabelDecoding) -> bool {
        MultiLabelHead.single_valued_group(single_valued, single_label)
    }

    fn choose(&self, probs: ArrayView1<f32>, scores: &mut [f32], single_label: SingleLabelDecoding) {
        MultiLabelHead.choose(probs, scores, single_label)
    }

    fn describe_probabilities(&self) -> &'static str {
        "on a local-per-parent head (`--local-per-parent`), a concept's sigmoid times its nearest ancestor's probability within the head (the chain rule: the sigmoid estimates the concept given its parent)"
    }

    fn describe_decoding(&self, _single_label: SingleLabelDecoding) -> &'static str {
        "single valued: as a multi-label head's (local-per-parent heads are over levels whose concepts nest, which are not single-valued in practice)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::try_from(t.flatten(0, -1)).unwrap()
    }

    /// Chest > Heart > Left ventricle, and a root Knee: `R` of that head.
    fn chain() -> Tensor {
        #[rustfmt::skip]
        let r = [
            1f32, 1., 1., 0.,
            0., 1., 1., 0.,
            0., 0., 1., 0.,
            0., 0., 0., 1.,
        ];
        Tensor::from_slice(&r).view([4, 4])
    }

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn probabilities_follow_the_chain_rule_and_never_exceed_a_parent() {
        let head = LocalPerParentHead;
        // sigmoids 0.8 (Chest), 0.5 (Heart | Chest), 0.9 (LV | Heart), 0.3 (Knee)
        let logits = Tensor::from_slice(&[logit(0.8), logit(0.5), logit(0.9), logit(0.3)]).view([1, 4]);
        let p = values(&head.probabilities(&logits, 4, Some(&chain())));
        let want = [0.8, 0.4, 0.36, 0.3];
        assert!(p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{p:?}");
        // a confident child does not lift its parent (the max-constraint would give Chest 0.99)
        let logits = Tensor::from_slice(&[logit(0.1), logit(0.99), logit(0.99), logit(0.5)]).view([1, 4]);
        let p = values(&head.probabilities(&logits, 4, Some(&chain())));
        assert!((p[0] - 0.1).abs() < 1e-5 && p[1] <= p[0] && p[2] <= p[1], "{p:?}");
        // any scores: every concept at most its parent's
        // (4,096 rows: with `1 - max(1 - p)` for the parent, rounding let a child exceed its
        // parent on a few rows in a thousand)
        let z = Tensor::randn([4096, 4], (Kind::Float, Device::Cpu)) * 4.0;
        let p = head.probabilities(&z, 4, Some(&chain()));
        let v = values(&p);
        assert!(v.chunks(4).all(|r| r[1] <= r[0] && r[2] <= r[1]));
    }

    #[test]
    fn a_child_is_trained_only_on_its_parents_images() {
        let head = LocalPerParentHead;
        // image 0: Chest, Heart (targets hold ancestors); image 1: Knee only
        let y = Tensor::from_slice(&[1f32, 1., 0., 0., 0., 0., 0., 1.]).view([2, 4]);
        let logits = Tensor::from_slice(&[2f32, 1.0, -1.0, -2.0, 0.5, 3.0, 2.0, 1.5]).view([2, 4]);
        let got = head.loss(&logits, &y, None, Some(&chain())).double_value(&[]);
        // by hand: Heart and LV on image 1 (no Chest there) do not count; mean over all 8 entries
        let bce = |x: f64, y: f64| -(y * (1.0 / (1.0 + (-x).exp())).ln() + (1.0 - y) * (1.0 - 1.0 / (1.0 + (-x).exp())).ln());
        let want = (bce(2.0, 1.0) + bce(1.0, 1.0) + bce(-1.0, 0.0) + bce(-2.0, 0.0) + bce(0.5, 0.0) + bce(1.5, 1.0)) / 8.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // a child's logit on an image without its parent has no gradient
        let z = logits.set_requires_grad(true);
        head.loss(&z, &y, None, Some(&chain())).backward();
        let g = values(&z.grad());
        assert!(g[5] == 0.0 && g[6] == 0.0 && g[4] != 0.0 && g[7] != 0.0, "{g:?}");
    }

    #[test]
    fn targets_hold_ancestors_and_the_kind_decides_nothing_alone() {
        let head = LocalPerParentHead;
        let concepts: Vec<String> = ["A", "B", "C", "D"].iter().map(|c| c.to_string()).collect();
        let sets: Vec<BTreeSet<String>> = vec![["C".to_string()].into(), ["D".to_string()].into()];
        let d = vec![vec![0, 1, 2], vec![1, 2], vec![2], vec![3]];
        assert_eq!(head.targets(&concepts, &d, &sets), HeadTargets::Multi(vec![1., 1., 1., 0., 0., 0., 0., 1.], 4));
        assert!(!head.exclusive() && head.takes_max_constraint() && head.extra_outputs().is_empty());
        let mut scores = [0.2f32, 0.1];
        head.choose(ArrayView1::from(&[0.9f32, 0.8]), &mut scores, SingleLabelDecoding::Argmax);
        assert_eq!(scores, [0.2, 0.1]);
    }
}
