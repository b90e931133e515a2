//! Loading an ontology from UMLS Metathesaurus RRF files.
//!
//! Reference: UMLS Reference Manual, "Metathesaurus - Rich Release Format (RRF)", section 3.3
//! (<https://www.ncbi.nlm.nih.gov/books/NBK9685/>). Every file is `|`-delimited, one row per line,
//! with a trailing `|`. Columns used:
//!
//! - `MRCONSO.RRF`: `CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|`.
//!   Name = the `STR` of the English row with `TS=P`, `STT=PF`, `ISPREF=Y` (the UMLS preferred
//!   name); else the first English row; concepts without English rows are left out.
//! - `MRREL.RRF`: `CUI1|AUI1|STYPE1|REL|CUI2|AUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF|`.
//!   `REL` is the relationship *of the second concept to the first*: `REL=PAR` says CUI2 is a
//!   parent of CUI1, `REL=CHD` says CUI2 is a child of CUI1. `RELA` is read the same way
//!   ("CUI2 RELA CUI1"): `isa` / `part_of` make CUI2 the child, `inverse_isa` / `has_part` make
//!   CUI1 the child. The relation is part_of for `RELA` part_of / has_part, else is_a. Rows with
//!   `REL` PAR or CHD are used, and rows of any other `REL` (RB, RN, RO...) whose `RELA` is one of
//!   those four; all others are ignored, as are self-relations.
//! - `MRSTY.RRF`: `CUI|TUI|STN|STY|ATUI|CVF|`: the concept's semantic types; its level then comes
//!   from `ontology/semtypes.tsv` ([`super::Ontology::level_of`]).
//!
//! With `restrict_to`, only those CUIs are kept, with the edges among them. Sources disagree, so
//! the UMLS hierarchy has cycles: edges are added in sorted (child, parent) order and an edge that
//! would close a cycle is skipped (a duplicate child-parent pair keeps is_a over part_of). That
//! check walks the graph once per edge: restrict a full UMLS release to the CUIs of interest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use petgraph::algo::has_path_connecting;
use petgraph::graph::DiGraph;

use super::concept::{Concept, Relation};
use super::error::OntologyError;
use super::graph::Ontology;

/// Calls `f(line_no, fields)` for each non-empty line of an RRF file, after checking it has at
/// least `min_fields` fields (the trailing empty one not counted).
fn each_row(
    path: &Path,
    min_fields: usize,
    mut f: impl FnMut(usize, &[&str]),
) -> Result<(), OntologyError> {
    let file = File::open(path).map_err(|source| OntologyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for (i, line) in crate::text::TextLines::new(BufReader::new(file)).enumerate() {
        let line = line.map_err(|source| OntologyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            continue;
        }
        let mut fields: Vec<&str> = line.split('|').collect();
        if fields.last() == Some(&"") {
            fields.pop();
        }
        if fields.len() < min_fields {
            return Err(OntologyError::Rrf {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!(
                    "expected at least {min_fields} '|'-separated fields, found {}",
                    fields.len()
                ),
            });
        }
        f(i + 1, &fields);
    }
    Ok(())
}

/// See the module docs.
pub(crate) fn load(
    dir: &Path,
    restrict_to: Option<&BTreeSet<String>>,
) -> Result<Ontology, OntologyError> {
    let keep = |cui: &str| restrict_to.is_none_or(|set| set.contains(cui));

    // names: (preferred?, name); first English row, replaced by the preferred one when seen
    let mut names: BTreeMap<String, (bool, String)> = BTreeMap::new();
    each_row(&dir.join("MRCONSO.RRF"), 15, |_, f| {
        let (cui, lat, ts, stt, ispref, name) = (f[0], f[1], f[2], f[4], f[6], f[14]);
        if lat != "ENG" || !keep(cui) {
            return;
        }
        let preferred = ts == "P" && stt == "PF" && ispref == "Y";
        match names.get_mut(cui) {
            Some(entry) if !entry.0 && preferred => *entry = (true, name.to_string()),
            Some(_) => {}
            None => {
                names.insert(cui.to_string(), (preferred, name.to_string()));
            }
        }
    })?;

    let mut semtypes: HashMap<String, Vec<String>> = HashMap::new();
    each_row(&dir.join("MRSTY.RRF"), 2, |_, f| {
        if names.contains_key(f[0]) {
            let list = semtypes.entry(f[0].to_string()).or_default();
            if !list.iter().any(|t| t == f[1]) {
                list.push(f[1].to_string());
            }
        }
    })?;

    // (child, parent) -> relation; is_a wins over part_of
    let mut edges: BTreeMap<(String, String), Relation> = BTreeMap::new();
    each_row(&dir.join("MRREL.RRF"), 8, |_, f| {
        let (cui1, rel, cui2, rela) = (f[0], f[3], f[4], f[7]);
        if cui1 == cui2 || !names.contains_key(cui1) || !names.contains_key(cui2) {
            return;
        }
        let relation = match rela {
            "part_of" | "has_part" => Relation::PartOf,
            _ => Relation::IsA,
        };
        let cui2_is_child = match (rel, rela) {
            ("PAR", _) => false,
            ("CHD", _) => true,
            (_, "isa" | "part_of") => true,
            (_, "inverse_isa" | "has_part") => false,
            _ => return,
        };
        let (child, parent) = if cui2_is_child {
            (cui2, cui1)
        } else {
            (cui1, cui2)
        };
        let slot = edges
            .entry((child.to_string(), parent.to_string()))
            .or_insert(relation);
        if relation == Relation::IsA {
            *slot = Relation::IsA;
        }
    })?;

    let mut graph: DiGraph<Concept, Relation> = DiGraph::new();
    let mut index = HashMap::new();
    for (cui, (_, name)) in names {
        let semantic_types = semtypes.remove(&cui).unwrap_or_default();
        let n = graph.add_node(Concept {
            cui: cui.clone(),
            name,
            semantic_types,
            level: None,
            noise: false,
        });
        index.insert(cui, n);
    }
    for ((child, parent), relation) in edges {
        let (c, p) = (index[&child], index[&parent]);
        // skip an edge that would close a cycle: parent already reaches child
        if !has_path_connecting(&graph, p, c, None) {
            graph.add_edge(c, p, relation);
        }
    }
    Ok(Ontology::from_graph(graph))
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    /// A tiny UMLS subset: CT (C0040405) and tomography (C0040395), chest (C0817096) and heart
    /// (C0018787), plus a concept that only has a Spanish name.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let conso = "\
C0040405|ENG|S|L1|PF|S1|N|A1||||MSH|SY|D1|CAT scan|0|N||
C0040405|ENG|P|L2|PF|S2|Y|A2||||MSH|MH|D1|X-Ray Computed Tomography|0|N||
C0040405|SPA|P|L3|PF|S3|Y|A3||||MSHSPA|MH|D1|Tomografia|0|N||
C0040395|ENG|P|L4|VO|S4|Y|A4||||MSH|MH|D2|tomography|0|N||
C0040395|ENG|S|L5|PF|S5|N|A5||||MSH|SY|D2|Tomography|0|N||
C0817096|ENG|P|L6|PF|S6|Y|A6||||SNOMEDCT_US|PT|51185008|Chest|0|N||
C0018787|ENG|P|L7|PF|S7|Y|A7||||FMA|PT|7088|Heart|0|N||
C0000001|SPA|P|L8|PF|S8|Y|A8||||MSHSPA|MH|D3|Solo espanol|0|N||
";
        let rel = "\
C0040405|A2|SCUI|PAR|C0040395|A4|SCUI|inverse_isa|R1||MSH||||N||
C0040395|A4|SCUI|CHD|C0040405|A2|SCUI|isa|R2||MSH||||N||
C0817096|A6|SCUI|CHD|C0018787|A7|SCUI|part_of|R3||FMA||||N||
C0018787|A7|SCUI|RO|C0817096|A6|SCUI|has_part|R4||FMA||||N||
C0817096|A6|SCUI|PAR|C0018787|A7|SCUI||R5||OTHER||||N||
C0018787|A7|SCUI|RO|C0040405|A2|SCUI|imaged_by|R6||OTHER||||N||
C0018787|A7|SCUI|PAR|C0018787|A7|SCUI||R7||OTHER||||N||
";
        let sty = "\
C0040405|T060|B1.3.1.2.1|Diagnostic Procedure|AT1||
C0040395|T060|B1.3.1.2.1|Diagnostic Procedure|AT2||
C0817096|T029|A1.2.1|Body Location or Region|AT3||
C0018787|T023|A1.2.3.1|Body Part, Organ, or Organ Component|AT4||
C0018787|T023|A1.2.3.1|Body Part, Organ, or Organ Component|AT5||
";
        std::fs::write(dir.path().join("MRCONSO.RRF"), conso).unwrap();
        std::fs::write(dir.path().join("MRREL.RRF"), rel).unwrap();
        std::fs::write(dir.path().join("MRSTY.RRF"), sty).unwrap();
        dir
    }

    #[test]
    fn names_semtypes_levels_and_edges() {
        let dir = fixture();
        let o = Ontology::from_umls_rrf(dir.path(), None).unwrap();
        assert_eq!(o.len(), 4, "the Spanish-only concept is left out");
        assert!(!o.contains("C0000001"));
        // TS=P, STT=PF, ISPREF=Y wins over an earlier synonym
        assert_eq!(o.get("C0040405").unwrap().name, "X-Ray Computed Tomography");
        // no fully preferred row: the first English one
        assert_eq!(o.get("C0040395").unwrap().name, "tomography");
        assert_eq!(o.get("C0018787").unwrap().semantic_types, vec!["T023"]);
        assert_eq!(o.get("C0018787").unwrap().level, None);
        assert_eq!(o.level_of("C0018787"), Some(Level::Anatomy));
        assert_eq!(o.level_of("C0817096"), Some(Level::Anatomy));
        assert_eq!(o.level_of("C0040405"), Some(Level::Modality));
        // PAR/inverse_isa and CHD/isa both say CT is_a tomography
        assert_eq!(o.parents("C0040405"), vec![("C0040395", Relation::IsA)]);
        // CHD/part_of and RO/has_part both say heart part_of chest
        assert_eq!(o.parents("C0018787"), vec![("C0817096", Relation::PartOf)]);
        // the contradicting PAR row (chest under heart) would close a cycle: skipped
        assert!(o.parents("C0817096").is_empty());
        assert!(o.parents("C0040395").is_empty());
        assert_eq!(o.depth("C0040405"), Some(1));
        assert_eq!(o.roots(), vec!["C0040395", "C0817096"]);
        // written as a curated file, it reads back the same, levels still from semantic types
        let back = Ontology::from_tsv_str(&o.to_tsv(), "from-umls.tsv").unwrap();
        assert_eq!(back.content_hash(), o.content_hash());
        assert_eq!(back.level_of("C0018787"), Some(Level::Anatomy));
    }

    #[test]
    fn restriction_keeps_only_edges_among_kept_cuis() {
        let dir = fixture();
        let keep: BTreeSet<String> = ["C0018787", "C0040405"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = Ontology::from_umls_rrf(dir.path(), Some(&keep)).unwrap();
        assert_eq!(o.len(), 2);
        assert!(o.parents("C0018787").is_empty());
        assert!(o.parents("C0040405").is_empty());
    }

    #[test]
    fn missing_file_and_short_row_are_reported_with_path_and_line() {
        let dir = fixture();
        std::fs::write(
            dir.path().join("MRSTY.RRF"),
            "C0040405|T060|x|y|z||\nC0018787|\n",
        )
        .unwrap();
        let err = Ontology::from_umls_rrf(dir.path(), None).unwrap_err();
        assert!(matches!(err, OntologyError::Rrf { line: 2, .. }), "{err:?}");
        assert!(
            err.to_string()
                .ends_with("MRSTY.RRF:2: expected at least 2 '|'-separated fields, found 1"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("MRREL.RRF")).unwrap();
        std::fs::write(dir.path().join("MRSTY.RRF"), "").unwrap();
        let err = Ontology::from_umls_rrf(dir.path(), None).unwrap_err();
        assert!(matches!(err, OntologyError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("MRREL.RRF"), "{err}");
    }
}
