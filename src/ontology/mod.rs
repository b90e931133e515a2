//! The radiology concept ontology: UMLS concepts (CUIs) on levels, linked by is_a / part_of.
//!
//! Concepts are UMLS Metathesaurus concepts (Bodenreider 2004, "The Unified Medical Language
//! System (UMLS): integrating biomedical terminology", NAR 32:D267). Each may sit on one
//! [`Level`] (modality, anatomy, laterality, plane, view, technique, finding), as in the
//! per-level models of ImageCLEF 2019 concept detection. The hierarchy is a petgraph
//! `DiGraph<Concept, Relation>` whose edges point from child to parent.
//!
//! Sources: the curated file `ontology/radiology.tsv` ([`Ontology::builtin`], [`Ontology::load`];
//! format in `tsv.rs` and `ontology/README.md`) or UMLS RRF files ([`Ontology::from_umls_rrf`]).
//! A curated file is validated as a whole ([`Ontology::validate_tsv_str`]): every problem is
//! reported with its file and line, and loading fails if there is any.
//!
//! Invariants of a loaded ontology: the graph is acyclic, and (for curated files) the modality
//! concepts among any concept's ancestors-or-self form one chain, so "one modality per image"
//! is expressible as [`Ontology::is_coherent`].
//!
//! The files: `concept.rs` (concept, level, relation), `graph.rs` (the `Ontology` type and its
//! questions), `load.rs` (where an ontology comes from), `tsv.rs` and `validate.rs` (the curated
//! format, row by row and as a graph), `rrf.rs` (UMLS), `semtypes.rs`, `report.rs`, `dot.rs`,
//! `problem.rs` and `error.rs`. This file only declares them and names what the crate uses, so that
//! no child imports it (the import graph keeps no circle here).

mod concept;
mod dot;
mod error;
mod graph;
mod load;
mod problem;
mod report;
mod rrf;
pub mod semtypes;
pub mod tsv;
mod validate;

pub use concept::{Concept, Level, ParseLevelError, Relation};
pub use dot::write_dot;
pub use error::OntologyError;
pub use graph::Ontology;
pub use load::BUILTIN_TSV;
pub use problem::{Problem, ProblemKind};
pub use report::{
    ConceptReport, CuiCount, LabelMapReport, LevelCount, NamedCui, OntologyStats, ParentLink,
};
pub use semtypes::{SemtypeEntry, SemtypeTable};

#[cfg(test)]
mod tests;
