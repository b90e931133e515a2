//! Validation of a concept-detection submission against the ground-truth image ids, with the
//! rules of the official ImageCLEFmedical concept-detection evaluators.
//!
//! # What is replicated
//!
//! Scoring itself lives in [`crate::eval::metrics`]; this module only turns raw rows
//! (`id`, CUIs as written, line number) into a clean `id -> set of upper-cased CUIs` map, or
//! fails with an error naming `source:line` and the image id. The rules, and where they come
//! from:
//!
//! * `evaluate-f1.py` (ImageCLEF 2017-2019 stand-alone script): reads `id<TAB>CUI;CUI`, upper-cases
//!   both lists, splits on `;` (a blank string is the empty list) and aborts when the candidate
//!   file does not hold as many entries as the ground truth. It makes no other check.
//! * crowdAI / AIcrowd evaluators (2018 and 2020-2025 `load_predictions`), which add, each as a
//!   hard error naming the line: image id not in the test set; image id given more than once;
//!   the same concept given more than once for an image ("Same concept was specified more than
//!   once for image ID ..."); too many concepts for one image (`max_num_concepts = 100` from
//!   2020 on and raised as an error, "Too Many concepts specified"; the 2018 crowdAI evaluator
//!   used 1286); and a submission that does not cover every test image. We could not read the
//!   2019 crowdAI evaluator itself; its rules are taken to be those of its 2018 and 2020
//!   neighbours, with the limit of 100 ([`MAX_CONCEPTS_PER_IMAGE`]).
//! * No official evaluator checks the CUI format; any token is a concept. We reject only
//!   tokens that cannot be a concept in any file format (internal whitespace, control
//!   characters, or one of the separators `;` `,` `|`), and check the UMLS form `C` + 7 digits
//!   only when [`SubmissionRules::require_umls_cui`] is set (off by default, so synthetic
//!   ontologies keep working).
//!
//! # Where we differ, on purpose
//!
//! * Blank tokens (`C0040405;` or `;;`) are skipped and reported in
//!   [`ValidatedSubmission::skipped`]; `evaluate-f1.py` would count the empty string as one
//!   more (wrong) concept. Tokens are trimmed, as the 2020+ evaluators do.
//! * A repeated concept is detected after upper-casing (`c0040405;C0040405` is an error), where
//!   the official check compares the tokens as written. The score is unaffected either way.
//! * A missing image is an error unless `allow_missing`; then it is listed in
//!   [`ValidatedSubmission::missing`] and scores 0 (counted in the mean) in
//!   [`crate::eval::metrics::imageclef_f1`].
//! * A row with an empty id and no concept (a blank line) is skipped and reported, not an error.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::cui::is_cui;

/// Largest number of concepts the AIcrowd evaluators (2020-2025) accept for one image.
pub(crate) const MAX_CONCEPTS_PER_IMAGE: usize = 100;

/// How many missing ids [`SubmissionError::MissingImages`] quotes.
const MISSING_EXAMPLES: usize = 5;

/// One raw row from a submission or label file: the image id and its CUIs, with its line.
use crate::data::labels::LabelRow;

/// A submission row as written: an image id and its concept tokens, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRow {
    pub id: String,
    pub tokens: Vec<String>,
    /// 1-based line number in the source file.
    pub line: usize,
}

impl From<&LabelRow> for SubmissionRow {
    fn from(r: &LabelRow) -> SubmissionRow {
        SubmissionRow { id: r.id.clone(), tokens: r.cui_strings(), line: r.line }
    }
}

/// Why something in the submission was skipped rather than scored or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A row with an empty id and no concept (a blank line).
    BlankRow,
    /// An empty concept token in a row, e.g. from a trailing `;`.
    BlankToken,
}

/// One skipped row or token, with where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// 1-based line number in the source file.
    pub line: usize,
    /// The row's image id (empty for a blank row).
    pub id: String,
    pub reason: SkipReason,
}

/// A submission that passed validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidatedSubmission {
    /// Image id -> upper-cased, trimmed concepts. Only ids present in the submission.
    pub preds: BTreeMap<String, BTreeSet<String>>,
    /// Ground-truth ids absent from the submission (sorted); empty unless `allow_missing`.
    pub missing: Vec<String>,
    /// Blank rows and blank tokens that were skipped, in file order.
    pub skipped: Vec<Skipped>,
}

/// Checks applied by [`validate_submission_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmissionRules {
    /// Accept a submission that lacks some ground-truth images (they score 0). Default `false`.
    pub allow_missing: bool,
    /// Most concepts allowed for one image. Default `Some(MAX_CONCEPTS_PER_IMAGE)` (100).
    pub max_concepts_per_image: Option<usize>,
    /// Require every concept to be a UMLS CUI (`C` + 7 digits, any case). Default `false`.
    pub require_umls_cui: bool,
}

impl Default for SubmissionRules {
    fn default() -> Self {
        Self { allow_missing: false, max_concepts_per_image: Some(MAX_CONCEPTS_PER_IMAGE), require_umls_cui: false }
    }
}

/// A submission that breaks the evaluator's rules. Each variant names the source (`file`: a path
/// or any label given by the caller; not called `source`, which thiserror reserves) and, where
/// there is one, the line and image id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error("{file}:{line}: image id '{id}' is not in the ground truth")]
    UnknownId { file: String, line: usize, id: String },
    #[error("{file}:{line}: image id '{id}' is given more than once (first on line {first_line})")]
    RepeatedId { file: String, line: usize, id: String, first_line: usize },
    #[error("{file}:{line}: image '{id}' contains the same concept '{cui}' more than once")]
    RepeatedConcept { file: String, line: usize, id: String, cui: String },
    #[error("{file}:{line}: image '{id}': '{token}' is not a valid concept")]
    MalformedCui { file: String, line: usize, id: String, token: String },
    #[error("{file}:{line}: image '{id}' has {count} concepts; at most {max} are allowed")]
    TooManyConcepts { file: String, line: usize, id: String, count: usize, max: usize },
    #[error("{file}: {count} ground-truth image(s) have no prediction (e.g. {}); allow missing images to score them as 0", examples.join(", "))]
    MissingImages { file: String, count: usize, examples: Vec<String> },
}

/// Validate `rows` (from the file named `source`) against the ground-truth ids, with the
/// default rules (at most 100 concepts per image, no UMLS format check) and `allow_missing`.
///
/// Checks per row, in the official order: unknown id, repeated id, malformed concept, too many
/// concepts, repeated concept. Then, unless `allow_missing`, every ground-truth id must be
/// present. See the module docs for what is replicated and where we differ.
pub fn validate_submission(
    gt_ids: &BTreeSet<String>,
    rows: &[SubmissionRow],
    source: &str,
    allow_missing: bool,
) -> Result<ValidatedSubmission, SubmissionError> {
    validate_submission_with(gt_ids, rows, source, &SubmissionRules { allow_missing, ..SubmissionRules::default() })
}

/// [`validate_submission`] with every rule explicit.
pub fn validate_submission_with(
    gt_ids: &BTreeSet<String>,
    rows: &[SubmissionRow],
    source: &str,
    rules: &SubmissionRules,
) -> Result<ValidatedSubmission, SubmissionError> {
    let mut out = ValidatedSubmission::default();
    let mut first_line_of: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for row in rows {
        let id = row.id.as_str();
        if id.is_empty() && row.tokens.iter().all(|t| t.trim().is_empty()) {
            out.skipped.push(Skipped { line: row.line, id: String::new(), reason: SkipReason::BlankRow });
            continue;
        }
        if !gt_ids.contains(id) {
            return Err(SubmissionError::UnknownId { file: source.to_string(), line: row.line, id: id.to_string() });
        }
        if let Some(&first_line) = first_line_of.get(id) {
            return Err(SubmissionError::RepeatedId {
                file: source.to_string(),
                line: row.line,
                id: id.to_string(),
                first_line,
            });
        }
        first_line_of.insert(id, row.line);

        let mut cuis: Vec<String> = Vec::with_capacity(row.tokens.len());
        for token in &row.tokens {
            let t = token.trim();
            if t.is_empty() {
                out.skipped.push(Skipped { line: row.line, id: id.to_string(), reason: SkipReason::BlankToken });
                continue;
            }
            let malformed = t.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '|'))
                || (rules.require_umls_cui && !is_cui(t));
            if malformed {
                return Err(SubmissionError::MalformedCui {
                    file: source.to_string(),
                    line: row.line,
                    id: id.to_string(),
                    token: crate::cui::excerpt(token, crate::cui::EXCERPT),
                });
            }
            cuis.push(t.to_uppercase());
        }
        if let Some(max) = rules.max_concepts_per_image {
            if cuis.len() > max {
                return Err(SubmissionError::TooManyConcepts {
                    file: source.to_string(),
                    line: row.line,
                    id: id.to_string(),
                    count: cuis.len(),
                    max,
                });
            }
        }
        let mut set = BTreeSet::new();
        for cui in cuis {
            if set.contains(&cui) {
                return Err(SubmissionError::RepeatedConcept {
                    file: source.to_string(),
                    line: row.line,
                    id: id.to_string(),
                    cui,
                });
            }
            set.insert(cui);
        }
        out.preds.insert(id.to_string(), set);
    }
    out.missing = gt_ids.iter().filter(|id| !out.preds.contains_key(*id)).cloned().collect();
    if !out.missing.is_empty() && !rules.allow_missing {
        return Err(SubmissionError::MissingImages {
            file: source.to_string(),
            count: out.missing.len(),
            examples: out.missing.iter().take(MISSING_EXAMPLES).cloned().collect(),
        });
    }
    Ok(out)
}


#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, tokens: &[&str], line: usize) -> SubmissionRow {
        SubmissionRow { id: id.into(), tokens: tokens.iter().map(|s| s.to_string()).collect(), line }
    }

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn clean_submission_is_upper_cased_and_trimmed() {
        let gt = ids(&["a", "b"]);
        let rows = [row("a", &["c0000001", " C0000002 "], 1), row("b", &[], 2)];
        let v = validate_submission(&gt, &rows, "run.csv", false).unwrap();
        assert_eq!(v.preds["a"], ids(&["C0000001", "C0000002"]));
        assert!(v.preds["b"].is_empty());
        assert!(v.missing.is_empty() && v.skipped.is_empty());
    }

    #[test]
    fn unknown_id_names_file_line_and_id() {
        let gt = ids(&["a"]);
        let err = validate_submission(&gt, &[row("a", &[], 1), row("zz", &["X"], 2)], "run.csv", false).unwrap_err();
        assert_eq!(err, SubmissionError::UnknownId { file: "run.csv".into(), line: 2, id: "zz".into() });
        assert_eq!(err.to_string(), "run.csv:2: image id 'zz' is not in the ground truth");
    }

    #[test]
    fn repeated_id_reports_both_lines() {
        let gt = ids(&["a", "b"]);
        let rows = [row("a", &["X"], 3), row("b", &[], 4), row("a", &["Y"], 7)];
        let err = validate_submission(&gt, &rows, "run.csv", false).unwrap_err();
        assert_eq!(err, SubmissionError::RepeatedId { file: "run.csv".into(), line: 7, id: "a".into(), first_line: 3 });
        assert!(err.to_string().starts_with("run.csv:7: image id 'a'"));
    }

    #[test]
    fn repeated_concept_is_an_error_even_across_case() {
        let gt = ids(&["a"]);
        let err = validate_submission(&gt, &[row("a", &["C0000001", "c0000001"], 5)], "run.csv", false).unwrap_err();
        assert_eq!(
            err,
            SubmissionError::RepeatedConcept {
                file: "run.csv".into(),
                line: 5,
                id: "a".into(),
                cui: "C0000001".into()
            }
        );
        assert!(err.to_string().contains("contains the same concept 'C0000001' more than once"));
    }

    #[test]
    fn malformed_and_non_umls_tokens() {
        let gt = ids(&["a"]);
        let err = validate_submission(&gt, &[row("a", &["C1 C2"], 2)], "s", false).unwrap_err();
        assert!(matches!(err, SubmissionError::MalformedCui { line: 2, ref token, .. } if token == "C1 C2"));
        // Synthetic ids pass by default, but not under require_umls_cui.
        assert!(validate_submission(&gt, &[row("a", &["LUNG"], 2)], "s", false).is_ok());
        let strict = SubmissionRules { require_umls_cui: true, ..Default::default() };
        let err = validate_submission_with(&gt, &[row("a", &["LUNG"], 2)], "s", &strict).unwrap_err();
        assert!(matches!(err, SubmissionError::MalformedCui { ref token, .. } if token == "LUNG"));
    }

    #[test]
    fn too_many_concepts() {
        let gt = ids(&["a"]);
        let many: Vec<String> = (0..101).map(|i| format!("C{i:07}")).collect();
        let r = SubmissionRow { id: "a".into(), tokens: many, line: 9 };
        let err = validate_submission(&gt, std::slice::from_ref(&r), "s", false).unwrap_err();
        assert!(matches!(err, SubmissionError::TooManyConcepts { line: 9, count: 101, max: 100, .. }));
        let lax = SubmissionRules { max_concepts_per_image: None, ..Default::default() };
        assert!(validate_submission_with(&gt, &[r], "s", &lax).is_ok());
    }

    #[test]
    fn missing_images_error_or_listed() {
        let gt = ids(&["a", "b", "c"]);
        let rows = [row("b", &["X"], 1)];
        let err = validate_submission(&gt, &rows, "run.csv", false).unwrap_err();
        assert_eq!(
            err,
            SubmissionError::MissingImages { file: "run.csv".into(), count: 2, examples: vec!["a".into(), "c".into()] }
        );
        assert!(err.to_string().contains("2 ground-truth image(s) have no prediction (e.g. a, c)"));
        let v = validate_submission(&gt, &rows, "run.csv", true).unwrap();
        assert_eq!(v.missing, vec!["a".to_string(), "c".to_string()]);
        assert_eq!(v.preds.len(), 1);
    }

    #[test]
    fn blank_rows_and_tokens_are_skipped_and_reported() {
        let gt = ids(&["a"]);
        let rows = [row("a", &["X", "", " "], 1), row("", &[], 2)];
        let v = validate_submission(&gt, &rows, "s", false).unwrap();
        assert_eq!(v.preds["a"], ids(&["X"]));
        assert_eq!(
            v.skipped,
            vec![
                Skipped { line: 1, id: "a".into(), reason: SkipReason::BlankToken },
                Skipped { line: 1, id: "a".into(), reason: SkipReason::BlankToken },
                Skipped { line: 2, id: String::new(), reason: SkipReason::BlankRow },
            ]
        );
    }

    #[test]
    fn umls_cui_form() {
        assert!(is_cui("C0040405") && is_cui("c0040405"));
        assert!(!is_cui("C004040") && !is_cui("X0040405") && !is_cui("C00404051"));
    }
}
