//! `predict --explain`: one JSON line per image saying how its concepts were decided.
//!
//! A record holds the predicted concepts from the root down with their names (`path`), every
//! concept's probability (`scores`, the input `analyse --scores` reads), and every concept's way
//! through the decoder (`decisions`: probability, the score after the hierarchy's cap or the
//! single-label choice, the ancestor that capped it, the threshold, and the decision), in the
//! order the decoder took them.
use std::collections::{BTreeMap, BTreeSet};

use ndarray::ArrayView1;
use serde::{Deserialize, Serialize};

use super::decoder::{ConceptTrace, Decoder};
use crate::eval::thresholds::Thresholds;
use crate::ontology::Ontology;

/// How one image's concepts were decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainRecord {
    pub id: String,
    /// The predicted concepts, as written in the submission.
    pub predicted: Vec<String>,
    /// The predicted concepts from the root of the hierarchy down, as `CUI name`.
    pub path: Vec<String>,
    /// Every concept's probability.
    pub scores: BTreeMap<String, f32>,
    /// Every concept's decision, in the model's head and concept order.
    pub decisions: Vec<ConceptTrace>,
}

impl ExplainRecord {
    /// The record of image `id` with probabilities `probs` (the model's concept order).
    pub fn new(id: &str, probs: ArrayView1<f32>, decoder: &Decoder, thresholds: &Thresholds, ontology: &Ontology) -> ExplainRecord {
        let decisions = decoder.trace(probs, thresholds);
        let predicted: BTreeSet<String> = decisions.iter().filter(|d| d.decision.is_in_prediction()).map(|d| d.cui.clone()).collect();
        let mut path: Vec<(usize, &String)> = predicted.iter().map(|c| (ontology.depth(c).unwrap_or(0), c)).collect();
        path.sort();
        let path = path.iter().map(|(_, c)| format!("{c} {}", ontology.get(c).map(|x| x.name.as_str()).unwrap_or("(not in the ontology)"))).collect();
        let scores = decisions.iter().map(|d| (d.cui.clone(), d.probability)).collect();
        ExplainRecord { id: id.to_string(), predicted: predicted.into_iter().collect(), path, scores, decisions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HeadKind, HeadSpec, ModelConfig, TrunkKind};
    use crate::infer::decoder::Decision;
    use ndarray::Array2;

    #[test]
    fn a_record_agrees_with_the_decoder_and_round_trips() {
        let onto = Ontology::builtin();
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let cfg = ModelConfig::new(TrunkKind::Tiny, vec![
                HeadSpec::new("modality", s(&["C0040405", "C0024485"]), HeadKind::SingleLabel),
                HeadSpec::new("anatomy", s(&["C0460004", "C0018670", "C0006104"]), HeadKind::MultiLabel),
            ]);
        let d = Decoder::new(&cfg, &onto, true);
        // brain 0.8 is capped by head (0.6, below head-and-neck's 0.7) and misses its own 0.65;
        // head passes 0.5 and pulls in head-and-neck, which misses its own 0.9
        let probs = Array2::from_shape_vec((1, 5), vec![0.7, 0.2, 0.7, 0.6, 0.8]).unwrap();
        let mut t = Thresholds::new(0.5);
        t.per_concept.insert("C0460004".into(), 0.9);
        t.per_concept.insert("C0006104".into(), 0.65);
        let r = ExplainRecord::new("img1", probs.row(0), &d, &t, &onto);
        let want: Vec<String> = d.decide(&probs, &t)[0].iter().cloned().collect();
        assert_eq!(r.predicted, want);
        assert_eq!(r.predicted, s(&["C0018670", "C0040405", "C0460004"]));
        let brain = &r.decisions[4];
        assert_eq!((brain.score, brain.capped_by.as_deref(), brain.threshold, brain.decision), (0.6, Some("C0018670"), 0.65, Decision::BelowThreshold));
        assert_eq!(r.decisions[2].decision, Decision::AddedAsAncestor);
        assert_eq!(r.decisions[1].decision, Decision::NotChosen);
        assert_eq!(r.scores["C0006104"], 0.8, "scores are the model's probabilities");
        assert!(r.path[0].starts_with("C0040405") || r.path[0].starts_with("C0460004"), "roots first: {:?}", r.path);
        let back: ExplainRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
