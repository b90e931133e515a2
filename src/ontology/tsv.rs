//! The curated ontology file format (`ontology/radiology.tsv`) and its row-level checks.
//!
//! `#` starts a comment line; blank lines are ignored; the first other line is the header
//! `cui<TAB>name<TAB>level<TAB>parents<TAB>semantic_types<TAB>flags`. Per row:
//! - `cui`: a UMLS CUI, `C` and seven digits;
//! - `name`: the UMLS preferred name (free text without tabs or other control characters, not
//!   empty);
//! - `level`: one of [`Level::ALL`]'s names or `-` (no curated level);
//! - `parents`: `-` or `;`-separated entries `CUI` (is_a), `is_a:CUI` or `part_of:CUI`;
//! - `semantic_types`: `-` or `;`-separated TUIs (`T060`);
//! - `flags`: `-` or `;`-separated words from [`FLAGS`] (`noise`: a concept known to be label
//!   noise in ImageCLEF/ROCO annotations).
//!
//! A four-column concept table with the header `cui<TAB>name<TAB>level<TAB>parent` (as `conceptree
//! data synth` writes, and as realrad ships) is read too: an empty level or parent means none, and
//! the rows carry no semantic types or flags.
//!
//! This module checks each row on its own (`parse_rows`); graph-level checks (unknown parents,
//! cycles, modality conflicts) live in `validate.rs`. Every problem is a [`Problem`] carrying the
//! file name and 1-based line number.

use super::concept::{Level, Relation};
use super::graph::Ontology;
use super::problem::{content_lines, Problem, ProblemKind};
use super::semtypes::is_tui;
use crate::cui::{excerpt, is_canonical_cui as is_cui, EXCERPT};

/// The header every curated file must start with (after comments).
pub(crate) const HEADER: [&str; 6] = ["cui", "name", "level", "parents", "semantic_types", "flags"];

/// The header of a four-column concept table (see the module docs).
pub(crate) const CONCEPT_TABLE_HEADER: [&str; 4] = ["cui", "name", "level", "parent"];

/// Flags a row may carry. `noise`: known label noise in ImageCLEF/ROCO (e.g. C0751437
/// "Adenohypophyseal Diseases" produced from the word "anterior").
pub(crate) const FLAGS: &[&str] = &["noise"];

/// One well-formed data row of a curated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub line: usize,
    pub cui: String,
    pub name: String,
    pub level: Option<Level>,
    pub parents: Vec<(String, Relation)>,
    pub semantic_types: Vec<String>,
    pub noise: bool,
}

/// Splits a `-` or `;`-separated list cell into trimmed, non-empty items.
fn list(cell: &str) -> Vec<&str> {
    if cell.trim() == "-" {
        return Vec::new();
    }
    cell.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses the rows of a curated file, returning the well-formed rows and every row-level problem.
/// A row with any problem is left out (so later checks see only trustworthy rows); its problems
/// are all reported.
pub(crate) fn parse_rows<'a>(text: &'a str, source: &str) -> (Vec<Row>, Vec<Problem>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    // once the header is read: whether the file is a four-column concept table
    let mut layout = None;
    for (line_no, line) in content_lines(text) {
        let mut found = Found { source, line: line_no, problems: &mut problems };
        let cols: Vec<&'a str> = line.split('\t').collect();
        let Some(concept_table) = layout else {
            match header_layout(line, &cols) {
                Ok(table) => layout = Some(table),
                Err(message) => {
                    found.push(ProblemKind::BadHeader, message);
                    return (rows, problems);
                }
            }
            continue;
        };
        match six_columns(cols, concept_table) {
            Ok(cols) => rows.extend(parse_row(&cols, &mut found)),
            Err(message) => found.push(ProblemKind::MalformedRow, message),
        }
    }
    if layout.is_none() {
        problems.push(Problem {
            source: source.to_string(),
            line: None,
            kind: ProblemKind::BadHeader,
            message: format!("no header line '{}'", HEADER.join("<TAB>")),
        });
    }
    (rows, problems)
}

/// Where one line's problems go, each tagged with the file name and the line number.
struct Found<'p> {
    source: &'p str,
    line: usize,
    problems: &'p mut Vec<Problem>,
}

impl Found<'_> {
    /// Records one problem of this line (the row it is on will be left out).
    fn push(&mut self, kind: ProblemKind, message: String) {
        self.problems.push(Problem { source: self.source.to_string(), line: Some(self.line), kind, message });
    }
}

/// What messages quote of a cell: a cell may be a gigabyte of garbage.
fn quote(cell: &str) -> String {
    excerpt(cell, EXCERPT)
}

/// Reads the header line: `Ok(true)` for a four-column concept table, `Ok(false)` for a curated
/// file, the message of a bad header otherwise.
fn header_layout(line: &str, cols: &[&str]) -> Result<bool, String> {
    let found: Vec<&str> = cols.iter().map(|c| c.trim()).collect();
    let concept_table = found == CONCEPT_TABLE_HEADER;
    if found != HEADER && !concept_table {
        return Err(format!(
            "expected header '{}' (or a concept table's '{}'), found '{}'",
            HEADER.join("<TAB>"),
            CONCEPT_TABLE_HEADER.join("<TAB>"),
            excerpt(line, 80)
        ));
    }
    Ok(concept_table)
}

/// A data row's cells in the curated file's six columns (a concept table's four widened: an
/// empty level or parent means none, no semantic types or flags), or the message of a row with
/// the wrong number of columns.
fn six_columns<'a>(cols: Vec<&'a str>, concept_table: bool) -> Result<Vec<&'a str>, String> {
    let dash = |c: &'a str| if c.trim().is_empty() { "-" } else { c };
    let cols: Vec<&str> = match (concept_table, cols.len()) {
        (true, 4) => vec![cols[0], cols[1], dash(cols[2]), dash(cols[3]), "-", "-"],
        (true, n) => return Err(format!("expected 4 tab-separated columns ({}), found {n}", CONCEPT_TABLE_HEADER.join(", "))),
        (false, _) => cols,
    };
    if cols.len() != HEADER.len() {
        return Err(format!(
            "expected {} tab-separated columns ({}), found {}",
            HEADER.len(),
            HEADER.join(", "),
            cols.len()
        ));
    }
    Ok(cols)
}

/// Checks the six cells of one data row, cell by cell, pushing every problem; the row when there
/// is none.
fn parse_row(cols: &[&str], found: &mut Found) -> Option<Row> {
    let before = found.problems.len();
    let cui = cols[0].trim();
    let cui_q = quote(cui);
    if !is_cui(cui) {
        found.push(
            ProblemKind::MalformedCui,
            format!("malformed CUI '{cui_q}' (expected C and 7 digits)"),
        );
    }
    let name = cols[1].trim();
    check_name(name, &cui_q, found);
    let level = parse_level(cols[2].trim(), &cui_q, found);
    let parents = parse_parents(cols[3], &cui_q, found);
    let semantic_types = parse_semantic_types(cols[4], &cui_q, found);
    let noise = parse_flags(cols[5], &cui_q, found);
    (found.problems.len() == before).then(|| Row {
        line: found.line,
        cui: cui.to_string(),
        name: name.to_string(),
        level,
        parents,
        semantic_types,
        noise,
    })
}

/// A name must be non-empty and free of control characters.
fn check_name(name: &str, cui_q: &str, found: &mut Found) {
    if name.is_empty() {
        found.push(
            ProblemKind::MalformedRow,
            format!("{cui_q} has an empty name"),
        );
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        // e.g. a stray CR: to_tsv could not write it back (found by fuzzing)
        found.push(
            ProblemKind::MalformedRow,
            format!("{cui_q}: name contains the control character U+{:04X}", c as u32),
        );
    }
}

/// The level cell: `-` (none) or a level's name.
fn parse_level(cell: &str, cui_q: &str, found: &mut Found) -> Option<Level> {
    if cell == "-" {
        return None;
    }
    match cell.parse::<Level>() {
        Ok(l) => Some(l),
        Err(e) => {
            found.push(ProblemKind::UnknownLevel, format!("{cui_q}: {e}"));
            None
        }
    }
}

/// The parents cell: entries `CUI` (is_a), `is_a:CUI` or `part_of:CUI`; bad entries are left out.
fn parse_parents(cell: &str, cui_q: &str, found: &mut Found) -> Vec<(String, Relation)> {
    let mut parents = Vec::new();
    for entry in list(cell) {
        let (relation, parent) = match entry.split_once(':') {
            None => (Some(Relation::IsA), entry),
            Some((rel, parent)) => (rel.trim().parse::<Relation>().ok(), parent.trim()),
        };
        let Some(relation) = relation else {
            found.push(
                ProblemKind::MalformedParent,
                format!("{cui_q}: parent entry '{}' has an unknown relation (expected is_a or part_of)", quote(entry)),
            );
            continue;
        };
        if !is_cui(parent) {
            found.push(
                ProblemKind::MalformedCui,
                format!("{cui_q}: malformed parent CUI '{}'", quote(parent)),
            );
            continue;
        }
        parents.push((parent.to_string(), relation));
    }
    parents
}

/// The semantic types cell: TUIs; bad ones are left out.
fn parse_semantic_types(cell: &str, cui_q: &str, found: &mut Found) -> Vec<String> {
    let mut semantic_types = Vec::new();
    for tui in list(cell) {
        if is_tui(tui) {
            semantic_types.push(tui.to_string());
        } else {
            found.push(
                ProblemKind::MalformedSemanticType,
                format!("{cui_q}: malformed semantic type '{}' (expected T and 3 digits)", quote(tui)),
            );
        }
    }
    semantic_types
}

/// The flags cell: whether it says `noise` (the one flag in [`FLAGS`]).
fn parse_flags(cell: &str, cui_q: &str, found: &mut Found) -> bool {
    let mut noise = false;
    for flag in list(cell) {
        if flag == "noise" {
            noise = true;
        } else {
            found.push(
                ProblemKind::UnknownFlag,
                format!("{cui_q}: unknown flag '{}' (known: {})", quote(flag), FLAGS.join(", ")),
            );
        }
    }
    noise
}

/// Replaces the characters the format cannot hold in a cell (tab, newline) with spaces.
fn cell(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

impl Ontology {
    /// The ontology in the curated file format, concepts in load order, parents as `CUI` (is_a)
    /// or `part_of:CUI`, so that [`super::Ontology::from_tsv_str`] reads back the same content
    /// (same [`super::Ontology::content_hash`]). Use it to seed a curated file from UMLS RRF;
    /// such a file may still fail validation (e.g. a modality conflict in the UMLS hierarchy),
    /// which is then for a person to resolve.
    pub fn to_tsv(&self) -> String {
        let mut out = String::from("# conceptree ontology (format: ontology/README.md)\n");
        out.push_str(&HEADER.join("\t"));
        out.push('\n');
        let dash = |v: Vec<String>| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(";")
            }
        };
        for c in self.concepts() {
            let parents = self
                .parents(&c.cui)
                .into_iter()
                .map(|(p, r)| match r {
                    Relation::IsA => p.to_string(),
                    Relation::PartOf => format!("part_of:{p}"),
                })
                .collect();
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                c.cui,
                cell(&c.name),
                c.level.map(Level::as_str).unwrap_or("-"),
                dash(parents),
                dash(c.semantic_types.clone()),
                if c.noise { "noise" } else { "-" }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "cui\tname\tlevel\tparents\tsemantic_types\tflags\n";

    #[test]
    fn parses_every_column_form() {
        let text = format!(
            "# a comment\n\n{H}C0000001\tA\tanatomy\t-\t-\t-\n\
             C0000002\tB b\t-\tC0000001;part_of:C0000001; is_a:C0000003\tT023;T029\tnoise\n\
             C0000003\tC\tfinding\t-\t-\t-\r\n"
        );
        let (rows, problems) = parse_rows(&text, "t");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 4);
        assert_eq!(rows[0].level, Some(Level::Anatomy));
        let b = &rows[1];
        assert_eq!(
            (b.line, b.name.as_str(), b.level, b.noise),
            (5, "B b", None, true)
        );
        assert_eq!(
            b.parents,
            vec![
                ("C0000001".to_string(), Relation::IsA),
                ("C0000001".to_string(), Relation::PartOf),
                ("C0000003".to_string(), Relation::IsA)
            ]
        );
        assert_eq!(b.semantic_types, vec!["T023", "T029"]);
        assert_eq!(rows[2].level, Some(Level::Finding));
    }

    #[test]
    fn cui_and_tui_shapes() {
        assert!(is_cui("C0040405"));
        for bad in ["C040405", "c0040405", "C00404055", "C00404O5", "", "CUI"] {
            assert!(!is_cui(bad), "{bad}");
        }
        assert!(is_tui("T060"));
        assert!(!is_tui("T60") && !is_tui("t060") && !is_tui("T0600"));
    }

    #[test]
    fn a_row_with_several_problems_reports_them_all_and_is_dropped() {
        let text = format!("{H}C12\t\tsurgery\tx:C0000001;C9\tT1\tweird\n");
        let (rows, problems) = parse_rows(&text, "t");
        assert!(rows.is_empty());
        let kinds: Vec<ProblemKind> = problems.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ProblemKind::MalformedCui,
                ProblemKind::MalformedRow,
                ProblemKind::UnknownLevel,
                ProblemKind::MalformedParent,
                ProblemKind::MalformedCui,
                ProblemKind::MalformedSemanticType,
                ProblemKind::UnknownFlag
            ]
        );
        assert!(problems.iter().all(|p| p.line == Some(2)));
    }

    #[test]
    fn a_control_character_in_a_name_is_a_problem() {
        // fuzz/ontology_tsv (minimised): a CR inside a name loaded, but to_tsv wrote it back as
        // a space, so the round trip changed the content hash
        let text = format!("{H}C0000001\tBrai\rn\t-\t-\t-\t-\n");
        let (rows, problems) = parse_rows(&text, "t");
        assert!(rows.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].kind, problems[0].line), (ProblemKind::MalformedRow, Some(2)));
        assert!(problems[0].message.contains("U+000D"), "{}", problems[0].message);
        // a name with ordinary inner spaces is still fine, and round-trips
        let text = format!("{H}C0000001\tA  b c\t-\t-\t-\t-\n");
        let o = super::super::Ontology::from_tsv_str(&text, "t").unwrap();
        let back = super::super::Ontology::from_tsv_str(&o.to_tsv(), "t").unwrap();
        assert_eq!(back.content_hash(), o.content_hash());
    }

    #[test]
    fn four_column_concept_tables_load() {
        let text = "cui\tname\tlevel\tparent\nC0460004\tHead and Neck\tanatomy\t\nC0018670\tHead\tanatomy\tC0460004\nC0205131\tAxial\t\t\n";
        let (rows, problems) = parse_rows(text, "concepts.tsv");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rows[1].parents, vec![("C0460004".to_string(), Relation::IsA)]);
        assert_eq!((rows[2].level, rows[2].parents.len()), (None, 0));
        let (_, problems) = parse_rows("cui\tname\tlevel\tparent\nC0460004\tHead\tanatomy\n", "c.tsv");
        assert!(problems[0].message.contains("expected 4"), "{problems:?}");
    }
}
