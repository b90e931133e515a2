//! The `Ontology` type: a petgraph `DiGraph<Concept, Relation>` (edges child -> parent) with a
//! lookup by CUI, each concept's effective level and its depth, and the questions the rest of the
//! crate asks of it (parents, ancestors, levels, closure, coherence).
//!
//! Where an ontology comes from is `load.rs` (curated files, UMLS RRF); what is said about it,
//! `report.rs`, `dot.rs` and `tsv.rs`, each adding its methods in its own `impl Ontology` block.

use std::collections::{BTreeSet, HashMap};

use ndarray::Array2;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::concept::{Concept, Level, Relation};
use super::semtypes::SemtypeTable;

/// A concept hierarchy over UMLS CUIs (see the module docs).
#[derive(Debug, Clone)]
pub struct Ontology {
    /// Edges child -> parent.
    pub(super) graph: DiGraph<Concept, Relation>,
    index: HashMap<String, NodeIndex>,
    /// Effective level per node: curated, else from semantic types.
    pub(super) levels: Vec<Option<Level>>,
    /// Longest path to a root, per node.
    pub(super) depths: Vec<usize>,
}

impl Ontology {
    /// Wraps a graph (edges child -> parent), computing the lookup index, effective levels and
    /// depths. Depths are all 0 if the graph has a cycle (only possible for a graph that failed
    /// validation and is never handed out).
    pub(crate) fn from_graph(graph: DiGraph<Concept, Relation>) -> Ontology {
        let index = graph
            .node_indices()
            .map(|n| (graph[n].cui.clone(), n))
            .collect();
        let table = SemtypeTable::builtin();
        let levels = graph
            .node_indices()
            .map(|n| {
                let c = &graph[n];
                c.level.or_else(|| {
                    if c.noise {
                        None
                    } else {
                        table.level_of(&c.semantic_types)
                    }
                })
            })
            .collect();
        let mut depths = vec![0usize; graph.node_count()];
        if let Ok(order) = petgraph::algo::toposort(&graph, None) {
            // children come before parents in `order`: walk it backwards, parents first
            for &n in order.iter().rev() {
                depths[n.index()] = graph
                    .neighbors_directed(n, Direction::Outgoing)
                    .map(|p| depths[p.index()] + 1)
                    .max()
                    .unwrap_or(0);
            }
        }
        Ontology {
            graph,
            index,
            levels,
            depths,
        }
    }

    fn node(&self, cui: &str) -> Option<NodeIndex> {
        self.index.get(cui).copied()
    }

    fn cui_of(&self, n: NodeIndex) -> &str {
        &self.graph[n].cui
    }

    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// True when the ontology has no concept.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Whether the CUI is in the ontology.
    pub fn contains(&self, cui: &str) -> bool {
        self.index.contains_key(cui)
    }

    /// The concept with this CUI.
    pub fn get(&self, cui: &str) -> Option<&Concept> {
        self.node(cui).map(|n| &self.graph[n])
    }

    /// All concepts, in file (or load) order.
    pub fn concepts(&self) -> impl Iterator<Item = &Concept> {
        self.graph.node_weights()
    }

    /// The concept's level: its curated level, else the level of its semantic types
    /// ([`Ontology::level_from_semtypes`]; not for noise-flagged concepts, which should not be
    /// learned), else `None`. `None` for unknown CUIs.
    pub fn level_of(&self, cui: &str) -> Option<Level> {
        self.node(cui).and_then(|n| self.levels[n.index()])
    }

    /// The level the shipped semantic type table (`ontology/semtypes.tsv`) gives a list of TUIs;
    /// with several, the first level in [`Level::ALL`] order.
    pub(crate) fn level_from_semtypes(tuis: &[String]) -> Option<Level> {
        SemtypeTable::builtin().level_of(tuis)
    }

    /// Direct parents with the relation to each, sorted by CUI. Empty for unknown CUIs.
    pub fn parents(&self, cui: &str) -> Vec<(&str, Relation)> {
        let Some(n) = self.node(cui) else {
            return Vec::new();
        };
        let mut out: Vec<(&str, Relation)> = self
            .graph
            .edges_directed(n, Direction::Outgoing)
            .map(|e| (self.cui_of(e.target()), *e.weight()))
            .collect();
        out.sort();
        out
    }

    /// Direct children, sorted by CUI. Empty for unknown CUIs.
    pub fn children(&self, cui: &str) -> Vec<&str> {
        let Some(n) = self.node(cui) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self
            .graph
            .neighbors_directed(n, Direction::Incoming)
            .map(|c| self.cui_of(c))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Nodes reachable from `start` along `dir`, without `start` itself.
    pub(super) fn reach(&self, start: NodeIndex, dir: Direction) -> Vec<NodeIndex> {
        let mut seen = vec![false; self.graph.node_count()];
        seen[start.index()] = true;
        let mut stack = vec![start];
        let mut out = Vec::new();
        while let Some(n) = stack.pop() {
            for m in self.graph.neighbors_directed(n, dir) {
                if !seen[m.index()] {
                    seen[m.index()] = true;
                    out.push(m);
                    stack.push(m);
                }
            }
        }
        out
    }

    fn cui_set(&self, nodes: Vec<NodeIndex>) -> BTreeSet<String> {
        nodes
            .into_iter()
            .map(|n| self.cui_of(n).to_string())
            .collect()
    }

    /// All ancestors (transitively, over both relations), never the concept itself.
    /// Empty for unknown CUIs.
    pub fn ancestors(&self, cui: &str) -> BTreeSet<String> {
        self.node(cui)
            .map(|n| self.cui_set(self.reach(n, Direction::Outgoing)))
            .unwrap_or_default()
    }

    /// All descendants (transitively), never the concept itself. Empty for unknown CUIs.
    pub fn descendants(&self, cui: &str) -> BTreeSet<String> {
        self.node(cui)
            .map(|n| self.cui_set(self.reach(n, Direction::Incoming)))
            .unwrap_or_default()
    }

    /// For each of `concepts`, the indices of its descendants among them, itself included (the
    /// rows of C-HMCNN's max-constraint); empty when no concept has a descendant there (the
    /// constraint would change nothing).
    pub(crate) fn descendants_within(&self, concepts: &[String]) -> Vec<Vec<usize>> {
        let ancestors: Vec<BTreeSet<String>> = concepts.iter().map(|c| self.ancestors(c)).collect();
        let d: Vec<Vec<usize>> = concepts.iter().enumerate().map(|(a, ca)| (0..concepts.len()).filter(|&b| b == a || ancestors[b].contains(ca)).collect()).collect();
        if d.iter().all(|v| v.len() == 1) {
            Vec::new()
        } else {
            d
        }
    }

    /// The levels among `levels` that are single-valued in `labels`: no image holds two of the
    /// level's concepts among `space` (the concepts a model learns; `None`: all).
    pub(crate) fn single_valued_levels<'a>(&self, levels: &[Level], labels: impl IntoIterator<Item = &'a BTreeSet<String>>, space: Option<&BTreeSet<String>>) -> Vec<Level> {
        let mut multi = BTreeSet::new();
        for set in labels {
            let mut seen = BTreeSet::new();
            for c in set.iter().filter(|c| space.is_none_or(|s| s.contains(*c))) {
                if let Some(l) = self.level_of(c) {
                    if !seen.insert(l) {
                        multi.insert(l);
                    }
                }
            }
        }
        levels.iter().copied().filter(|l| !multi.contains(l)).collect()
    }

    /// Length of the longest path from the concept up to a root (roots: 0). `None` for unknown
    /// CUIs.
    pub fn depth(&self, cui: &str) -> Option<usize> {
        self.node(cui).map(|n| self.depths[n.index()])
    }

    /// The deepest concept that is an ancestor-or-self of both (ties: smallest CUI); `None` if
    /// either is unknown or they share none.
    pub fn lowest_common_ancestor(&self, a: &str, b: &str) -> Option<String> {
        let (na, nb) = (self.node(a)?, self.node(b)?);
        let mut up_a = self.reach(na, Direction::Outgoing);
        up_a.push(na);
        let mut up_b = self.reach(nb, Direction::Outgoing);
        up_b.push(nb);
        let up_b: BTreeSet<NodeIndex> = up_b.into_iter().collect();
        up_a.into_iter()
            .filter(|n| up_b.contains(n))
            .min_by(|x, y| {
                self.depths[y.index()]
                    .cmp(&self.depths[x.index()])
                    .then_with(|| self.cui_of(*x).cmp(self.cui_of(*y)))
            })
            .map(|n| self.cui_of(n).to_string())
    }

    /// CUIs whose level ([`Ontology::level_of`]) is `level`, sorted.
    pub fn concepts_of_level(&self, level: Level) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .graph
            .node_indices()
            .filter(|n| self.levels[n.index()] == Some(level))
            .map(|n| self.cui_of(n))
            .collect();
        out.sort();
        out
    }

    /// The CUIs of any of `levels`.
    pub fn concepts_on_levels(&self, levels: &[Level]) -> BTreeSet<String> {
        levels.iter().flat_map(|&l| self.concepts_of_level(l)).map(str::to_string).collect()
    }

    /// The set plus every ancestor of its known CUIs; unknown CUIs are kept as they are.
    pub fn closure(&self, set: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = set.clone();
        for cui in set {
            out.extend(self.ancestors(cui));
        }
        out
    }

    /// The most specific modality concepts of the set: those of its known modality concepts
    /// that are not an ancestor of another modality concept in the set. Sorted.
    pub(crate) fn modality_leaves<'a>(&self, set: &'a BTreeSet<String>) -> Vec<&'a str> {
        let modal: Vec<&'a String> = set
            .iter()
            .filter(|c| self.level_of(c) == Some(Level::Modality))
            .collect();
        let mut covered: BTreeSet<String> = BTreeSet::new();
        for m in &modal {
            covered.extend(self.ancestors(m));
        }
        modal
            .into_iter()
            .filter(|m| !covered.contains(m.as_str()))
            .map(|m| m.as_str())
            .collect()
    }

    /// How many distinct modality chains the set names (the count of
    /// [`Ontology::modality_leaves`]).
    pub fn modality_count(&self, set: &BTreeSet<String>) -> usize {
        self.modality_leaves(set).len()
    }

    /// A label set is coherent when every known concept's ancestors are in it and its modality
    /// concepts form at most one chain (one modality per image).
    pub fn is_coherent(&self, set: &BTreeSet<String>) -> bool {
        set.iter().all(|c| self.ancestors(c).is_subset(set)) && self.modality_count(set) <= 1
    }

    /// `[K, K]` matrix over `cuis`: `m[[i, j]] = 1.0` when `cuis[j]` is an ancestor-or-self of
    /// `cuis[i]`, else `0.0`. Unknown CUIs only have their diagonal entry. Used by the trainer
    /// for the hierarchy max-constraint (a parent scores at least as high as any child).
    pub fn ancestor_matrix(&self, cuis: &[String]) -> Array2<f32> {
        let k = cuis.len();
        let mut m = Array2::<f32>::zeros((k, k));
        for (i, ci) in cuis.iter().enumerate() {
            let anc = self.ancestors(ci);
            for (j, cj) in cuis.iter().enumerate() {
                if ci == cj || anc.contains(cj) {
                    m[[i, j]] = 1.0;
                }
            }
        }
        m
    }

    /// Concepts without parents, sorted.
    pub fn roots(&self) -> Vec<&str> {
        self.sorted_where(Direction::Outgoing)
    }

    /// Concepts without children, sorted.
    pub fn leaves(&self) -> Vec<&str> {
        self.sorted_where(Direction::Incoming)
    }

    fn sorted_where(&self, empty: Direction) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .graph
            .node_indices()
            .filter(|&n| self.graph.neighbors_directed(n, empty).next().is_none())
            .map(|n| self.cui_of(n))
            .collect();
        out.sort();
        out
    }
}
