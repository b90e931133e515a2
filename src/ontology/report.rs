//! Summaries of an ontology for people and JSON: statistics, one concept's neighbourhood, how a
//! label file's CUIs fall on the levels, and a content hash for run reproducibility.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

use super::concept::{Level, Relation};
use super::graph::Ontology;

/// Counts over a whole ontology ([`Ontology::stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OntologyStats {
    /// Number of concepts.
    pub concepts: usize,
    /// Concepts per level (every level listed, zeros included).
    pub per_level: BTreeMap<Level, usize>,
    /// Concepts on no level.
    pub no_level: usize,
    /// Concepts flagged as label noise.
    pub noise: usize,
    /// is_a edges.
    pub is_a_edges: usize,
    /// part_of edges.
    pub part_of_edges: usize,
    /// Largest [`Ontology::depth`].
    pub max_depth: usize,
    /// Concepts without parents.
    pub roots: usize,
    /// Concepts without children.
    pub leaves: usize,
}

impl fmt::Display for OntologyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<12} {:>8}", "level", "concepts")?;
        for (level, n) in &self.per_level {
            writeln!(f, "{:<12} {:>8}", level.as_str(), n)?;
        }
        writeln!(f, "{:<12} {:>8}", "(no level)", self.no_level)?;
        writeln!(f, "{:<12} {:>8}", "total", self.concepts)?;
        writeln!(
            f,
            "noise-flagged {}, is_a edges {}, part_of edges {}, max depth {}, roots {}, leaves {}",
            self.noise,
            self.is_a_edges,
            self.part_of_edges,
            self.max_depth,
            self.roots,
            self.leaves
        )
    }
}

/// A CUI with its name and level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedCui {
    /// The CUI.
    pub cui: String,
    /// Its name.
    pub name: String,
    /// Its level ([`Ontology::level_of`]).
    pub level: Option<Level>,
}

/// A direct parent ([`ConceptReport::parents`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParentLink {
    /// The parent.
    pub parent: NamedCui,
    /// How the concept relates to it.
    pub relation: Relation,
}

/// One concept and its neighbourhood ([`Ontology::show`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConceptReport {
    /// The concept, with its effective level.
    pub concept: NamedCui,
    /// Its curated level (`None`: the level, if any, comes from its semantic types).
    pub curated_level: Option<Level>,
    /// Semantic types (TUIs).
    pub semantic_types: Vec<String>,
    /// Flagged as label noise.
    pub noise: bool,
    /// [`Ontology::depth`].
    pub depth: usize,
    /// Direct parents, sorted by CUI.
    pub parents: Vec<ParentLink>,
    /// All ancestors, deepest first, then by CUI.
    pub ancestors: Vec<NamedCui>,
    /// Direct children, sorted by CUI.
    pub children: Vec<NamedCui>,
}

fn level_name(level: Option<Level>) -> &'static str {
    level.map(Level::as_str).unwrap_or("-")
}

impl fmt::Display for ConceptReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.concept;
        writeln!(f, "{}  {}", c.cui, c.name)?;
        let how = if self.curated_level.is_some() {
            "curated"
        } else {
            "from semantic types"
        };
        writeln!(f, "  level: {} ({how})", level_name(c.level))?;
        let tuis = if self.semantic_types.is_empty() {
            "-".to_string()
        } else {
            self.semantic_types.join(";")
        };
        writeln!(f, "  semantic types: {tuis}")?;
        writeln!(
            f,
            "  depth: {}{}",
            self.depth,
            if self.noise {
                "  [noise in ImageCLEF/ROCO labels]"
            } else {
                ""
            }
        )?;
        writeln!(f, "  parents:")?;
        for p in &self.parents {
            writeln!(f, "    {} {} {}", p.relation, p.parent.cui, p.parent.name)?;
        }
        writeln!(f, "  ancestors:")?;
        for a in &self.ancestors {
            writeln!(f, "    {} {} ({})", a.cui, a.name, level_name(a.level))?;
        }
        writeln!(f, "  children:")?;
        for c in &self.children {
            writeln!(f, "    {} {}", c.cui, c.name)?;
        }
        Ok(())
    }
}

/// Label occurrences placed on one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LevelCount {
    /// Distinct CUIs.
    pub distinct: usize,
    /// Occurrences (one per row a CUI appears in).
    pub occurrences: usize,
}

/// A CUI and how often it occurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CuiCount {
    /// The CUI.
    pub cui: String,
    /// Occurrences.
    pub count: usize,
}

/// How the CUIs of a label file fall on the ontology ([`Ontology::map_labels`]). Each
/// occurrence is counted in exactly one of: a level, `no_level`, `noise`, `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelMapReport {
    /// Rows (images) read.
    pub rows: usize,
    /// CUI occurrences read (duplicates within a row counted once).
    pub occurrences: usize,
    /// Per level (every level listed, zeros included); noise-flagged concepts are not counted here.
    pub per_level: BTreeMap<Level, LevelCount>,
    /// Concepts of the ontology on no level, most frequent first.
    pub no_level: Vec<CuiCount>,
    /// Noise-flagged concepts, most frequent first.
    pub noise: Vec<CuiCount>,
    /// CUIs not in the ontology (so on no level), most frequent first.
    pub unknown: Vec<CuiCount>,
    /// Occurrences of CUIs outside the ontology that were placed on a level by their semantic
    /// types from a user-supplied table (included in `per_level`).
    pub placed_by_semantic_type: usize,
}

impl LabelMapReport {
    fn total(list: &[CuiCount]) -> usize {
        list.iter().map(|c| c.count).sum()
    }
}

impl fmt::Display for LabelMapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} label occurrences in {} rows",
            self.occurrences, self.rows
        )?;
        writeln!(f, "{:<12} {:>8} {:>12}", "level", "distinct", "occurrences")?;
        for (level, c) in &self.per_level {
            writeln!(
                f,
                "{:<12} {:>8} {:>12}",
                level.as_str(),
                c.distinct,
                c.occurrences
            )?;
        }
        for (label, list) in [
            ("(no level)", &self.no_level),
            ("noise", &self.noise),
            ("unknown", &self.unknown),
        ] {
            writeln!(
                f,
                "{:<12} {:>8} {:>12}",
                label,
                list.len(),
                Self::total(list)
            )?;
        }
        if self.placed_by_semantic_type > 0 {
            writeln!(f, "({} of the level occurrences are CUIs outside the ontology, placed by semantic type)", self.placed_by_semantic_type)?;
        }
        for (label, list) in [("noise", &self.noise), ("unknown", &self.unknown)] {
            if !list.is_empty() {
                let top: Vec<String> = list
                    .iter()
                    .take(20)
                    .map(|c| format!("{} ({})", c.cui, c.count))
                    .collect();
                writeln!(f, "top {label} CUIs: {}", top.join(", "))?;
            }
        }
        Ok(())
    }
}

fn sorted_counts(counts: HashMap<String, usize>) -> Vec<CuiCount> {
    let mut out: Vec<CuiCount> = counts
        .into_iter()
        .map(|(cui, count)| CuiCount { cui, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cui.cmp(&b.cui)));
    out
}


impl Ontology {
    /// Counts per level, edges, depth, roots and leaves.
    pub fn stats(&self) -> OntologyStats {
        let mut per_level: BTreeMap<Level, usize> = Level::ALL.iter().map(|l| (*l, 0)).collect();
        let mut no_level = 0;
        for level in &self.levels {
            match level {
                Some(l) => *per_level.entry(*l).or_default() += 1,
                None => no_level += 1,
            }
        }
        let is_a_edges = self
            .graph
            .edge_weights()
            .filter(|r| **r == Relation::IsA)
            .count();
        OntologyStats {
            concepts: self.len(),
            per_level,
            no_level,
            noise: self.concepts().filter(|c| c.noise).count(),
            is_a_edges,
            part_of_edges: self.graph.edge_count() - is_a_edges,
            max_depth: self.depths.iter().copied().max().unwrap_or(0),
            roots: self.roots().len(),
            leaves: self.leaves().len(),
        }
    }

    fn named(&self, cui: &str) -> NamedCui {
        NamedCui {
            cui: cui.to_string(),
            name: self.get(cui).map(|c| c.name.clone()).unwrap_or_default(),
            level: self.level_of(cui),
        }
    }

    /// One concept with its level, semantic types, parents, ancestors and children; `None` for
    /// unknown CUIs.
    pub fn show(&self, cui: &str) -> Option<ConceptReport> {
        let concept = self.get(cui)?;
        let mut ancestors: Vec<NamedCui> =
            self.ancestors(cui).iter().map(|a| self.named(a)).collect();
        ancestors.sort_by(|a, b| {
            let (da, db) = (self.depth(&a.cui), self.depth(&b.cui));
            db.cmp(&da).then_with(|| a.cui.cmp(&b.cui))
        });
        Some(ConceptReport {
            concept: self.named(cui),
            curated_level: concept.level,
            semantic_types: concept.semantic_types.clone(),
            noise: concept.noise,
            depth: self.depth(cui).unwrap_or(0),
            parents: self
                .parents(cui)
                .into_iter()
                .map(|(p, relation)| ParentLink {
                    parent: self.named(p),
                    relation,
                })
                .collect(),
            ancestors,
            children: self
                .children(cui)
                .into_iter()
                .map(|c| self.named(c))
                .collect(),
        })
    }

    /// Places the CUIs of label rows (one slice of CUIs per image) on the levels; see
    /// [`LabelMapReport`]. A CUI repeated within one row counts once.
    pub fn map_labels<'a>(&self, rows: impl IntoIterator<Item = &'a [String]>) -> LabelMapReport {
        self.map_labels_with(rows, None)
    }

    /// [`Ontology::map_labels`], placing CUIs outside the ontology by their semantic types from
    /// `semtypes` (CUI -> TUIs, e.g. from UMLS MRSTY.RRF) through the semantic-type table.
    pub fn map_labels_with<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a [String]>,
        semtypes: Option<&HashMap<String, Vec<String>>>,
    ) -> LabelMapReport {
        let mut placed_by_semantic_type = 0;
        let mut n_rows = 0;
        let mut occurrences = 0;
        let mut per_level: BTreeMap<Level, (BTreeSet<&'a str>, usize)> = Level::ALL
            .iter()
            .map(|l| (*l, (BTreeSet::new(), 0)))
            .collect();
        let (mut no_level, mut noise, mut unknown) =
            (HashMap::new(), HashMap::new(), HashMap::new());
        for row in rows {
            n_rows += 1;
            let distinct: BTreeSet<&'a str> = row
                .iter()
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
                .collect();
            for cui in distinct {
                occurrences += 1;
                let bucket = match self.get(cui) {
                    None => match semtypes.and_then(|t| t.get(cui)).and_then(|tuis| Ontology::level_from_semtypes(tuis)) {
                        Some(level) => {
                            let slot = per_level.entry(level).or_default();
                            slot.0.insert(cui);
                            slot.1 += 1;
                            placed_by_semantic_type += 1;
                            continue;
                        }
                        None => &mut unknown,
                    },
                    Some(c) if c.noise => &mut noise,
                    Some(_) => match self.level_of(cui) {
                        Some(level) => {
                            let slot = per_level.entry(level).or_default();
                            slot.0.insert(cui);
                            slot.1 += 1;
                            continue;
                        }
                        None => &mut no_level,
                    },
                };
                *bucket.entry(cui.to_string()).or_insert(0usize) += 1;
            }
        }
        LabelMapReport {
            rows: n_rows,
            occurrences,
            per_level: per_level
                .into_iter()
                .map(|(l, (set, occ))| {
                    (
                        l,
                        LevelCount {
                            distinct: set.len(),
                            occurrences: occ,
                        },
                    )
                })
                .collect(),
            no_level: sorted_counts(no_level),
            noise: sorted_counts(noise),
            unknown: sorted_counts(unknown),
            placed_by_semantic_type,
        }
    }

    /// A stable 16-hex-digit FNV-1a hash of the ontology's content (concepts with name, level,
    /// semantic types, noise flag and sorted parent edges, sorted by CUI). Independent of row
    /// order, comments and formatting; written beside checkpoints so a run names the ontology
    /// it used.
    pub fn content_hash(&self) -> String {
        let mut nodes: Vec<_> = self.graph.node_indices().collect();
        nodes.sort_by(|a, b| self.graph[*a].cui.cmp(&self.graph[*b].cui));
        let mut hash = crate::fingerprint::FNV_START;
        for n in nodes {
            let c = &self.graph[n];
            let parents: Vec<String> = self
                .parents(&c.cui)
                .into_iter()
                .map(|(p, r)| format!("{r}:{p}"))
                .collect();
            let row = format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                c.cui,
                c.name,
                level_name(c.level),
                parents.join(";"),
                c.semantic_types.join(";"),
                if c.noise { "noise" } else { "-" }
            );
            hash = crate::fingerprint::fnv1a(row.as_bytes(), hash);
        }
        crate::fingerprint::hex(hash)
    }
}
