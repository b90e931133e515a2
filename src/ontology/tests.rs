//! Tests of the queries on a small hand-built ontology, property tests on random DAGs, and
//! checks of the shipped ontology.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

// Hand-built ontology (edges child -> parent):
//   modality: C1000002 Echocardiography is_a C1000001 Ultrasonography; C1000003 CT
//   anatomy:  C2000001 Body <-part_of- C2000002 Chest <-part_of- {C2000003 Heart, C2000005 Mediastinum}
//             C2000004 Heart valve part_of Heart; C2000006 Aortic root part_of Heart and Mediastinum
//   finding:  C3000002 Cyst is_a C3000001 Lesion; C5000002 (level via T047)
//   noise:    C4000001 (T047, but noise-flagged concepts get no level from semantic types)
//   none:     C5000001 (T170 places no level); laterality: C6000001 Left
const TINY: &str = "\
# tiny test ontology
cui\tname\tlevel\tparents\tsemantic_types\tflags
C1000001\tUltrasonography\tmodality\t-\tT060\t-
C1000002\tEchocardiography\tmodality\tC1000001\tT060\t-
C1000003\tCT\tmodality\t-\t-\t-

C2000001\tBody\tanatomy\t-\tT029\t-
C2000002\tChest\tanatomy\tpart_of:C2000001\t-\t-
C2000003\tHeart\tanatomy\tpart_of:C2000002\tT023\t-
C2000004\tHeart valve\tanatomy\tpart_of:C2000003\t-\t-
C2000005\tMediastinum\tanatomy\tpart_of:C2000002\t-\t-
C2000006\tAortic root\tanatomy\tpart_of:C2000003;part_of:C2000005\t-\t-
C3000001\tLesion\tfinding\t-\t-\t-
C3000002\tCyst\tfinding\tis_a:C3000001\t-\t-
C4000001\tAnterior\t-\t-\tT047\tnoise
C5000001\tImage\t-\t-\tT170\t-
C5000002\tTyped disease\t-\t-\tT047\t-
C6000001\tLeft\tlaterality\t-\tT082\t-
";

const UNKNOWN: &str = "C9999999";

fn tiny() -> Ontology {
    Ontology::from_tsv_str(TINY, "tiny.tsv").unwrap()
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn level_names_round_trip() {
    for l in Level::ALL {
        assert_eq!(l.to_string().parse::<Level>().unwrap(), l);
        assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
    }
    assert_eq!(
        Level::ALL.map(|l| l.as_str()).join(" "),
        "modality anatomy laterality plane view technique finding"
    );
    assert!("Modality".parse::<Level>().is_err());
    assert!(Level::Modality < Level::Finding);
    assert_eq!(
        serde_json::to_string(&Relation::PartOf).unwrap(),
        "\"part_of\""
    );
}

#[test]
fn lookup_and_levels() {
    let o = tiny();
    assert_eq!(o.len(), 15);
    assert!(!o.is_empty());
    assert!(o.contains("C2000003") && !o.contains(UNKNOWN));
    let heart = o.get("C2000003").unwrap();
    assert_eq!(
        (heart.name.as_str(), heart.level, heart.noise),
        ("Heart", Some(Level::Anatomy), false)
    );
    assert_eq!(heart.semantic_types, vec!["T023"]);
    assert!(o.get("C4000001").unwrap().noise);
    assert_eq!(o.concepts().count(), 15);
    assert_eq!(o.concepts().next().unwrap().cui, "C1000001", "file order");
    // curated, from semantic types, none
    assert_eq!(o.level_of("C1000002"), Some(Level::Modality));
    assert_eq!(o.level_of("C5000002"), Some(Level::Finding));
    assert_eq!(o.get("C5000002").unwrap().level, None);
    assert_eq!(o.level_of("C5000001"), None);
    assert_eq!(o.level_of(UNKNOWN), None);
    assert_eq!(
        Ontology::level_from_semtypes(&strings(&["T170", "T060"])),
        Some(Level::Modality)
    );
}

#[test]
fn parents_children_ancestors_descendants() {
    let o = tiny();
    assert_eq!(
        o.parents("C2000006"),
        vec![
            ("C2000003", Relation::PartOf),
            ("C2000005", Relation::PartOf)
        ]
    );
    assert_eq!(o.parents("C3000002"), vec![("C3000001", Relation::IsA)]);
    assert!(o.parents("C2000001").is_empty() && o.parents(UNKNOWN).is_empty());
    assert_eq!(o.children("C2000002"), vec!["C2000003", "C2000005"]);
    assert!(o.children("C2000006").is_empty() && o.children(UNKNOWN).is_empty());
    assert_eq!(
        o.ancestors("C2000006"),
        set(&["C2000001", "C2000002", "C2000003", "C2000005"])
    );
    assert!(o.ancestors("C2000001").is_empty());
    assert!(o.ancestors(UNKNOWN).is_empty());
    assert_eq!(
        o.descendants("C2000002"),
        set(&["C2000003", "C2000004", "C2000005", "C2000006"])
    );
    assert!(o.descendants("C2000004").is_empty());
}

#[test]
fn depth_is_the_longest_path_to_a_root() {
    let o = tiny();
    let depths: Vec<Option<usize>> = [
        "C2000001", "C2000002", "C2000003", "C2000004", "C2000006", "C1000002", UNKNOWN,
    ]
    .iter()
    .map(|c| o.depth(c))
    .collect();
    assert_eq!(
        depths,
        vec![Some(0), Some(1), Some(2), Some(3), Some(3), Some(1), None]
    );
}

#[test]
fn lowest_common_ancestor_is_deepest_shared_ancestor_or_self() {
    let o = tiny();
    let lca = |a, b| o.lowest_common_ancestor(a, b);
    assert_eq!(lca("C2000004", "C2000006").as_deref(), Some("C2000003"));
    assert_eq!(lca("C2000004", "C2000005").as_deref(), Some("C2000002"));
    assert_eq!(
        lca("C2000002", "C2000004").as_deref(),
        Some("C2000002"),
        "an ancestor is its own LCA"
    );
    assert_eq!(lca("C2000004", "C2000004").as_deref(), Some("C2000004"));
    assert_eq!(lca("C1000002", "C1000003"), None, "different roots");
    assert_eq!(lca(UNKNOWN, "C2000001"), None);
}

#[test]
fn concepts_of_level_roots_leaves() {
    let o = tiny();
    assert_eq!(
        o.concepts_of_level(Level::Modality),
        vec!["C1000001", "C1000002", "C1000003"]
    );
    // the noise-flagged C4000001 gets no level from its semantic type
    assert_eq!(
        o.concepts_of_level(Level::Finding),
        vec!["C3000001", "C3000002", "C5000002"]
    );
    assert_eq!(o.level_of("C4000001"), None);
    assert!(o.concepts_of_level(Level::Plane).is_empty());
    assert_eq!(
        o.roots(),
        vec![
            "C1000001", "C1000003", "C2000001", "C3000001", "C4000001", "C5000001", "C5000002",
            "C6000001"
        ]
    );
    assert_eq!(
        o.leaves(),
        vec![
            "C1000002", "C1000003", "C2000004", "C2000006", "C3000002", "C4000001", "C5000001",
            "C5000002", "C6000001"
        ]
    );
}

#[test]
fn closure_and_coherence() {
    let o = tiny();
    assert_eq!(
        o.closure(&set(&["C2000004", UNKNOWN])),
        set(&["C2000001", "C2000002", "C2000003", "C2000004", UNKNOWN])
    );
    assert!(o.closure(&BTreeSet::new()).is_empty());
    assert!(o.is_coherent(&set(&["C2000001", "C2000002", "C2000003"])));
    assert!(
        !o.is_coherent(&set(&["C2000002", "C2000003"])),
        "Body missing"
    );
    assert!(
        o.is_coherent(&set(&["C1000001", "C1000002", "C2000001"])),
        "one modality chain"
    );
    assert!(
        !o.is_coherent(&set(&["C1000002"])),
        "Ultrasonography missing"
    );
    assert!(
        !o.is_coherent(&set(&["C1000001", "C1000002", "C1000003"])),
        "two modality chains"
    );
    assert!(!o.is_coherent(&set(&["C1000001", "C1000003"])));
    assert!(o.is_coherent(&BTreeSet::new()));
    assert!(
        o.is_coherent(&set(&[UNKNOWN])),
        "unknown CUIs are not judged"
    );
    let s = set(&["C1000001", "C1000002", "C1000003"]);
    assert_eq!(o.modality_leaves(&s), vec!["C1000002", "C1000003"]);
    assert_eq!(o.modality_count(&s), 2);
    assert_eq!(
        o.modality_count(&set(&["C1000001", "C1000002", "C2000001"])),
        1
    );
    assert_eq!(o.modality_count(&set(&["C2000001"])), 0);
}

#[test]
fn ancestor_matrix_marks_ancestors_or_self() {
    let o = tiny();
    let cuis = strings(&["C2000003", "C2000001", "C1000002", UNKNOWN, "C2000002"]);
    let m = o.ancestor_matrix(&cuis);
    let expected = ndarray::arr2(&[
        [1.0, 1.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 1.0],
    ]);
    assert_eq!(m, expected);
    assert_eq!(o.ancestor_matrix(&[]).shape(), &[0, 0]);
}

#[test]
fn stats_counts() {
    let s = tiny().stats();
    assert_eq!(s.concepts, 15);
    assert_eq!(s.per_level[&Level::Modality], 3);
    assert_eq!(s.per_level[&Level::Anatomy], 6);
    assert_eq!(s.per_level[&Level::Finding], 3);
    assert_eq!(s.per_level[&Level::Laterality], 1);
    assert_eq!(s.per_level[&Level::Plane], 0);
    assert_eq!(
        (s.no_level, s.noise, s.is_a_edges, s.part_of_edges),
        (2, 1, 2, 6)
    );
    assert_eq!((s.max_depth, s.roots, s.leaves), (3, 8, 9));
    let shown = s.to_string();
    assert!(shown.contains("anatomy             6"), "{shown}");
    assert!(shown.contains("(no level)          2"), "{shown}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["per_level"]["modality"], 3);
}

#[test]
fn show_reports_neighbourhood() {
    let o = tiny();
    let r = o.show("C2000006").unwrap();
    assert_eq!(r.concept.name, "Aortic root");
    assert_eq!(r.depth, 3);
    let parents: Vec<(&str, Relation)> = r
        .parents
        .iter()
        .map(|p| (p.parent.cui.as_str(), p.relation))
        .collect();
    assert_eq!(
        parents,
        vec![
            ("C2000003", Relation::PartOf),
            ("C2000005", Relation::PartOf)
        ]
    );
    let ancestors: Vec<&str> = r.ancestors.iter().map(|a| a.cui.as_str()).collect();
    assert_eq!(
        ancestors,
        vec!["C2000003", "C2000005", "C2000002", "C2000001"],
        "deepest first"
    );
    assert!(r.children.is_empty());
    let text = r.to_string();
    assert!(
        text.starts_with("C2000006  Aortic root\n  level: anatomy (curated)\n"),
        "{text}"
    );
    assert!(text.contains("    part_of C2000003 Heart\n"), "{text}");
    assert!(text.contains("    C2000001 Body (anatomy)\n"), "{text}");
    let typed = o.show("C5000002").unwrap().to_string();
    assert!(
        typed.contains("level: finding (from semantic types)"),
        "{typed}"
    );
    assert!(o
        .show("C4000001")
        .unwrap()
        .to_string()
        .contains("[noise in ImageCLEF/ROCO labels]"));
    assert!(o.show(UNKNOWN).is_none());
}

#[test]
fn map_labels_places_each_occurrence_once() {
    let o = tiny();
    let rows = [
        strings(&["C1000002", "C1000001", "C2000003", UNKNOWN]),
        strings(&["C1000002", "C4000001", "C5000001", UNKNOWN, "C8888888"]),
        strings(&["C2000003", "C2000003"]),
        strings(&[]),
    ];
    let r = o.map_labels(rows.iter().map(|r| r.as_slice()));
    assert_eq!((r.rows, r.occurrences), (4, 10));
    assert_eq!(
        r.per_level[&Level::Modality],
        LevelCount {
            distinct: 2,
            occurrences: 3
        }
    );
    assert_eq!(
        r.per_level[&Level::Anatomy],
        LevelCount {
            distinct: 1,
            occurrences: 2
        }
    );
    assert_eq!(r.per_level[&Level::Finding], LevelCount::default());
    assert_eq!(
        r.noise,
        vec![CuiCount {
            cui: "C4000001".into(),
            count: 1
        }]
    );
    assert_eq!(
        r.no_level,
        vec![CuiCount {
            cui: "C5000001".into(),
            count: 1
        }]
    );
    assert_eq!(
        r.unknown,
        vec![
            CuiCount {
                cui: UNKNOWN.into(),
                count: 2
            },
            CuiCount {
                cui: "C8888888".into(),
                count: 1
            }
        ]
    );
    let text = r.to_string();
    assert!(
        text.starts_with("10 label occurrences in 4 rows\n"),
        "{text}"
    );
    assert!(
        text.contains("unknown             2            3"),
        "{text}"
    );
    assert!(
        text.contains("top unknown CUIs: C9999999 (2), C8888888 (1)"),
        "{text}"
    );
    assert_eq!(
        serde_json::to_value(&r).unwrap()["per_level"]["modality"]["occurrences"],
        3
    );
}

#[test]
fn dot_export_selects_and_styles() {
    let o = tiny();
    let dot = o.to_dot(Some("C2000002"), None).unwrap();
    assert!(
        dot.starts_with("digraph ontology {\n  rankdir=BT;\n"),
        "{dot}"
    );
    assert!(
        dot.contains("  \"C2000002\" [label=\"C2000002\\nChest\", fillcolor=\"#ffffb3\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("  \"C2000006\" -> \"C2000005\" [style=dashed];"),
        "{dot}"
    );
    assert!(
        !dot.contains("\"C2000001\""),
        "the root's ancestors are left out"
    );
    assert!(dot.ends_with("}\n"));
    let modal = o.to_dot(None, Some(Level::Modality)).unwrap();
    assert!(modal.contains("  \"C1000002\" -> \"C1000001\";"), "{modal}");
    assert!(!modal.contains("C2000"), "{modal}");
    let noise = o.to_dot(Some("C4000001"), None).unwrap();
    assert!(noise.contains("fontcolor=\"#888888\""), "{noise}");
    let err = o.to_dot(Some(UNKNOWN), None).unwrap_err();
    assert!(matches!(err, OntologyError::UnknownCui { .. }));
    assert_eq!(err.to_string(), "unknown CUI C9999999: not in the ontology");
}

#[test]
fn dot_escapes_quotes() {
    let text =
        "cui\tname\tlevel\tparents\tsemantic_types\tflags\nC0000001\tSay \"hi\" \\o/\t-\t-\t-\t-\n";
    let dot = Ontology::from_tsv_str(text, "q")
        .unwrap()
        .to_dot(None, None)
        .unwrap();
    assert!(
        dot.contains("label=\"C0000001\\nSay \\\"hi\\\" \\\\o/\", fillcolor=\"#ffffff\""),
        "{dot}"
    );
}

#[test]
fn content_hash_ignores_order_and_comments_but_not_content() {
    let a = tiny().content_hash();
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    let mut lines: Vec<&str> = TINY
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    lines[1..].reverse();
    let reordered = lines.join("\n");
    assert_eq!(
        Ontology::from_tsv_str(&reordered, "r")
            .unwrap()
            .content_hash(),
        a
    );
    let renamed = TINY.replace("Mediastinum", "Mediastinal structure");
    assert_ne!(
        Ontology::from_tsv_str(&renamed, "n")
            .unwrap()
            .content_hash(),
        a
    );
    let relinked = TINY.replace("is_a:C3000001", "part_of:C3000001");
    assert_ne!(
        Ontology::from_tsv_str(&relinked, "l")
            .unwrap()
            .content_hash(),
        a
    );
}

#[test]
fn to_tsv_round_trips() {
    let o = tiny();
    let text = o.to_tsv();
    assert!(
        text.contains(
            "\nC2000006\tAortic root\tanatomy\tpart_of:C2000003;part_of:C2000005\t-\t-\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\nC3000002\tCyst\tfinding\tC3000001\t-\t-\n"),
        "{text}"
    );
    assert!(
        text.contains("\nC4000001\tAnterior\t-\t-\tT047\tnoise\n"),
        "{text}"
    );
    let back = Ontology::from_tsv_str(&text, "round trip").unwrap();
    assert_eq!(back.content_hash(), o.content_hash());
    assert_eq!(back.len(), o.len());
    let b = Ontology::builtin();
    assert_eq!(
        Ontology::from_tsv_str(&b.to_tsv(), "builtin")
            .unwrap()
            .content_hash(),
        b.content_hash()
    );
}

#[test]
fn load_reads_files_and_reports_io_errors_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.tsv");
    std::fs::write(&path, TINY).unwrap();
    assert_eq!(Ontology::load(&path).unwrap().len(), 15);
    let missing = dir.path().join("missing.tsv");
    let err = Ontology::load(&missing).unwrap_err();
    assert!(matches!(err, OntologyError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}", missing.display())),
        "{err}"
    );
    std::fs::write(
        &path,
        TINY.replace(
            "C2000004\tHeart valve\tanatomy",
            "C2000004\tHeart valve\torgan",
        ),
    )
    .unwrap();
    let err = Ontology::load(&path).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "{}:10: C2000004: unknown level 'organ'",
            path.display()
        )),
        "{err}"
    );
}

// ---------- property tests on random valid DAGs ----------

/// A random ontology: node i may have parents among nodes 0..i on its own level (so it is
/// acyclic and every parent is on its child's level), with random relations and levels (modality,
/// anatomy, or index 7 = no level). Modality conflicts are possible; such draws are rejected.
fn random_tsv() -> impl Strategy<Value = String> {
    (2usize..12)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(7u8)], n),
                proptest::collection::vec(proptest::collection::vec(any::<(bool, bool)>(), n), n),
            )
        })
        .prop_map(|(levels, edges)| {
            let mut text = String::from("cui\tname\tlevel\tparents\tsemantic_types\tflags\n");
            for (i, level) in levels.iter().enumerate() {
                let parents: Vec<String> = (0..i)
                    .filter(|&j| edges[i][j].0 && levels[j] == *level)
                    .map(|j| {
                        format!(
                            "{}:C{:07}",
                            if edges[i][j].1 { "is_a" } else { "part_of" },
                            j
                        )
                    })
                    .collect();
                let level = Level::ALL
                    .get(*level as usize)
                    .map(|l| l.as_str())
                    .unwrap_or("-");
                let parents = if parents.is_empty() {
                    "-".to_string()
                } else {
                    parents.join(";")
                };
                text.push_str(&format!("C{i:07}\tconcept {i}\t{level}\t{parents}\t-\t-\n"));
            }
            text
        })
}

fn accept(text: &str) -> Option<Ontology> {
    match Ontology::from_tsv_str(text, "random") {
        Ok(o) => Some(o),
        Err(OntologyError::Invalid { problems, .. }) => {
            assert!(
                problems
                    .iter()
                    .all(|p| p.kind == ProblemKind::ModalityConflict),
                "generator made an unexpected problem: {problems:?}"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

proptest! {
    #[test]
    fn closure_is_an_idempotent_superset(text in random_tsv(), picks in proptest::collection::vec(any::<bool>(), 12)) {
        let o = accept(&text);
        prop_assume!(o.is_some());
        let o = o.unwrap();
        let mut s: BTreeSet<String> = (0..o.len()).filter(|&i| picks[i]).map(|i| format!("C{i:07}")).collect();
        s.insert(UNKNOWN.to_string());
        let c = o.closure(&s);
        prop_assert!(c.is_superset(&s));
        prop_assert_eq!(o.closure(&c), c.clone());
        for cui in &c {
            prop_assert!(o.ancestors(cui).is_subset(&c));
        }
    }

    #[test]
    fn ancestors_never_include_self_and_mirror_descendants(text in random_tsv()) {
        let o = accept(&text);
        prop_assume!(o.is_some());
        let o = o.unwrap();
        for c in o.concepts() {
            let anc = o.ancestors(&c.cui);
            prop_assert!(!anc.contains(&c.cui));
            prop_assert!(!o.descendants(&c.cui).contains(&c.cui));
            for a in &anc {
                prop_assert!(o.descendants(a).contains(&c.cui));
                prop_assert!(o.depth(a).unwrap() < o.depth(&c.cui).unwrap());
            }
        }
    }

    #[test]
    fn closure_of_a_single_chain_set_is_coherent(text in random_tsv(), pick in 0usize..12, sub in proptest::collection::vec(any::<bool>(), 12)) {
        let o = accept(&text);
        prop_assume!(o.is_some());
        let o = o.unwrap();
        // any subset of one concept's ancestors-or-self names at most one modality chain
        let c = format!("C{:07}", pick % o.len());
        let mut up: Vec<String> = o.ancestors(&c).into_iter().collect();
        up.push(c.clone());
        let s: BTreeSet<String> = up.into_iter().enumerate().filter(|(i, _)| sub[*i % 12]).map(|(_, x)| x).collect();
        let closed = o.closure(&s);
        prop_assert!(o.is_coherent(&closed), "{:?}", closed);
        prop_assert!(o.modality_count(&closed) <= 1);
        prop_assert!(o.is_coherent(&o.closure(&BTreeSet::from([c]))));
    }
}

// ---------- the shipped ontology ----------

/// A realrad concept: CUI, level, and its parent with the relation, if any.
type RealradConcept = (&'static str, Level, Option<(&'static str, Relation)>);

/// The 28 concepts of the realrad reference set.
const REALRAD: [RealradConcept; 28] = [
    ("C0040405", Level::Modality, None),
    ("C0024485", Level::Modality, None),
    ("C1306645", Level::Modality, None),
    ("C0009924", Level::Technique, None),
    (
        "C0018670",
        Level::Anatomy,
        Some(("C0460004", Relation::PartOf)),
    ),
    (
        "C0006104",
        Level::Anatomy,
        Some(("C0018670", Relation::PartOf)),
    ),
    (
        "C0029180",
        Level::Anatomy,
        Some(("C0018670", Relation::PartOf)),
    ),
    ("C0460004", Level::Anatomy, None),
    ("C0817096", Level::Anatomy, None),
    (
        "C0018787",
        Level::Anatomy,
        Some(("C0817096", Relation::PartOf)),
    ),
    ("C0000726", Level::Anatomy, None),
    ("C0037949", Level::Anatomy, None),
    (
        "C0728985",
        Level::Anatomy,
        Some(("C0037949", Relation::PartOf)),
    ),
    ("C0006141", Level::Anatomy, None),
    ("C0022742", Level::Anatomy, None),
    ("C0019552", Level::Anatomy, None),
    ("C0020164", Level::Anatomy, None),
    ("C0205131", Level::Plane, None),
    ("C0205123", Level::Plane, None),
    ("C0205129", Level::Plane, None),
    ("C0457409", Level::View, None),
    ("C0442212", Level::View, None),
    ("C0442197", Level::View, None),
    ("C0205091", Level::Laterality, None),
    ("C0205090", Level::Laterality, None),
    ("C0032285", Level::Finding, None),
    (
        "C5203670",
        Level::Finding,
        Some(("C0032285", Relation::IsA)),
    ),
    ("C0035222", Level::Finding, None),
];

#[test]
fn builtin_loads_and_validates_clean() {
    assert!(Ontology::validate_tsv_str(BUILTIN_TSV, "ontology/radiology.tsv").is_empty());
    let o = Ontology::builtin();
    let n = o.len();
    assert!((120..=300).contains(&n), "{n} concepts");
    // every concept has a level or is noise
    for c in o.concepts() {
        assert!(
            o.level_of(&c.cui).is_some() || c.noise,
            "{} {} has no level",
            c.cui,
            c.name
        );
    }
    for level in Level::ALL {
        assert!(!o.concepts_of_level(level).is_empty(), "{level} is empty");
    }
    assert_eq!(o.content_hash(), Ontology::builtin().content_hash());
}

#[test]
fn builtin_keeps_the_realrad_concepts_levels_and_parents_exactly() {
    let o = Ontology::builtin();
    for (cui, level, parent) in REALRAD {
        assert_eq!(o.level_of(cui), Some(level), "{cui}");
        let expected: Vec<(&str, Relation)> = parent.into_iter().collect();
        assert_eq!(o.parents(cui), expected, "{cui}");
    }
    // so realrad label rows (which include their ancestors within the 28) are closed and coherent
    let realrad: BTreeSet<String> = REALRAD.iter().map(|r| r.0.to_string()).collect();
    for (cui, _, _) in REALRAD {
        assert!(o.ancestors(cui).is_subset(&realrad), "{cui}");
    }
    assert!(o.is_coherent(&set(&[
        "C0040405", "C0205131", "C0018670", "C0460004", "C0006104", "C0009924"
    ])));
    assert!(
        !o.is_coherent(&set(&["C0040405", "C0024485"])),
        "CT and MRI are exclusive"
    );
}

#[test]
fn builtin_has_the_ten_modalities_and_flags_known_noise() {
    let o = Ontology::builtin();
    let modalities = o.concepts_of_level(Level::Modality);
    for cui in [
        "C0040405", // X-Ray Computed Tomography
        "C0024485", // Magnetic Resonance Imaging
        "C1306645", // Plain x-ray
        "C0041618", // Ultrasonography
        "C0002978", // Angiography
        "C0032743", // Positron-Emission Tomography
        "C0034606", // Radionuclide Imaging (nuclear medicine)
        "C0024671", // Mammography
        "C0016356", // Fluoroscopy
        "C0013516", // Echocardiography
    ] {
        assert!(modalities.contains(&cui), "{cui} is not a modality");
    }
    assert_eq!(o.parents("C0013516"), vec![("C0041618", Relation::IsA)]);
    assert_eq!(o.parents("C0032743"), vec![("C0034606", Relation::IsA)]);
    // the top-level modalities are pairwise exclusive
    for a in [
        "C0040405", "C0024485", "C1306645", "C0041618", "C0002978", "C0034606", "C0024671",
        "C0016356",
    ] {
        assert!(o.parents(a).is_empty(), "{a}");
    }
    for cui in ["C0751437", "C0751438", "C0376152", "C0771936"] {
        assert!(
            o.get(cui).is_some_and(|c| c.noise),
            "{cui} should be flagged noise"
        );
        assert!(
            o.parents(cui).is_empty() && o.children(cui).is_empty(),
            "{cui}: noise is kept isolated"
        );
    }
    for (cui, level) in [("C0238767", Level::Laterality), ("C0442287", Level::View)] {
        assert_eq!(o.level_of(cui), Some(level), "{cui}");
    }
}

#[test]
fn single_valued_levels_are_those_no_image_holds_two_concepts_of() {
    let onto = Ontology::builtin();
    let set = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<BTreeSet<String>>();
    // CT with head and neck and head (anatomy: two on one image), one plane each
    let labels = [set(&["C0040405", "C0460004", "C0018670", "C0205131"]), set(&["C0024485", "C0205123"])];
    let levels = [Level::Modality, Level::Anatomy, Level::Plane];
    assert_eq!(onto.single_valued_levels(&levels, &labels, None), vec![Level::Modality, Level::Plane]);
    // within a label space without head, anatomy is single-valued too
    let space = set(&["C0040405", "C0024485", "C0460004", "C0205131", "C0205123"]);
    assert_eq!(onto.single_valued_levels(&levels, &labels, Some(&space)), levels.to_vec());
}

