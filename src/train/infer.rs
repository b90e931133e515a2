//! From concept probabilities to concept sets, respecting the hierarchy.
//!
//! For hierarchical models ([`Decoder::enforce`] on), decisions are made in four steps:
//! 1. **max-constraint** (C-HMCNN, Giunchiglia & Lukasiewicz 2020, applied at inference): a
//!    concept's score becomes the minimum of its own and its ancestors' scores within the model's
//!    concept set, so a child never outscores its parent;
//! 2. **single-label heads** (e.g. modality) keep only the arg-max of `[concepts..., none]`, so at
//!    most one modality is predicted;
//! 3. **thresholds** (concept > level > global, tuned on validation);
//! 4. **closure**: every predicted concept's ancestors within the concept set are added.
//!
//! Flat models (the paper's baseline) use thresholds only, so their coherence can be measured as is.
use std::collections::BTreeSet;
use std::ops::Range;

use ndarray::Array2;

use crate::eval::thresholds::Thresholds;
use crate::model::{HeadKind, ModelConfig};
use crate::ontology::Ontology;

/// Turns probability rows into concept sets for one model.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub concepts: Vec<String>,
    /// Level name of each concept (ontology level, or the head's name).
    pub levels: Vec<Option<String>>,
    heads: Vec<(HeadKind, Range<usize>)>,
    /// For each concept, the indices of its ancestors within `concepts`.
    ancestors: Vec<Vec<usize>>,
    pub enforce: bool,
}

impl Decoder {
    pub fn new(model: &ModelConfig, ontology: &Ontology, enforce: bool) -> Decoder {
        let concepts = model.concepts();
        let index: std::collections::HashMap<&str, usize> = concepts.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let ancestors = concepts
            .iter()
            .map(|c| ontology.ancestors(c).iter().filter_map(|a| index.get(a.as_str()).copied()).collect())
            .collect();
        let mut heads = Vec::new();
        let mut start = 0;
        for h in &model.heads {
            heads.push((h.kind, start..start + h.concepts.len()));
            start += h.concepts.len();
        }
        let levels = concepts.iter().map(|c| ontology.level_of(c).map(|l| l.to_string())).collect();
        Decoder { concepts, levels, heads, ancestors, enforce }
    }

    /// Scores that thresholds apply to: max-constrained probabilities, single-label heads one-hot.
    pub fn decision_scores(&self, probs: &Array2<f32>) -> Array2<f32> {
        let mut s = probs.clone();
        if !self.enforce {
            return s;
        }
        for mut row in s.rows_mut() {
            let orig = row.to_owned();
            for (k, anc) in self.ancestors.iter().enumerate() {
                for &a in anc {
                    row[k] = row[k].min(orig[a]);
                }
            }
            for (kind, r) in &self.heads {
                if *kind != HeadKind::SingleLabel || r.is_empty() {
                    continue;
                }
                let none = 1.0 - orig.slice(ndarray::s![r.clone()]).sum();
                // arg-max over [concepts..., none]; usize::MAX stands for "none"
                let (best, _) = r.clone().map(|k| (k, orig[k])).fold((usize::MAX, none), |acc, x| if x.1 > acc.1 { x } else { acc });
                for k in r.clone() {
                    row[k] = if k == best { 1.0 } else { 0.0 };
                }
            }
        }
        s
    }

    /// Concept sets for each row of `probs`.
    pub fn decide(&self, probs: &Array2<f32>, thresholds: &Thresholds) -> Vec<BTreeSet<String>> {
        let scores = self.decision_scores(probs);
        let thr: Vec<f32> = self.concepts.iter().zip(&self.levels).map(|(c, l)| thresholds.for_concept(c, l.as_deref())).collect();
        scores
            .rows()
            .into_iter()
            .map(|row| {
                let mut on: Vec<bool> = row.iter().zip(&thr).map(|(s, t)| s >= t).collect();
                if self.enforce {
                    for k in 0..on.len() {
                        if on[k] {
                            for &a in &self.ancestors[k] {
                                on[a] = true;
                            }
                        }
                    }
                }
                on.iter().enumerate().filter(|(_, &b)| b).map(|(k, _)| self.concepts[k].clone()).collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeadConfig, HeadSpec, TrunkKind};
    use proptest::prelude::*;

    fn model_cfg() -> ModelConfig {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        ModelConfig {
            trunk: TrunkKind::Tiny,
            head: HeadConfig::for_trunk(TrunkKind::Tiny),
            heads: vec![
                HeadSpec { name: "modality".into(), concepts: s(&["C0040405", "C0024485", "C1306645"]), kind: HeadKind::SingleLabel },
                HeadSpec { name: "anatomy".into(), concepts: s(&["C0460004", "C0018670", "C0006104", "C0817096", "C0018787"]), kind: HeadKind::MultiLabel },
                HeadSpec { name: "laterality".into(), concepts: s(&["C0205091", "C0205090"]), kind: HeadKind::SingleLabel },
            ],
            condition_on_previous: false,
        }
    }

    #[test]
    fn max_constraint_and_closure_by_hand() {
        let onto = Ontology::builtin();
        let d = Decoder::new(&model_cfg(), &onto, true);
        // brain scores above head and head-and-neck: the constraint caps it at min(0.9, 0.4, 0.7) = 0.4
        let probs = Array2::from_shape_vec((1, 10), vec![0.7, 0.1, 0.1, 0.7, 0.4, 0.9, 0.1, 0.1, 0.2, 0.1]).unwrap();
        let s = d.decision_scores(&probs);
        assert!((s[[0, 5]] - 0.4).abs() < 1e-6);
        assert_eq!(s.row(0).iter().take(3).copied().collect::<Vec<_>>(), vec![1.0, 0.0, 0.0]);
        // laterality: none = 1 - 0.3 = 0.7 wins -> both zero
        assert_eq!((s[[0, 8]], s[[0, 9]]), (0.0, 0.0));
        let t = Thresholds { global: 0.35, ..Default::default() };
        let set = &d.decide(&probs, &t)[0];
        let want: BTreeSet<String> = ["C0040405", "C0460004", "C0018670", "C0006104"].iter().map(|c| c.to_string()).collect();
        assert_eq!(set, &want);
    }

    proptest! {
        /// Whatever the scores and thresholds, hierarchical decisions are coherent: closed within the
        /// model's concepts and with at most one modality.
        #[test]
        fn hierarchical_decisions_are_always_coherent(p in proptest::collection::vec(0f32..1.0, 10), thr in proptest::collection::vec(0.01f32..0.99, 11)) {
            let onto = Ontology::builtin();
            let cfg = model_cfg();
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
