//! `OntologyError`, the one error type of the ontology stage.

use std::path::PathBuf;

use super::problem::Problem;

/// Errors of this module. Messages name the file, line or CUI at fault.
#[derive(Debug, thiserror::Error)]
pub enum OntologyError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A curated file has problems; all of them are listed, one per line.
    #[error("invalid ontology {source_name} ({} problem(s)):\n{}", .problems.len(), format_problems(.problems))]
    Invalid {
        /// File name the text came from.
        source_name: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// A CUI that the ontology does not contain.
    #[error("unknown CUI {cui}: not in the ontology")]
    UnknownCui {
        /// The CUI asked for.
        cui: String,
    },
    /// A malformed line in a UMLS RRF file.
    #[error("{}:{line}: {message}", path.display())]
    Rrf {
        /// The RRF file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Rendering a DOT graph with Graphviz failed.
    #[error("{0}")]
    Graphviz(String),
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
