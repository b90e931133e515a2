//! Whole-file validation of a curated ontology, and building the graph from it.
//!
//! On top of the row checks of `tsv.rs`: duplicate CUIs (both lines named), parents that no row
//! defines, cycles (the CUIs on the cycle named in order), parents on another level than their
//! child (a concept's ancestors are added to every prediction of it, so a modality under a
//! finding would make every image of that modality also show the finding; concepts on no level
//! only have parents on no level), and modality conflicts: two modality concepts among one
//! concept's ancestors-or-self that are not in one chain. A modality conflict is reported once,
//! at the concept where it first arises (none of its parents has one), not again for every
//! descendant.

use std::collections::{BTreeSet, HashMap, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use super::concept::{Concept, Level, Relation};
use super::graph::Ontology;
use super::problem::{Problem, ProblemKind};
use super::tsv::parse_rows;

/// Parses, checks and builds. `Err` holds every problem, sorted by line (file-level ones last).
pub(crate) fn check_and_build(text: &str, source: &str) -> Result<Ontology, Vec<Problem>> {
    let (rows, mut problems) = parse_rows(text, source);
    let problem = |line: usize, kind, message: String| Problem {
        source: source.to_string(),
        line: Some(line),
        kind,
        message,
    };

    // nodes, first definition wins
    let mut graph: DiGraph<Concept, Relation> = DiGraph::new();
    let mut index: HashMap<String, NodeIndex> = HashMap::new();
    let mut lines: Vec<usize> = Vec::new();
    let mut kept = Vec::new();
    for row in rows {
        if let Some(&n) = index.get(&row.cui) {
            problems.push(problem(
                row.line,
                ProblemKind::DuplicateCui,
                format!(
                    "duplicate CUI {} (first defined on line {})",
                    row.cui,
                    lines[n.index()]
                ),
            ));
            continue;
        }
        let n = graph.add_node(Concept {
            cui: row.cui.clone(),
            name: row.name.clone(),
            semantic_types: row.semantic_types.clone(),
            level: row.level,
            noise: row.noise,
        });
        index.insert(row.cui.clone(), n);
        lines.push(row.line);
        kept.push(row);
    }

    // edges child -> parent
    for row in &kept {
        let child = index[&row.cui];
        for (parent, relation) in &row.parents {
            match index.get(parent) {
                Some(&p) => {
                    if graph.find_edge(child, p).is_none() {
                        graph.add_edge(child, p, *relation);
                    }
                }
                None => problems.push(problem(
                    row.line,
                    ProblemKind::UnknownParent,
                    format!("{}: unknown parent {parent} (no row defines it)", row.cui),
                )),
            }
        }
    }

    problems.extend(cycles(&graph, &lines, source));
    let ontology = Ontology::from_graph(graph);
    problems.extend(modality_conflicts(&ontology, &lines, source));
    problems.extend(parents_off_level(&ontology, &lines, source));

    if problems.is_empty() {
        Ok(ontology)
    } else {
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(problems)
    }
}

/// One problem per strongly connected component with a cycle, naming its CUIs in edge order,
/// starting (and reported) at the one defined first.
fn cycles(
    graph: &DiGraph<Concept, Relation>,
    lines: &[usize],
    source: &str,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for scc in tarjan_scc(graph) {
        let is_cycle = scc.len() > 1 || graph.find_edge(scc[0], scc[0]).is_some();
        if !is_cycle {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min_by_key(|n| lines[n.index()]) else {
            continue;
        };
        // BFS inside the component from start's parents back to start
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut found = false;
        while let Some(n) = queue.pop_front() {
            for p in graph.neighbors_directed(n, Direction::Outgoing) {
                if !members.contains(&p) || prev.contains_key(&p) {
                    continue;
                }
                prev.insert(p, n);
                if p == start {
                    found = true;
                    break;
                }
                queue.push_back(p);
            }
            if found {
                break;
            }
        }
        let mut path = vec![start];
        let mut at = prev.get(&start).copied();
        while let Some(n) = at {
            if n == start {
                break;
            }
            path.push(n);
            at = prev.get(&n).copied();
        }
        // path holds start, then the cycle walked backwards: put it in edge order
        path[1..].reverse();
        let mut names: Vec<&str> = path.iter().map(|n| graph[*n].cui.as_str()).collect();
        names.push(&graph[start].cui);
        out.push(Problem {
            source: source.to_string(),
            line: Some(lines[start.index()]),
            kind: ProblemKind::Cycle,
            message: format!("cycle in parent edges: {}", names.join(" -> ")),
        });
    }
    out
}

/// Parents on another level than their child (see the module docs): one problem per such edge,
/// at the child's line. A concept's level is its effective one (curated, else from its semantic
/// types); "no level" counts as a level of its own.
fn parents_off_level(ontology: &Ontology, lines: &[usize], source: &str) -> Vec<Problem> {
    let g = &ontology.graph;
    let level = |n: NodeIndex| ontology.levels[n.index()];
    let name = |l: Option<Level>| l.map_or_else(|| "no level".to_string(), |l| format!("level {l}"));
    let mut out = Vec::new();
    for n in g.node_indices() {
        let mut parents: Vec<NodeIndex> = g.neighbors_directed(n, Direction::Outgoing).filter(|&p| level(p) != level(n)).collect();
        parents.sort_by(|a, b| g[*a].cui.cmp(&g[*b].cui));
        for p in parents {
            out.push(Problem {
                source: source.to_string(),
                line: Some(lines[n.index()]),
                kind: ProblemKind::ParentOffLevel,
                message: format!(
                    "{} ({}) is on {} but its parent {} ({}) is on {}; a parent must be on its child's level \
                     (a prediction of the child would add the parent: another level's concept)",
                    g[n].cui,
                    g[n].name,
                    name(level(n)),
                    g[p].cui,
                    g[p].name,
                    name(level(p))
                ),
            });
        }
    }
    out
}

/// Modality conflicts (see the module docs).
fn modality_conflicts(ontology: &Ontology, lines: &[usize], source: &str) -> Vec<Problem> {
    let g = &ontology.graph;
    let n_nodes = g.node_count();
    let up: Vec<BTreeSet<NodeIndex>> = g
        .node_indices()
        .map(|n| ontology.reach(n, Direction::Outgoing).into_iter().collect())
        .collect();
    let is_modality = |n: NodeIndex| ontology.levels[n.index()] == Some(Level::Modality);
    // for each node: the first pair (by CUI) of unrelated modality concepts among ancestors-or-self
    let conflict: Vec<Option<(NodeIndex, NodeIndex)>> = (0..n_nodes)
        .map(|i| {
            let n = NodeIndex::new(i);
            let mut modal: Vec<NodeIndex> = up[i]
                .iter()
                .copied()
                .chain([n])
                .filter(|&m| is_modality(m))
                .collect();
            modal.sort_by(|a, b| g[*a].cui.cmp(&g[*b].cui));
            modal.dedup();
            for (k, &a) in modal.iter().enumerate() {
                for &b in &modal[k + 1..] {
                    if !up[a.index()].contains(&b) && !up[b.index()].contains(&a) {
                        return Some((a, b));
                    }
                }
            }
            None
        })
        .collect();
    let mut out = Vec::new();
    for i in 0..n_nodes {
        let n = NodeIndex::new(i);
        let Some((a, b)) = conflict[i] else { continue };
        let inherited = g
            .neighbors_directed(n, Direction::Outgoing)
            .any(|p| conflict[p.index()].is_some());
        if inherited {
            continue;
        }
        out.push(Problem {
            source: source.to_string(),
            line: Some(lines[i]),
            kind: ProblemKind::ModalityConflict,
            message: format!(
                "{} ({}) has two modality chains among its ancestors-or-self: {} ({}) and {} ({}); \
                 modalities must not share a descendant unless one is an ancestor of the other",
                g[n].cui, g[n].name, g[a].cui, g[a].name, g[b].cui, g[b].name
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Ontology;
    use super::*;

    const H: &str = "cui\tname\tlevel\tparents\tsemantic_types\tflags";

    /// Problems of a file made of the header and `rows`; the header is line 1, rows start at 2.
    fn problems(rows: &[&str]) -> Vec<Problem> {
        let text = std::iter::once(H)
            .chain(rows.iter().copied())
            .collect::<Vec<_>>()
            .join("\n");
        Ontology::validate_tsv_str(&text, "bad.tsv")
    }

    fn one(rows: &[&str], kind: ProblemKind) -> String {
        let p = problems(rows);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].kind, kind, "{p:?}");
        p[0].to_string()
    }

    #[test]
    fn malformed_row() {
        let msg = one(
            &[
                "C0000001\tA\tanatomy\t-\t-\t-",
                "C0000002\tB\tanatomy\t-\t-",
            ],
            ProblemKind::MalformedRow,
        );
        assert!(
            msg.starts_with("bad.tsv:3: expected 6 tab-separated columns"),
            "{msg}"
        );
        assert!(msg.ends_with("found 5"), "{msg}");
    }

    #[test]
    fn malformed_cui() {
        let msg = one(
            &["C0000001\tA\tanatomy\t-\t-\t-", "C123\tB\tanatomy\t-\t-\t-"],
            ProblemKind::MalformedCui,
        );
        assert_eq!(
            msg,
            "bad.tsv:3: malformed CUI 'C123' (expected C and 7 digits)"
        );
    }

    #[test]
    fn duplicate_cui_names_both_lines() {
        let msg = one(
            &[
                "C0000001\tA\tanatomy\t-\t-\t-",
                "C0000002\tB\t-\t-\t-\t-",
                "C0000001\tA again\t-\t-\t-\t-",
            ],
            ProblemKind::DuplicateCui,
        );
        assert_eq!(
            msg,
            "bad.tsv:4: duplicate CUI C0000001 (first defined on line 2)"
        );
    }

    #[test]
    fn unknown_parent() {
        let msg = one(
            &[
                "C0000001\tA\tanatomy\t-\t-\t-",
                "C0000002\tB\tanatomy\tpart_of:C0000009\t-\t-",
            ],
            ProblemKind::UnknownParent,
        );
        assert_eq!(
            msg,
            "bad.tsv:3: C0000002: unknown parent C0000009 (no row defines it)"
        );
    }

    #[test]
    fn unknown_level() {
        let msg = one(
            &[
                "C0000001\tA\tanatomy\t-\t-\t-",
                "C0000002\tB\torgan\t-\t-\t-",
            ],
            ProblemKind::UnknownLevel,
        );
        assert!(
            msg.starts_with("bad.tsv:3: C0000002: unknown level 'organ'"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_flag() {
        let msg = one(
            &["C0000001\tA\tanatomy\t-\t-\tnoise;shiny"],
            ProblemKind::UnknownFlag,
        );
        assert_eq!(
            msg,
            "bad.tsv:2: C0000001: unknown flag 'shiny' (known: noise)"
        );
    }

    #[test]
    fn malformed_parent_relation() {
        let msg = one(
            &[
                "C0000001\tA\tanatomy\t-\t-\t-",
                "C0000002\tB\tanatomy\tnear:C0000001\t-\t-",
            ],
            ProblemKind::MalformedParent,
        );
        assert!(
            msg.starts_with("bad.tsv:3: C0000002: parent entry 'near:C0000001'"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_semantic_type() {
        let msg = one(
            &["C0000001\tA\tanatomy\t-\tT23\t-"],
            ProblemKind::MalformedSemanticType,
        );
        assert!(
            msg.starts_with("bad.tsv:2: C0000001: malformed semantic type 'T23'"),
            "{msg}"
        );
    }

    #[test]
    fn bad_header() {
        let p = Ontology::validate_tsv_str("# c\ncui\tname\tlevel\n", "h.tsv");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, ProblemKind::BadHeader);
        assert!(p[0].to_string().starts_with("h.tsv:2: expected header"));
        let p = Ontology::validate_tsv_str("", "h.tsv");
        assert_eq!(p[0].to_string(), "h.tsv: no header line 'cui<TAB>name<TAB>level<TAB>parents<TAB>semantic_types<TAB>flags'");
    }

    #[test]
    fn cycle_names_its_cuis_in_order() {
        let msg = one(
            &[
                "C0000001\tRoot\tanatomy\t-\t-\t-",
                "C0000002\tA\tanatomy\tC0000004;C0000001\t-\t-",
                "C0000003\tB\tanatomy\tpart_of:C0000002\t-\t-",
                "C0000004\tC\tanatomy\tC0000003\t-\t-",
            ],
            ProblemKind::Cycle,
        );
        assert_eq!(
            msg,
            "bad.tsv:3: cycle in parent edges: C0000002 -> C0000004 -> C0000003 -> C0000002"
        );
    }

    #[test]
    fn self_parent_is_a_cycle() {
        let msg = one(
            &["C0000001\tA\tanatomy\tC0000001\t-\t-"],
            ProblemKind::Cycle,
        );
        assert_eq!(
            msg,
            "bad.tsv:2: cycle in parent edges: C0000001 -> C0000001"
        );
    }

    #[test]
    fn two_modality_chains_reported_once_where_they_meet() {
        let rows = [
            "C0000001\tUS\tmodality\t-\t-\t-",
            "C0000002\tCT\tmodality\t-\t-\t-",
            "C0000003\tEcho\tmodality\tC0000001\t-\t-",
            "C0000004\tHybrid\tmodality\tC0000003;C0000002\t-\t-",
            "C0000005\tHybrid child\tmodality\tC0000004\t-\t-",
        ];
        let msg = one(&rows, ProblemKind::ModalityConflict);
        assert!(
            msg.starts_with("bad.tsv:5: C0000004 (Hybrid) has two modality chains among its ancestors-or-self: C0000001 (US) and C0000002 (CT)"),
            "{msg}"
        );
    }

    #[test]
    fn modality_via_semantic_type_counts_and_chains_are_fine() {
        // C0000004 has no curated level but T060 (Diagnostic Procedure) makes it a modality
        let rows = [
            "C0000001\tUS\tmodality\t-\t-\t-",
            "C0000002\tEcho\tmodality\tC0000001\t-\t-",
            "C0000003\tHeart\tanatomy\t-\t-\t-",
            "C0000004\tCardiac echo\t-\tC0000002\tT060\t-",
            "C0000005\tCT\tmodality\t-\t-\t-",
            "C0000006\tMixed\tmodality\tC0000004;C0000005\t-\t-",
        ];
        let p = problems(&rows);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].to_string()
                .starts_with("bad.tsv:7: C0000006 (Mixed) has two modality chains"),
            "{}",
            p[0]
        );
        // without the last row, a chain of modalities is valid
        assert!(problems(&rows[..5]).is_empty());
    }

    #[test]
    fn a_parent_on_another_level_is_refused_naming_line_and_cuis() {
        // the case: a modality whose parent is a finding
        let msg = one(
            &[
                "C0032285\tPneumonia\tfinding\t-\t-\t-",
                "C0040405\tX-Ray Computed Tomography\tmodality\tC0032285\t-\t-",
            ],
            ProblemKind::ParentOffLevel,
        );
        assert!(
            msg.starts_with("bad.tsv:3: C0040405 (X-Ray Computed Tomography) is on level modality but its parent C0032285 (Pneumonia) is on level finding; a parent must be on its child's level"),
            "{msg}"
        );
        // a level from semantic types counts; "no level" is a level of its own, both ways
        let p = problems(&[
            "C0000001\tHeart\tanatomy\t-\t-\t-",
            "C0000002\tCardiac CT\t-\tC0000001\tT060\t-",
            "C0000003\tThing\t-\t-\t-\t-",
            "C0000004\tLesion\tfinding\tC0000003\t-\t-",
            "C0000005\tNoise\t-\tC0000004\t-\tnoise",
            "C0000006\tOther thing\t-\tC0000003\t-\t-",
        ]);
        let lines: Vec<(Option<usize>, ProblemKind)> = p.iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(lines, vec![(Some(3), ProblemKind::ParentOffLevel), (Some(5), ProblemKind::ParentOffLevel), (Some(6), ProblemKind::ParentOffLevel)], "{p:?}");
        assert!(p[1].message.contains("C0000004 (Lesion) is on level finding but its parent C0000003 (Thing) is on no level"), "{p:?}");
    }

    #[test]
    fn all_problems_are_collected_in_line_order() {
        let p = problems(&[
            "C0000001\tA\tanatomy\tC0000009\t-\t-",
            "C0000002\tB\tnowhere\t-\t-\t-",
            "bad row",
            "C0000001\tA\t-\t-\t-\t-",
        ]);
        let kinds: Vec<(Option<usize>, ProblemKind)> = p.iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (Some(2), ProblemKind::UnknownParent),
                (Some(3), ProblemKind::UnknownLevel),
                (Some(4), ProblemKind::MalformedRow),
                (Some(5), ProblemKind::DuplicateCui)
            ]
        );
        let text = [H, "C0000001\tA\tanatomy\tC0000009\t-\t-", "bad row"].join("\n");
        let err = Ontology::from_tsv_str(&text, "bad.tsv")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid ontology bad.tsv (2 problem(s)):\n  bad.tsv:2: C0000001: unknown parent C0000009 (no row defines it)\n  \
             bad.tsv:3: expected 6 tab-separated columns (cui, name, level, parents, semantic_types, flags), found 1"
        );
    }
}
