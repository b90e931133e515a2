//! Where an ontology comes from: the shipped curated file, a curated file given by the user
//! (validated as a whole, every problem reported; `validate.rs`), or UMLS RRF files (`rrf.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use super::error::OntologyError;
use super::graph::Ontology;
use super::problem::Problem;
use super::rrf;
use super::validate;

/// The shipped curated ontology, `ontology/radiology.tsv`.
pub const BUILTIN_TSV: &str = include_str!("../../ontology/radiology.tsv");

impl Ontology {
    /// The shipped curated ontology (`ontology/radiology.tsv`). Panics only if the shipped file
    /// is invalid, which a unit test rules out.
    pub fn builtin() -> Ontology {
        Ontology::from_tsv_str(BUILTIN_TSV, "ontology/radiology.tsv")
            .unwrap_or_else(|e| panic!("the shipped ontology is invalid: {e}"))
    }

    /// Parses and validates a curated file (format in `tsv.rs`). Fails with
    /// [`OntologyError::Invalid`] listing every problem if there is any.
    pub fn from_tsv_str(text: &str, source: &str) -> Result<Ontology, OntologyError> {
        validate::check_and_build(text, source).map_err(|problems| OntologyError::Invalid {
            source_name: source.to_string(),
            problems,
        })
    }

    /// Reads and validates a curated file.
    pub fn load(path: &Path) -> Result<Ontology, OntologyError> {
        let text = crate::text::read_text(path).map_err(|source| OntologyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ontology::from_tsv_str(&text, &path.display().to_string())
    }

    /// Every problem of a curated file, sorted by line (empty when it is valid).
    pub fn validate_tsv_str(text: &str, source: &str) -> Vec<Problem> {
        validate::check_and_build(text, source)
            .err()
            .unwrap_or_default()
    }

    /// Loads concepts and hierarchy from UMLS RRF files in `dir` (`MRCONSO.RRF`, `MRREL.RRF`,
    /// `MRSTY.RRF`); with `restrict_to`, keeps only those CUIs and the edges among them.
    /// See `rrf.rs` for the exact reading of each file.
    pub fn from_umls_rrf(
        dir: &Path,
        restrict_to: Option<&BTreeSet<String>>,
    ) -> Result<Ontology, OntologyError> {
        rrf::load(dir, restrict_to)
    }
}
