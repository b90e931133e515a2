//! Problems found in ontology and semantic-type files, and the line iterator both file readers
//! share. Each problem carries the file name and 1-based line number.
use std::fmt;

use serde::Serialize;

/// What kind of problem a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Missing header, or a header other than [`HEADER`](super::tsv::HEADER).
    BadHeader,
    /// Wrong number of columns, or an empty name.
    MalformedRow,
    /// A CUI (in the `cui` column or a parent entry) that is not `C` + seven digits.
    MalformedCui,
    /// The same CUI defined on two rows.
    DuplicateCui,
    /// A parent CUI that no row defines.
    UnknownParent,
    /// A parent entry with a relation other than `is_a` / `part_of`.
    MalformedParent,
    /// A level name that is not one of [`Level::ALL`](super::Level::ALL) (nor `-`).
    UnknownLevel,
    /// A semantic type that is not `T` + three digits.
    MalformedSemanticType,
    /// The same TUI twice in a semantic type table.
    DuplicateSemanticType,
    /// A flag that is not in [`FLAGS`](super::tsv::FLAGS).
    UnknownFlag,
    /// The parent edges form a cycle.
    Cycle,
    /// Two modality concepts that are not in one chain among a concept's ancestors-or-self.
    ModalityConflict,
    /// A parent on another level than its child ("no level" being a level of its own).
    ParentOffLevel,
}

/// One problem found in an ontology file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// File name (or other label) the text came from.
    pub source: String,
    /// 1-based line number, when the problem belongs to one line.
    pub line: Option<usize>,
    /// Its kind, for programs.
    pub kind: ProblemKind,
    /// Its description, for people.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.source, line, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

/// The lines of a TSV file that carry content, with their 1-based numbers: a UTF-8 byte-order mark
/// at the start of the file is dropped, blank lines and `#` comments are skipped, a trailing CR is
/// removed. Shared by the ontology and semantic-type tables.
pub(crate) fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .enumerate()
        .map(|(i, raw)| (i + 1, raw.trim_end_matches('\r')))
        .filter(|(_, line)| !(line.trim().is_empty() || line.trim_start().starts_with('#')))
}

