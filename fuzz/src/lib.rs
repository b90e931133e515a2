//! The tch-free parser modules of conceptree, compiled straight from the main crate's sources
//! so the fuzz targets need neither libtorch nor the main crate's other dependencies.
//! `data` and `eval` re-export them at the main crate's paths (`crate::data::labels`,
//! `crate::eval::submission`, `crate::ontology`) so `crate::` paths inside the files resolve.
#![allow(dead_code, unused_imports, rustdoc::broken_intra_doc_links)]

#[path = "../../src/data/labels.rs"]
#[doc(hidden)]
pub mod labels_src;
#[path = "../../src/eval/submission.rs"]
#[doc(hidden)]
pub mod submission_src;

// a mod.rs loaded by #[path] finds its children (tsv.rs, rrf.rs, ...) beside it, and its
// include_str!("../../ontology/*.tsv") paths stay relative to the original file
#[path = "../../src/ontology/mod.rs"]
pub mod ontology;

pub mod data {
    pub use super::labels_src as labels;
}

pub mod eval {
    pub use super::submission_src as submission;
}

#[path = "../../src/cui.rs"]
pub mod cui;

// the bounded line reader and the FNV fingerprint the parsers above call (`crate::text`,
// `crate::fingerprint`); both are std-only leaves
#[path = "../../src/text.rs"]
pub mod text;

#[path = "../../src/fingerprint.rs"]
pub mod fingerprint;
