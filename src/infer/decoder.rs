//! From concept probabilities to concept sets, respecting the hierarchy.
//!
//! For hierarchical models ([`Decoder::enforce`] on), decisions are made in these steps:
//! 1. **lift** (ontology decoding of a flat model, [`Decoder::with_ontology`]; a sigmoid level
//!    head does it inside the model): C-HMCNN's max-constraint, a concept's probability becomes
//!    the largest of its own and its descendants' within the model's concepts, so a confident
//!    child lifts its parent;
//! 2. **cap**: a concept's score becomes the minimum of its own and its ancestors' scores within
//!    the model's concept set, so a child never outscores its parent;
//! 3. **single-valued levels** keep their best concept (or two, [`SingleValuedRule::Second`]):
//!    softmax heads (e.g. modality) with calibration ([`SingleLabelDecoding::Threshold`]) let the
//!    most probable concept keep its probability as its score and the level's threshold decides
//!    (the level may abstain), without it the arg-max of `[concepts..., none]` scores 1 and the
//!    rest 0; sigmoid heads over a single-valued level, and single-valued levels of a flat model
//!    decoded with the ontology, keep their best one or two concepts' scores and zero the rest
//!    (what each head kind does here is the kind's own, [`crate::model::HeadBehaviour`]);
//! 4. **thresholds** (concept > level > global, tuned on validation);
//! 5. **closure**: every predicted concept's ancestors within the concept set are added.
//! [`Decoder::trace`] records each step for `predict --explain`.
//!
//! Flat models (the paper's baseline) use thresholds only, so their coherence can be measured as
//! is; [`Decoder::with_ontology`] decodes them as a hierarchical model's outputs are (`flat-coherent`
//! in `experiment compare`).
use std::collections::BTreeSet;
use std::ops::Range;

use ndarray::{Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use crate::eval::thresholds::Thresholds;
use crate::model::{HeadKind, ModelConfig, SingleLabelDecoding, SingleValuedRule};
use crate::ontology::{Level, Ontology};

/// Turns probability rows into concept sets for one model.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub concepts: Vec<String>,
    /// Threshold group of each concept: its ontology level, or `rest` for a hybrid model's residual head.
    pub levels: Vec<Option<String>>,
    /// Name of the head each concept belongs to.
    pub head_of: Vec<String>,
    heads: Vec<(HeadKind, Range<usize>)>,
    /// For each concept, the indices of its ancestors within `concepts`.
    ancestors: Vec<Vec<usize>>,
    pub enforce: bool,
    single_label: SingleLabelDecoding,
    /// Groups of concepts of which at most [`SingleValuedRule::keep`] keep their score, with
    /// their level: calibrated softmax heads, sigmoid heads over single-valued levels, or a flat
    /// model's single-valued levels ([`Decoder::with_ontology`]).
    groups: Vec<(Option<Level>, Vec<usize>)>,
    single_valued: SingleValuedRule,
    /// For each concept, its descendants within `concepts` (itself included) when the decoder
    /// lifts parents by their children (step 1); empty otherwise.
    lift: Vec<Vec<usize>>,
}

/// What the decoder did with one concept of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Its score reached its threshold.
    Predicted,
    /// Below its threshold, but added because a predicted descendant needs it (closure).
    AddedAsAncestor,
    /// Its score stayed below its threshold.
    BelowThreshold,
    /// A single-label level predicted another concept (or none) instead.
    NotChosen,
}

impl Decision {
    /// Whether the concept is in the predicted set.
    pub fn is_in_prediction(self) -> bool {
        matches!(self, Decision::Predicted | Decision::AddedAsAncestor)
    }
}

/// One concept's way through the decoder for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptTrace {
    pub cui: String,
    pub head: String,
    /// The model's probability.
    pub probability: f32,
    /// The score the threshold was applied to: the probability capped by the ancestors' (max-
    /// constraint), 1 or 0 on single-label levels (the arg-max over the concepts and "none").
    pub score: f32,
    /// The ancestor whose lower probability capped this concept's score, if one did.
    pub capped_by: Option<String>,
    pub threshold: f32,
    pub decision: Decision,
}

/// The decisions for one row of probabilities.
struct RowDecision {
    scores: Vec<f32>,
    capped_by: Vec<Option<usize>>,
    passed: Vec<bool>,
    on: Vec<bool>,
}

impl Decoder {
    pub fn new(model: &ModelConfig, ontology: &Ontology, enforce: bool) -> Decoder {
        let concepts = model.concepts();
        let index: std::collections::HashMap<&str, usize> = concepts.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let ancestors = concepts.iter().map(|c| ontology.ancestors(c).iter().filter_map(|a| index.get(a.as_str()).copied()).collect()).collect();
        let mut heads = Vec::new();
        let mut head_of = Vec::new();
        let mut groups = Vec::new();
        let mut start = 0;
        for h in &model.heads {
            heads.push((h.kind, start..start + h.concepts.len()));
            // a head whose best concept(s) keep their score for the thresholds (arg-max softmax
            // heads are decided apart, against "none")
            if h.kind.behaviour().single_valued_group(h.single_valued, model.single_label) && !h.concepts.is_empty() {
                groups.push((h.concepts.first().and_then(|c| ontology.level_of(c)), (start..start + h.concepts.len()).collect()));
            }
            head_of.extend(std::iter::repeat_n(h.name.clone(), h.concepts.len()));
            start += h.concepts.len();
        }
        // threshold groups: the ontology level; a hybrid model's residual concepts form their own
        let levels = concepts.iter().zip(&head_of).map(|(c, h)| if h == crate::model::REST { Some(h.clone()) } else { ontology.level_of(c).map(|l| l.to_string()) }).collect();
        Decoder { concepts, levels, head_of, heads, ancestors, enforce, single_label: model.single_label, groups, single_valued: model.single_valued, lift: Vec::new() }
    }

    /// This decoder with the ontology's rules for a model without level heads (flat): parents
    /// lifted by their children, each of `single_valued` levels decided by `rule`, children
    /// capped by their parents, and closure: its predictions are coherent whatever the scores.
    pub fn with_ontology(mut self, ontology: &Ontology, single_valued: &[Level], rule: SingleValuedRule) -> Decoder {
        self.enforce = true;
        self.lift = ontology.descendants_within(&self.concepts);
        self.single_valued = rule;
        for level in single_valued {
            let group: Vec<usize> = (0..self.concepts.len()).filter(|&k| ontology.level_of(&self.concepts[k]) == Some(*level)).collect();
            if group.len() > 1 && !self.groups.iter().any(|(_, g)| *g == group) {
                self.groups.push((Some(*level), group));
            }
        }
        self
    }

    /// This decoder with `rule` for its single-valued levels.
    pub fn with_single_valued_rule(mut self, rule: SingleValuedRule) -> Decoder {
        self.single_valued = rule;
        self
    }

    /// How many of the concepts at `range` keep their score when they form one single-valued
    /// group (a calibrated softmax head, a sigmoid head over a single-valued level) and the
    /// hierarchy is enforced; `None` otherwise.
    pub fn keep_of(&self, range: &Range<usize>) -> Option<usize> {
        let group: Vec<usize> = range.clone().collect();
        self.groups.iter().find(|(_, g)| *g == group).filter(|_| self.enforce).map(|(level, _)| self.single_valued.keep(*level))
    }

    /// The indices (into [`Decoder::concepts`]) of concept `k`'s ancestors within the model's concepts.
    pub fn ancestors(&self, k: usize) -> &[usize] {
        &self.ancestors[k]
    }

    /// Each head's kind and its range of concept indices, in order.
    pub fn heads(&self) -> &[(HeadKind, Range<usize>)] {
        &self.heads
    }

    /// How single-label heads are decided.
    pub fn single_label(&self) -> SingleLabelDecoding {
        self.single_label
    }

    /// The decision scores of one row, and which ancestor capped each.
    fn row_scores(&self, probs: ArrayView1<f32>) -> (Vec<f32>, Vec<Option<usize>>) {
        let mut capped_by = vec![None; probs.len()];
        if !self.enforce {
            return (probs.to_vec(), capped_by);
        }
        let lifted: Vec<f32>;
        let probs = if self.lift.is_empty() {
            probs.view()
        } else {
            lifted = self.lift.iter().map(|d| d.iter().map(|&b| probs[b]).fold(f32::NEG_INFINITY, f32::max)).collect();
            ArrayView1::from(&lifted)
        };
        let mut s: Vec<f32> = probs.to_vec();
        for (k, anc) in self.ancestors.iter().enumerate() {
            for &a in anc {
                if probs[a] < s[k] {
                    s[k] = probs[a];
                    capped_by[k] = Some(a);
                }
            }
        }
        // the heads whose kind decides on its own (arg-max softmax heads, against "none")
        for (kind, r) in &self.heads {
            kind.behaviour().choose(probs.slice(ndarray::s![r.clone()]), &mut s[r.clone()], self.single_label);
        }
        // single-valued groups: the most probable concept (two on plane and view with `second`)
        // keeps its (capped) score for its threshold, the others score 0; ties to the first
        for (level, group) in &self.groups {
            let mut order = group.clone();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
            for &k in order.iter().skip(self.single_valued.keep(*level)) {
                s[k] = 0.0;
            }
        }
        (s, capped_by)
    }

    fn decide_row(&self, probs: ArrayView1<f32>, thr: &[f32]) -> RowDecision {
        let (scores, capped_by) = self.row_scores(probs);
        let passed: Vec<bool> = scores.iter().zip(thr).map(|(s, t)| s >= t).collect();
        let mut on = passed.clone();
        if self.enforce {
            for k in 0..on.len() {
                if passed[k] {
                    for &a in &self.ancestors[k] {
                        on[a] = true;
                    }
                }
            }
        }
        RowDecision { scores, capped_by, passed, on }
    }

    /// Each concept's threshold (concept > level > global), in the model's concept order.
    pub fn thresholds(&self, thresholds: &Thresholds) -> Vec<f32> {
        self.concepts.iter().zip(&self.levels).map(|(c, l)| thresholds.for_concept(c, l.as_deref())).collect()
    }

    /// Scores that thresholds apply to: max-constrained probabilities, single-label heads one-hot.
    pub fn decision_scores(&self, probs: &Array2<f32>) -> Array2<f32> {
        let mut out = probs.clone();
        for (mut row, p) in out.rows_mut().into_iter().zip(probs.rows()) {
            row.assign(&ArrayView1::from(&self.row_scores(p).0));
        }
        out
    }

    /// Concept sets for each row of `probs`.
    pub fn decide(&self, probs: &Array2<f32>, thresholds: &Thresholds) -> Vec<BTreeSet<String>> {
        let thr = self.thresholds(thresholds);
        probs
            .rows()
            .into_iter()
            .map(|row| {
                let d = self.decide_row(row, &thr);
                d.on.iter().enumerate().filter(|(_, &b)| b).map(|(k, _)| self.concepts[k].clone()).collect()
            })
            .collect()
    }

    /// How each concept of one image was decided, in the model's concept order.
    pub fn trace(&self, probs: ArrayView1<f32>, thresholds: &Thresholds) -> Vec<ConceptTrace> {
        let thr = self.thresholds(thresholds);
        let d = self.decide_row(probs, &thr);
        let mut single: Vec<bool> = self.heads.iter().flat_map(|(kind, r)| std::iter::repeat_n(kind.behaviour().exclusive() && self.enforce, r.len())).collect();
        for &k in self.groups.iter().flat_map(|(_, g)| g) {
            single[k] = self.enforce;
        }
        (0..self.concepts.len())
            .map(|k| ConceptTrace {
                cui: self.concepts[k].clone(),
                head: self.head_of[k].clone(),
                probability: probs[k],
                score: d.scores[k],
                capped_by: d.capped_by[k].map(|a| self.concepts[a].clone()),
                threshold: thr[k],
                decision: match (d.passed[k], d.on[k]) {
                    (true, _) => Decision::Predicted,
                    (false, true) => Decision::AddedAsAncestor,
                    (false, false) if single[k] && d.scores[k] == 0.0 => Decision::NotChosen,
                    (false, false) => Decision::BelowThreshold,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeadSpec, TrunkKind};
    use proptest::prelude::*;

    fn model_cfg() -> ModelConfig {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        ModelConfig::new(TrunkKind::Tiny, vec![
                HeadSpec::new("modality", s(&["C0040405", "C0024485", "C1306645"]), HeadKind::SingleLabel),
                HeadSpec::new("anatomy", s(&["C0460004", "C0018670", "C0006104", "C0817096", "C0018787"]), HeadKind::MultiLabel),
                HeadSpec::new("laterality", s(&["C0205091", "C0205090"]), HeadKind::SingleLabel),
            ])
    }

    #[test]
    fn max_constraint_and_closure_by_hand() {
        let onto = Ontology::builtin();
        let d = Decoder::new(&model_cfg(), &onto, true);
        // brain scores above head and head-and-neck: the constraint caps it at min(0.9, 0.4, 0.7) = 0.4
        let probs = Array2::from_shape_vec((1, 10), vec![0.7, 0.1, 0.1, 0.7, 0.4, 0.9, 0.1, 0.1, 0.2, 0.1]).unwrap();
        let s = d.decision_scores(&probs);
        assert!((s[[0, 5]] - 0.4).abs() < 1e-6);
        let trace = d.trace(probs.row(0), &Thresholds { global: 0.35, ..Default::default() });
        assert_eq!(trace[5].capped_by.as_deref(), Some("C0018670"), "brain is capped by head (0.4), the lowest ancestor");
        assert_eq!((trace[0].decision, trace[1].decision), (Decision::Predicted, Decision::NotChosen));
        assert_eq!(trace[8].decision, Decision::NotChosen, "laterality: none wins");
        assert_eq!(s.row(0).iter().take(3).copied().collect::<Vec<_>>(), vec![1.0, 0.0, 0.0]);
        // laterality: none = 1 - 0.3 = 0.7 wins -> both zero
        assert_eq!((s[[0, 8]], s[[0, 9]]), (0.0, 0.0));
        let t = Thresholds { global: 0.35, ..Default::default() };
        let set = &d.decide(&probs, &t)[0];
        let want: BTreeSet<String> = ["C0040405", "C0460004", "C0018670", "C0006104"].iter().map(|c| c.to_string()).collect();
        assert_eq!(set, &want);
    }

    #[test]
    fn a_calibrated_level_keeps_its_best_concept_and_abstains_below_its_threshold() {
        let onto = Ontology::builtin();
        let cfg = ModelConfig { single_label: SingleLabelDecoding::Threshold, ..model_cfg() };
        let d = Decoder::new(&cfg, &onto, true);
        // modality: CT 0.35 is the best concept although "none" (0.45) beats it: it keeps 0.35;
        // laterality: left 0.3, right 0.2
        let probs = Array2::from_shape_vec((1, 10), vec![0.35, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.2]).unwrap();
        let s = d.decision_scores(&probs);
        assert_eq!(s.row(0).iter().take(3).copied().collect::<Vec<_>>(), vec![0.35, 0.0, 0.0]);
        assert_eq!((s[[0, 8]], s[[0, 9]]), (0.3, 0.0));
        let mut t = Thresholds::new(0.5);
        t.per_level.insert("modality".into(), 0.3);
        t.per_level.insert("laterality".into(), 0.4);
        let set = &d.decide(&probs, &t)[0];
        assert!(set.contains("C0040405"), "CT passes modality's 0.3");
        assert!(!set.contains("C0205091") && !set.contains("C0205090"), "laterality abstains below its 0.4");
        // arg-max decoding would have said "none" for modality (0.45 > 0.35) and never abstained on a level it picked
        let old = Decoder::new(&model_cfg(), &onto, true);
        assert_eq!(old.decision_scores(&probs).row(0).iter().take(3).copied().collect::<Vec<_>>(), vec![0.0, 0.0, 0.0]);
    }

    /// A flat model over a three-level chain (head and neck > head > brain), two modalities and two planes.
    fn flat_chain() -> ModelConfig {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        ModelConfig::new(TrunkKind::Tiny, vec![HeadSpec::new("flat", s(&["C0460004", "C0018670", "C0006104", "C0040405", "C0024485", "C0205131", "C0205123"]), HeadKind::MultiLabel)])
    }

    #[test]
    fn a_confident_child_lifts_its_parents_on_a_three_level_chain() {
        let onto = Ontology::builtin();
        let d = Decoder::new(&flat_chain(), &onto, false).with_ontology(&onto, &[Level::Modality, Level::Plane], SingleValuedRule::Argmax);
        // brain 0.9 under head 0.3 under head-and-neck 0.2: max-constraint lifts both to 0.9
        let probs = Array2::from_shape_vec((1, 7), vec![0.2, 0.3, 0.9, 0.6, 0.7, 0.5, 0.45]).unwrap();
        let s = d.decision_scores(&probs);
        assert_eq!(s.row(0).iter().take(3).copied().collect::<Vec<_>>(), vec![0.9, 0.9, 0.9]);
        // one modality (MRI 0.7 over CT 0.6), one plane (axial 0.5 over coronal 0.45)
        assert_eq!(s.row(0).iter().skip(3).copied().collect::<Vec<_>>(), vec![0.0, 0.7, 0.5, 0.0]);
        let set = &d.decide(&probs, &Thresholds::new(0.4))[0];
        let want: BTreeSet<String> = ["C0460004", "C0018670", "C0006104", "C0024485", "C0205131"].iter().map(|c| c.to_string()).collect();
        assert_eq!(set, &want);
        // without the ontology the flat model names both modalities and both planes, and no head
        let plain = &Decoder::new(&flat_chain(), &onto, false).decide(&probs, &Thresholds::new(0.4))[0];
        assert!(plain.contains("C0040405") && plain.contains("C0024485") && plain.contains("C0205123") && !plain.contains("C0018670"), "{plain:?}");
        // a second plane is allowed with `second`, never a second modality
        let second = Decoder::new(&flat_chain(), &onto, false).with_ontology(&onto, &[Level::Modality, Level::Plane], SingleValuedRule::Second);
        let set = &second.decide(&probs, &Thresholds::new(0.4))[0];
        assert!(set.contains("C0205131") && set.contains("C0205123") && !set.contains("C0040405"), "{set:?}");
    }

    #[test]
    fn a_single_valued_sigmoid_head_keeps_its_best_concept() {
        let onto = Ontology::builtin();
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let plane = HeadSpec { single_valued: true, ..HeadSpec::new("plane", s(&["C0205131", "C0205123"]), HeadKind::MultiLabel) };
        let cfg = ModelConfig::new(TrunkKind::Tiny, vec![plane]);
        let probs = Array2::from_shape_vec((1, 2), vec![0.6, 0.8]).unwrap();
        let d = Decoder::new(&cfg, &onto, true);
        assert_eq!(d.decision_scores(&probs).row(0).to_vec(), vec![0.0, 0.8]);
        assert_eq!(d.trace(probs.row(0), &Thresholds::new(0.5))[0].decision, Decision::NotChosen);
        let d2 = Decoder::new(&cfg, &onto, true).with_single_valued_rule(SingleValuedRule::Second);
        assert_eq!(d2.decision_scores(&probs).row(0).to_vec(), vec![0.6, 0.8]);
    }

    #[test]
    fn a_calibrated_plane_head_names_a_second_plane_only_when_allowed() {
        let onto = Ontology::builtin();
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let heads = vec![HeadSpec::new("modality", s(&["C0040405", "C0024485"]), HeadKind::SingleLabel), HeadSpec::new("plane", s(&["C0205131", "C0205123"]), HeadKind::SingleLabel)];
        let cfg = ModelConfig { single_label: SingleLabelDecoding::Threshold, ..ModelConfig::new(TrunkKind::Tiny, heads) };
        let probs = Array2::from_shape_vec((1, 4), vec![0.5, 0.4, 0.45, 0.4]).unwrap();
        let one = Decoder::new(&cfg, &onto, true);
        assert_eq!(one.decision_scores(&probs).row(0).to_vec(), vec![0.5, 0.0, 0.45, 0.0]);
        let two = Decoder::new(&cfg, &onto, true).with_single_valued_rule(SingleValuedRule::Second);
        assert_eq!(two.decision_scores(&probs).row(0).to_vec(), vec![0.5, 0.0, 0.45, 0.4], "two planes, still one modality");
    }

    proptest! {
        /// A flat model decoded with the ontology is coherent whatever its scores and thresholds:
        /// closed within its concepts, one modality, one plane (or two planes with `second`).
        #[test]
        fn ontology_decoding_is_coherent_for_any_scores(p in proptest::collection::vec(0f32..1.0, 7), thr in proptest::collection::vec(0.01f32..0.99, 7), second in proptest::bool::ANY) {
            let onto = Ontology::builtin();
            let cfg = flat_chain();
            let rule = if second { SingleValuedRule::Second } else { SingleValuedRule::Argmax };
            let d = Decoder::new(&cfg, &onto, false).with_ontology(&onto, &[Level::Modality, Level::Plane], rule);
            let mut t = Thresholds::new(0.5);
            for (c, v) in cfg.concepts().iter().zip(&thr) {
                t.per_concept.insert(c.clone(), *v);
            }
            let set = &d.decide(&Array2::from_shape_vec((1, 7), p).unwrap(), &t)[0];
            let vocab: BTreeSet<String> = cfg.concepts().into_iter().collect();
            let single: &[Level] = if second { &[Level::Modality] } else { &[Level::Modality, Level::Plane] };
            prop_assert!(crate::eval::is_strictly_coherent(&onto, set, &vocab, single), "{:?}", set);
        }
    }

    proptest! {
        /// Whatever the scores and thresholds, hierarchical decisions are coherent: closed within the
        /// model's concepts and with at most one modality.
        #[test]
        fn hierarchical_decisions_are_always_coherent(p in proptest::collection::vec(0f32..1.0, 10), thr in proptest::collection::vec(0.01f32..0.99, 11), calibrated in proptest::bool::ANY) {
            let onto = Ontology::builtin();
            let single_label = if calibrated { SingleLabelDecoding::Threshold } else { SingleLabelDecoding::Argmax };
            let cfg = ModelConfig { single_label, ..model_cfg() };
            let d = Decoder::new(&cfg, &onto, true);
            let probs = Array2::from_shape_vec((1, 10), p).unwrap();
            let mut t = Thresholds { global: thr[10], ..Default::default() };
            for (c, v) in cfg.concepts().iter().zip(&thr) {
                t.per_concept.insert(c.clone(), *v);
            }
            let set = &d.decide(&probs, &t)[0];
            let vocab: BTreeSet<String> = cfg.concepts().into_iter().collect();
            prop_assert!(crate::eval::is_coherent_within(&onto, set, &vocab), "{:?}", set);
            let modalities = set.iter().filter(|c| onto.level_of(c) == Some(crate::ontology::Level::Modality)).count();
            prop_assert!(modalities <= 1);
        }
    }
}
