//! The ontology's vocabulary: a [`Concept`], the [`Level`] it may sit on in a per-level model,
//! and the [`Relation`] of a child -> parent edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a concept sits in a per-level model. Serialized and parsed as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Imaging modality (CT, MRI, plain x-ray, ...): at most one chain per image.
    Modality,
    /// Body region or organ.
    Anatomy,
    /// Left / right / bilateral.
    Laterality,
    /// Cross-sectional scan plane (axial, coronal, sagittal).
    Plane,
    /// Projection view of radiography (PA, AP, lateral, oblique).
    View,
    /// Acquisition technique (contrast, tomography, ...).
    Technique,
    /// Finding, disease or lesion.
    Finding,
}

impl Level {
    /// Every level, in the canonical order used for heads, reports and tie-breaking.
    pub const ALL: [Level; 7] = [
        Level::Modality,
        Level::Anatomy,
        Level::Laterality,
        Level::Plane,
        Level::View,
        Level::Technique,
        Level::Finding,
    ];

    /// The lowercase name (`"modality"`, ...), as in files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Modality => "modality",
            Level::Anatomy => "anatomy",
            Level::Laterality => "laterality",
            Level::Plane => "plane",
            Level::View => "view",
            Level::Technique => "technique",
            Level::Finding => "finding",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level '{0}' (expected one of modality, anatomy, laterality, plane, view, technique, finding)")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| ParseLevelError(crate::cui::excerpt(s, crate::cui::EXCERPT)))
    }
}

/// The kind of a child -> parent edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The child is a kind of the parent (UMLS `isa`).
    IsA,
    /// The child is a part of the parent (UMLS `part_of`).
    PartOf,
}

impl Relation {
    /// `"is_a"` or `"part_of"`, as in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::IsA => "is_a",
            Relation::PartOf => "part_of",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Relation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "is_a" => Ok(Relation::IsA),
            "part_of" => Ok(Relation::PartOf),
            other => Err(format!(
                "unknown relation '{other}' (expected is_a or part_of)"
            )),
        }
    }
}

/// One UMLS concept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concept {
    /// UMLS concept unique identifier, `C` + seven digits.
    pub cui: String,
    /// UMLS preferred name.
    pub name: String,
    /// UMLS semantic types (TUIs, e.g. `T060`), possibly empty.
    pub semantic_types: Vec<String>,
    /// Curated level; `None` when the source gives none (see [`Ontology::level_of`](super::Ontology::level_of)).
    pub level: Option<Level>,
    /// Known label noise in ImageCLEF/ROCO annotations.
    pub noise: bool,
}
