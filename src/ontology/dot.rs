//! Graphviz DOT export of the ontology or a part of it.
//!
//! Nodes are labelled `CUI\nname` and filled with one colour per level (white: no level; grey
//! text: noise-flagged); edges point from child to parent, drawn bottom-to-top, part_of dashed.
//! Render with `dot -Tsvg ontology.dot > ontology.svg`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::concept::{Level, Relation};
use super::error::OntologyError;
use super::graph::Ontology;

/// Fill colour of a level (Graphviz colour names; ColorBrewer Set3-like pastels).
fn level_colour(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Modality) => "#8dd3c7",
        Some(Level::Anatomy) => "#ffffb3",
        Some(Level::Laterality) => "#bebada",
        Some(Level::Plane) => "#fb8072",
        Some(Level::View) => "#80b1d3",
        Some(Level::Technique) => "#fdb462",
        Some(Level::Finding) => "#b3de69",
        None => "#ffffff",
    }
}

/// Escapes a string for a double-quoted DOT id or label.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Ontology {
    /// DOT text of the whole ontology, or of `root` and its descendants, optionally only the
    /// concepts of one `level`; only edges between drawn concepts are drawn. Fails with
    /// [`OntologyError::UnknownCui`] if `root` is not in the ontology.
    pub fn to_dot(
        &self,
        root: Option<&str>,
        level: Option<Level>,
    ) -> Result<String, OntologyError> {
        let mut cuis: BTreeSet<String> = match root {
            Some(r) => {
                if !self.contains(r) {
                    return Err(OntologyError::UnknownCui { cui: r.to_string() });
                }
                let mut set = self.descendants(r);
                set.insert(r.to_string());
                set
            }
            None => self.concepts().map(|c| c.cui.clone()).collect(),
        };
        if let Some(l) = level {
            cuis.retain(|c| self.level_of(c) == Some(l));
        }
        let mut out = String::from("digraph ontology {\n  rankdir=BT;\n");
        out.push_str(
            "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n",
        );
        for cui in &cuis {
            let Some(c) = self.get(cui) else { continue };
            let font = if c.noise {
                ", fontcolor=\"#888888\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\", fillcolor=\"{}\"{}];",
                escape(cui),
                escape(cui),
                escape(&c.name),
                level_colour(self.level_of(cui)),
                font
            );
        }
        for cui in &cuis {
            for (parent, relation) in self.parents(cui) {
                if !cuis.contains(parent) {
                    continue;
                }
                let style = match relation {
                    Relation::IsA => "",
                    Relation::PartOf => " [style=dashed]",
                };
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\"{};",
                    escape(cui),
                    escape(parent),
                    style
                );
            }
        }
        out.push_str("}\n");
        Ok(out)
    }
}

/// Write `dot` to `out`: as DOT text for `.dot`/`.gv`, else rendered by Graphviz's `dot` program
/// in the format the extension names (`.svg`, `.png`, `.pdf`, ...).
pub fn write_dot(dot: &str, out: &std::path::Path) -> Result<(), OntologyError> {
    use std::io::Write as _;
    let io = |source| OntologyError::Io { path: out.to_path_buf(), source };
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("dot").to_ascii_lowercase();
    if ext == "dot" || ext == "gv" {
        return std::fs::write(out, dot).map_err(io);
    }
    let mut child = std::process::Command::new("dot")
        .arg(format!("-T{ext}"))
        .arg("-o")
        .arg(out)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| OntologyError::Graphviz(format!("rendering .{ext} needs Graphviz's `dot` program on PATH ({e}); write --out FILE.dot instead")))?;
    child.stdin.take().expect("piped").write_all(dot.as_bytes()).map_err(io)?;
    let done = child.wait_with_output().map_err(io)?;
    if !done.status.success() {
        let why = String::from_utf8_lossy(&done.stderr);
        return Err(OntologyError::Graphviz(format!("Graphviz `dot -T{ext}` failed ({}): {}", done.status, why.trim())));
    }
    Ok(())
}
