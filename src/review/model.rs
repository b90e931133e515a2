//! The review's own types: the verdicts and blinding a review is made of, its images, models and
//! concepts, and its errors. Below `store` and the rest of the review app, which all use them
//! (re-exported by `review`).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sample::Strategy;
use crate::data::dataset::DatasetError;
use crate::data::labels::LabelError;
use crate::ontology::{Level, OntologyError};

/// Errors of the review app; each names the file, id, CUI or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Images(#[from] DatasetError),
    #[error(transparent)]
    Ontology(#[from] OntologyError),
    /// A malformed line of an input file (an `--explain` file, MRCONSO.RRF).
    #[error("{}:{line}: {message}", path.display())]
    Input { path: PathBuf, line: usize, message: String },
    /// Input files that do not fit together (an `--explain` file of another prediction file, the
    /// same prediction file twice, no image predicted by every model).
    #[error("{}: {message}", path.display())]
    Mismatch { path: PathBuf, message: String },
    /// An image of the review without an image file.
    #[error("no image for id '{id}' in {} (looked for {id}.jpg, .jpeg, .png in any case){more}", dir.display())]
    MissingImage { id: String, dir: PathBuf, more: String },
    /// An option out of range, or options that cannot go together.
    #[error("--{option}: {message}")]
    Option { option: &'static str, message: String },
    /// The database holds another review than the options describe.
    #[error("{}: {message}", db.display())]
    OtherReview { db: PathBuf, message: String },
    /// The file is not a review database (another SQLite file, another file, a newer schema).
    #[error("{} is not a conceptree review database: {message}", db.display())]
    NotADatabase { db: PathBuf, message: String },
    /// The database holds no review yet, and the options cannot start one.
    #[error("{} holds no review yet: give --images and at least one --pred to start one", db.display())]
    NoReview { db: PathBuf },
    /// A request named an image that is not in the review set.
    #[error("image '{id}' is not in this review")]
    UnknownImage { id: String },
    /// A verdict on a concept that no model predicted for the image.
    #[error("{cui} is not a concept predicted for image '{image}'")]
    NotPredicted { image: String, cui: String },
    /// A missing term given by a CUI the ontology does not hold.
    #[error("concept {cui} is not in the ontology (add it as free text instead)")]
    UnknownCui { cui: String },
    /// A missing term to remove that is not there.
    #[error("image '{image}' has no missing term {term} of this reviewer")]
    UnknownTerm { image: String, term: i64 },
    /// A field of a request that is not valid.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A request id used again for a different action.
    #[error("request id '{request_id}' was already used for a different action")]
    ReusedRequest { request_id: String },
    /// SQLite failed (disk full, I/O error, a bug).
    #[error("review database {}: {source}", db.display())]
    Db { db: PathBuf, source: rusqlite::Error },
    /// Reading an input file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Writing an output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The web server failed.
    #[error("web server: {0}")]
    Serve(std::io::Error),
}

impl ReviewError {
    pub(super) fn read(path: &Path) -> impl FnOnce(std::io::Error) -> ReviewError + '_ {
        move |source| ReviewError::Read { path: path.to_path_buf(), source }
    }
    pub(super) fn write(path: &Path) -> impl FnOnce(std::io::Error) -> ReviewError + '_ {
        move |source| ReviewError::Write { path: path.to_path_buf(), source }
    }
}

/// A reviewer's judgement of one predicted concept on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The concept is clinically right for the image.
    Correct,
    /// The concept is wrong for the image.
    Wrong,
    /// The reviewer cannot tell from the image.
    Unsure,
}

impl Verdict {
    /// Every verdict, in the order of the report's columns.
    pub const ALL: [Verdict; 3] = [Verdict::Correct, Verdict::Wrong, Verdict::Unsure];

    /// `"correct"`, `"wrong"` or `"unsure"`, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::Wrong => "wrong",
            Verdict::Unsure => "unsure",
        }
    }

    /// The verdict named `s` (exactly as [`Verdict::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How the concepts of several models are shown for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BlindMode {
    /// One model's concepts at a time, as "set 1", "set 2", in an order drawn per image.
    Sets,
    /// The union of the models' concepts in one list, unattributed (no scores shown).
    Union,
}

impl BlindMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BlindMode::Sets => "sets",
            BlindMode::Union => "union",
        }
    }
    pub(super) fn parse(s: &str) -> Option<BlindMode> {
        [BlindMode::Sets, BlindMode::Union].into_iter().find(|b| b.as_str() == s)
    }
}

/// A model of the review: its prediction file, by content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name the report uses (the file's stem; never shown while reviewing).
    pub label: String,
    /// The prediction file as given (absolute).
    pub path: String,
    /// SHA-256 of the prediction file's bytes.
    pub sha256: String,
    /// The `--explain` file whose scores were stored, and its SHA-256.
    pub explain_path: Option<String>,
    pub explain_sha256: Option<String>,
}

/// Name and level of a concept, as the ontology had them when the review was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptInfo {
    /// `None`: the CUI is not in the ontology.
    pub name: Option<String>,
    pub level: Option<Level>,
}

/// One image of the review.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Place in the review order (0-based).
    pub position: usize,
    pub id: String,
    /// Model indices in the order their sets are shown ("set 1" first).
    pub shown: Vec<usize>,
    /// Per model index: the predicted concepts and their probabilities (when an explain file was given).
    pub predicted: Vec<BTreeMap<String, Option<f32>>>,
    /// Ground-truth concepts (empty when none was given or the image is not in it).
    pub truth: BTreeSet<String>,
    /// What the stratified sample grouped the image by.
    pub stratum: String,
}

impl Item {
    /// Every concept any model predicted for the image: what the reviewer judges.
    pub fn concepts(&self) -> BTreeSet<&str> {
        self.predicted.iter().flat_map(|m| m.keys().map(String::as_str)).collect()
    }
}

/// How the review was made: enough to make it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewMeta {
    pub created: String,
    pub tool: String,
    pub strategy: Strategy,
    pub seed: u64,
    /// `--sample` (None: every candidate image).
    pub sample: Option<usize>,
    /// Images predicted by every model: what the sample was drawn from.
    pub candidates: usize,
    pub blind: BlindMode,
    pub images_dir: String,
    pub truth_path: Option<String>,
    pub truth_sha256: Option<String>,
    /// The ontology file (or "built-in") and its content hash.
    pub ontology: String,
    pub ontology_hash: String,
}

/// A review: its inputs, the sampled images in review order, and the concepts' names and levels.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewSet {
    pub meta: ReviewMeta,
    pub models: Vec<ModelInfo>,
    pub items: Vec<Item>,
    pub concepts: BTreeMap<String, ConceptInfo>,
    by_id: HashMap<String, usize>,
}

impl ReviewSet {
    /// The review from its parts (the index by id is built here).
    pub fn new(meta: ReviewMeta, models: Vec<ModelInfo>, items: Vec<Item>, concepts: BTreeMap<String, ConceptInfo>) -> ReviewSet {
        let by_id = items.iter().map(|it| (it.id.clone(), it.position)).collect();
        ReviewSet { meta, models, items, concepts, by_id }
    }

    /// The image `id`, if it is in the review.
    pub fn item(&self, id: &str) -> Option<&Item> {
        self.by_id.get(id).map(|&i| &self.items[i])
    }

    /// Whether a ground-truth file was given.
    pub(crate) fn has_truth(&self) -> bool {
        self.meta.truth_sha256.is_some()
    }

    /// The name of `cui` (or a placeholder when the ontology lacks it).
    pub fn name(&self, cui: &str) -> String {
        self.concepts.get(cui).and_then(|c| c.name.clone()).unwrap_or_else(|| "(not in the ontology)".into())
    }

    /// The level of `cui`, if it has one.
    pub fn level(&self, cui: &str) -> Option<Level> {
        self.concepts.get(cui).and_then(|c| c.level)
    }
}
