//! UMLS semantic type (TUI) -> [`Level`] table.
//!
//! Every UMLS concept carries one or more semantic types from the UMLS Semantic Network
//! (McCray 2003; `MRSTY.RRF`, e.g. `T060` Diagnostic Procedure). The table in
//! `ontology/semtypes.tsv` says which level, if any, a concept of that type belongs to. It is the
//! fallback used when a concept has no curated level (always the case for concepts loaded from
//! UMLS RRF files). Planes and views are `T082` Spatial Concept like laterality, so the table can
//! only say "laterality" for them: the curated ontology places planes and views explicitly.
//!
//! Format: `#` comment lines and blank lines are ignored; the first other line is the header
//! `tui<TAB>name<TAB>level`; `level` is a [`Level`] name or `-`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::concept::Level;
use super::error::OntologyError;
use super::problem::{content_lines, Problem, ProblemKind};

/// The shipped table, `ontology/semtypes.tsv`.
pub(crate) const BUILTIN_SEMTYPES_TSV: &str = include_str!("../../ontology/semtypes.tsv");

/// One row of the semantic type table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SemtypeEntry {
    /// Semantic type identifier, `T` and three digits.
    pub tui: String,
    /// Semantic type name, e.g. `Diagnostic Procedure`.
    pub name: String,
    /// Level a concept of this type belongs to; `None` for types that place no level.
    pub level: Option<Level>,
}

/// The TUI -> level table (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SemtypeTable {
    entries: BTreeMap<String, SemtypeEntry>,
}

/// True for a well-formed TUI: `T` followed by exactly three ASCII digits.
pub(crate) fn is_tui(s: &str) -> bool {
    s.len() == 4 && s.starts_with('T') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

impl SemtypeTable {
    /// The shipped table (parsed once). Panics only if the shipped file is invalid, which a unit
    /// test rules out.
    pub fn builtin() -> &'static SemtypeTable {
        static TABLE: OnceLock<SemtypeTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            SemtypeTable::parse(BUILTIN_SEMTYPES_TSV, "ontology/semtypes.tsv").unwrap_or_else(
                |problems| {
                    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                    panic!(
                        "shipped ontology/semtypes.tsv is invalid:\n{}",
                        lines.join("\n")
                    )
                },
            )
        })
    }

    /// Parses a table in the format of the module docs, collecting every problem
    /// (bad header, wrong column count, malformed or duplicate TUI, unknown level).
    pub fn parse(text: &str, source: &str) -> Result<SemtypeTable, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut entries: BTreeMap<String, SemtypeEntry> = BTreeMap::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        let mut header_seen = false;
        for (line_no, line) in content_lines(text) {
            let problem = |kind, message: String| Problem {
                source: source.to_string(),
                line: Some(line_no),
                kind,
                message,
            };
            let cols: Vec<&str> = line.split('\t').collect();
            if !header_seen {
                header_seen = true;
                if cols != ["tui", "name", "level"] {
                    problems.push(problem(
                        ProblemKind::BadHeader,
                        format!("expected header 'tui<TAB>name<TAB>level', found '{line}'"),
                    ));
                    return Err(problems);
                }
                continue;
            }
            if cols.len() != 3 {
                problems.push(problem(
                    ProblemKind::MalformedRow,
                    format!("expected 3 tab-separated columns, found {}", cols.len()),
                ));
                continue;
            }
            let (tui, name, level) = (cols[0].trim(), cols[1].trim(), cols[2].trim());
            if !is_tui(tui) {
                problems.push(problem(
                    ProblemKind::MalformedSemanticType,
                    format!("malformed semantic type '{tui}' (expected T and 3 digits)"),
                ));
                continue;
            }
            let level = if level == "-" {
                None
            } else {
                match level.parse::<Level>() {
                    Ok(l) => Some(l),
                    Err(e) => {
                        problems.push(problem(ProblemKind::UnknownLevel, e.to_string()));
                        continue;
                    }
                }
            };
            if let Some(first) = first_line.get(tui) {
                problems.push(problem(
                    ProblemKind::DuplicateSemanticType,
                    format!("duplicate semantic type {tui} (first defined on line {first})"),
                ));
                continue;
            }
            first_line.insert(tui.to_string(), line_no);
            entries.insert(
                tui.to_string(),
                SemtypeEntry {
                    tui: tui.to_string(),
                    name: name.to_string(),
                    level,
                },
            );
        }
        if !header_seen {
            problems.push(Problem {
                source: source.to_string(),
                line: None,
                kind: ProblemKind::BadHeader,
                message: "no header line 'tui<TAB>name<TAB>level'".to_string(),
            });
        }
        if problems.is_empty() {
            Ok(SemtypeTable { entries })
        } else {
            Err(problems)
        }
    }

    /// The entry for one TUI, if the table lists it.
    pub fn get(&self, tui: &str) -> Option<&SemtypeEntry> {
        self.entries.get(tui)
    }

    /// All entries, sorted by TUI.
    pub fn entries(&self) -> impl Iterator<Item = &SemtypeEntry> {
        self.entries.values()
    }

    /// The level placed by a concept's semantic types: among the levels its TUIs map to, the
    /// first in [`Level::ALL`] order (modality before anatomy before ... finding), so the result
    /// does not depend on the order of `tuis`. `None` when no TUI maps to a level.
    pub fn level_of(&self, tuis: &[String]) -> Option<Level> {
        tuis.iter()
            .filter_map(|t| self.entries.get(t.as_str()).and_then(|e| e.level))
            .min()
    }
}

/// Read a CUI -> semantic types table: MRSTY.RRF (`CUI|TUI|...`) or a TSV `cui<TAB>...<TAB>T060;T023`
/// whose semantic types are in the column named `semantic_types`, `semtypes` or `semtype_candidates`
/// (default: the second). A header line is skipped; entries may be `T060:Name`. A
/// `semtype_candidates` column (a derived table listing the types seen on every image of the CUI,
/// most specific first) contributes only its first candidate, since the others are usually the
/// caption's other concepts. CUIs are upper-cased; a line whose first field is not a CUI is an
/// error naming the file and line.
pub fn read_cui_semtypes(path: &std::path::Path) -> Result<std::collections::HashMap<String, Vec<String>>, OntologyError> {
    let text = crate::text::read_text(path).map_err(|source| OntologyError::Io { path: path.to_path_buf(), source })?;
    parse_cui_semtypes(&text, path)
}

/// [`read_cui_semtypes`] on text read from `path` (named in errors).
pub(crate) fn parse_cui_semtypes(text: &str, path: &std::path::Path) -> Result<std::collections::HashMap<String, Vec<String>>, OntologyError> {
    use crate::cui::{excerpt, is_cui, EXCERPT};
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut map: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    let header: Vec<&str> = text.lines().next().unwrap_or("").split('\t').collect();
    let col = header.iter().position(|h| ["semantic_types", "semtypes", "semtype_candidates"].contains(&h.trim())).unwrap_or(1);
    let first_only = header.get(col).is_some_and(|h| h.trim() == "semtype_candidates");
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (cui, rest) = if line.contains('|') {
            let mut f = line.split('|');
            (f.next().unwrap_or(""), f.next().unwrap_or(""))
        } else {
            let f: Vec<&str> = line.split('\t').collect();
            (f.first().copied().unwrap_or(""), f.get(col).copied().unwrap_or(""))
        };
        if !is_cui(cui) {
            if i == 0 {
                continue; // header
            }
            return Err(OntologyError::Rrf { path: path.to_path_buf(), line: i + 1, message: format!("'{}' is not a CUI", excerpt(cui, EXCERPT)) });
        }
        let tuis = rest.split(';').map(|t| t.split(':').next().unwrap_or("").trim().to_string()).filter(|t| !t.is_empty());
        let tuis: Vec<String> = if first_only { tuis.take(1).collect() } else { tuis.collect() };
        map.entry(cui.to_ascii_uppercase()).or_default().extend(tuis);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn builtin_table_maps_the_documented_types() {
        let t = SemtypeTable::builtin();
        assert_eq!(t.level_of(&v(&["T060"])), Some(Level::Modality));
        for tui in ["T023", "T029", "T030"] {
            assert_eq!(t.level_of(&v(&[tui])), Some(Level::Anatomy), "{tui}");
        }
        assert_eq!(t.level_of(&v(&["T082"])), Some(Level::Laterality));
        for tui in ["T033", "T046", "T047", "T191"] {
            assert_eq!(t.level_of(&v(&[tui])), Some(Level::Finding), "{tui}");
        }
        assert_eq!(t.level_of(&v(&["T130"])), Some(Level::Technique));
        assert_eq!(t.level_of(&v(&["T122"])), Some(Level::Technique));
        assert_eq!(t.level_of(&v(&["T170"])), None);
        assert_eq!(t.level_of(&v(&["T999"])), None);
        assert_eq!(t.level_of(&[]), None);
    }

    #[test]
    fn several_types_resolve_by_level_order_not_list_order() {
        let t = SemtypeTable::builtin();
        // finding + modality -> modality, whatever the order
        assert_eq!(t.level_of(&v(&["T033", "T060"])), Some(Level::Modality));
        assert_eq!(t.level_of(&v(&["T060", "T033"])), Some(Level::Modality));
        // untyped + finding -> finding
        assert_eq!(t.level_of(&v(&["T170", "T047"])), Some(Level::Finding));
    }

    #[test]
    fn parse_reports_each_bad_row_with_its_line() {
        let text = "# comment\ntui\tname\tlevel\nT060\tDiagnostic Procedure\tmodality\n\
                    X12\tBad\t-\nT061\tTherapeutic\tsurgery\nT060\tAgain\t-\nT062\tonly two\n";
        let problems = SemtypeTable::parse(text, "st.tsv").unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{shown:?}");
        assert!(
            shown[0].starts_with("st.tsv:4: malformed semantic type 'X12'"),
            "{}",
            shown[0]
        );
        assert_eq!(problems[1].kind, ProblemKind::UnknownLevel);
        assert!(shown[1].starts_with("st.tsv:5:"), "{}", shown[1]);
        assert!(
            shown[2].contains("st.tsv:6: duplicate semantic type T060 (first defined on line 3)")
        );
        assert!(shown[3].starts_with("st.tsv:7: expected 3"), "{}", shown[3]);
    }

    #[test]
    fn parse_rejects_missing_or_wrong_header() {
        let p = SemtypeTable::parse("# only comments\n", "x").unwrap_err();
        assert_eq!(p[0].kind, ProblemKind::BadHeader);
        let p = SemtypeTable::parse("tui\tlevel\n", "x").unwrap_err();
        assert_eq!(p[0].line, Some(1));
    }

    #[test]
    fn cui_semtype_tables_in_both_layouts() {
        let p = std::path::Path::new("t.tsv");
        let m = parse_cui_semtypes("cui\tname\tsemantic_types\nc0000001\tx\tT060:Diagnostic Procedure;T023\n", p).unwrap();
        assert_eq!(m["C0000001"], vec!["T060", "T023"]);
        let m = parse_cui_semtypes("cui\tsemtype_candidates\nC0000002\tT047;T033\n", p).unwrap();
        assert_eq!(m["C0000002"], vec!["T047"], "first candidate only");
        let m = parse_cui_semtypes("C0000003|T061|A1.2|Therapeutic|AT1|256|\n", p).unwrap();
        assert_eq!(m["C0000003"], vec!["T061"]);
        let e = parse_cui_semtypes("cui\tsemtypes\nC0000001\tT060\nbogus\tT060\n", p).unwrap_err().to_string();
        assert!(e.contains("t.tsv:3") && e.contains("'bogus' is not a CUI"), "{e}");
    }
}
