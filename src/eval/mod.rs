//! Evaluation: the official ImageCLEF F1, per-level, per-concept and hierarchical metrics,
//! submission validation and threshold tuning (pure functions, independent of tch).
pub mod ceiling;
pub mod metrics;
pub mod stats;
pub mod submission;
pub mod thresholds;

use std::collections::BTreeSet;

use crate::ontology::{Level, Ontology};

/// The per-level group of the concepts on no ontology level.
pub(crate) const NO_LEVEL: &str = "no level";

/// Ontology hooks for [`metrics::evaluate`].
///
/// * level: the concept's level in `ontology` (curated, else from its semantic types); concepts on
///   no level form their own group, [`NO_LEVEL`] (a hybrid model's residual concepts mostly);
/// * closure: all ontology ancestors (Kiritchenko et al.'s hierarchical P/R/F1);
/// * coherence: judged against the evaluation vocabulary `vocab` (the concepts the ground truth
///   uses): a predicted set is coherent when every ancestor of each of its concepts that lies in
///   `vocab` is present too, and at most one modality chain is predicted. Ancestors the ground
///   truth never uses are not demanded, since no ImageCLEF-style label set contains them.
pub fn ontology_hooks<'a>(ontology: &'a Ontology, vocab: BTreeSet<String>) -> metrics::EvalHooks<'a> {
    metrics::EvalHooks {
        level_of: Some(Box::new(move |c: &str| Some(ontology.level_of(c).map_or_else(|| NO_LEVEL.to_string(), |l| l.to_string())))),
        closure: Some(Box::new(move |s: &BTreeSet<String>| ontology.closure(s))),
        is_coherent: Some(Box::new(move |s: &BTreeSet<String>| is_coherent_within(ontology, s, &vocab))),
    }
}

/// Strict coherence: [`is_coherent_within`], and on each of the `single_valued` levels (plane,
/// view, ... where no training image holds two of their concepts) the predicted concepts form one
/// chain (at most one concept and its ancestors), as for modality.
pub(crate) fn is_strictly_coherent(ontology: &Ontology, set: &BTreeSet<String>, vocab: &BTreeSet<String>, single_valued: &[Level]) -> bool {
    is_coherent_within(ontology, set, vocab)
        && single_valued.iter().all(|&level| {
            let on: Vec<&String> = set.iter().filter(|c| ontology.level_of(c) == Some(level)).collect();
            on.iter().all(|a| on.iter().all(|b| a == b || ontology.ancestors(a).contains(*b) || ontology.ancestors(b).contains(*a)))
        })
}

/// Coherence of `set` relative to `vocab` (see [`ontology_hooks`]).
pub(crate) fn is_coherent_within(ontology: &Ontology, set: &BTreeSet<String>, vocab: &BTreeSet<String>) -> bool {
    let closed = set.iter().all(|c| ontology.ancestors(c).iter().filter(|a| vocab.contains(*a)).all(|a| set.contains(a)));
    let modalities: Vec<&String> = set.iter().filter(|c| ontology.level_of(c) == Some(Level::Modality)).collect();
    // one chain: every pair of predicted modalities is ancestor-related
    let one_chain = modalities.iter().all(|a| {
        modalities.iter().all(|b| a == b || ontology.ancestors(a).contains(*b) || ontology.ancestors(b).contains(*a))
    });
    closed && one_chain
}
