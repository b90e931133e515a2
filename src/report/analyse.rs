//! Per-level error analysis of a submission: what kind of mistake each image gets, confusion
//! tables of the single-label levels, sample tables with thumbnails (in the style of Table 5 of
//! the seed paper, ImageCLEF 2019 concept detection), threshold curves, and the figures behind
//! the HTML/Markdown report ([`crate::report::html`]).
//!
//! Pure Rust on plain data (`id -> CUI set` maps, [`LabelMap`]) plus the [`Ontology`]; the
//! metrics themselves come from [`crate::eval::metrics::evaluate`] with
//! [`crate::eval::ontology_hooks`], so the headline figures are the ones `conceptree evaluate`
//! prints.
//!
//! # Which images are analysed
//!
//! The scored images of the metrics: ground-truth (GT) images with a non-empty GT. A scored
//! image absent from the predictions is analysed as an empty prediction (and flagged
//! `missing_prediction`). CUIs are compared upper-cased.
//!
//! # Error kinds and their precedence
//!
//! Each image gets exactly one [`ErrorKind`]: the first rule below that holds. `G` is the GT set,
//! `P` the predicted set, `G_L`/`P_L` their concepts on level `L` ([`Ontology::level_of`]). The
//! rules follow the levels a reader checks first (modality, then anatomy, then side), and each
//! later level's rule requires the earlier levels to be exactly right, so an image is never
//! listed under a level error while an earlier level is also wrong (that image is `wrong_modality`,
//! `incoherent`, `missed_concept` or `mixed`). [`ErrorKind::description`] states each rule in
//! words for the report; the two must say the same (a test checks every image against the
//! words).
//!
//! 1. `correct`: `P = G`.
//! 2. `wrong_modality`: the modality is *replaced*: some concept of `G_modality` is not
//!    predicted **and** some concept of `P_modality` is not in `G` (CT read as MRI; a wrong
//!    sub-modality counts too). Only missing the modality, or only adding one, is not this kind.
//! 3. `wrong_anatomy`: `P_modality = G_modality`, and the same replacement test holds on the
//!    anatomy level.
//! 4. `laterality_flipped`: `P_modality = G_modality`, `P_anatomy = G_anatomy`, and `G` has Left
//!    (C0205091) but not Right (C0205090) while `P` has Right but not Left, or the mirror case.
//! 5. `incoherent`: `P` is not coherent per [`crate::eval::is_coherent_within`] against the GT
//!    vocabulary (two modalities not in one chain, or a concept without one of its ancestors
//!    that occur in the GT), while `G` is coherent (so the fault is the model's, not the
//!    labels'). This comes before extra/missed because an incoherent superset or subset is a
//!    structural error the hierarchical decoder is meant to rule out, and would otherwise be
//!    hidden among them. (An empty `P` is coherent.)
//! 6. `extra_concept`: `P ⊋ G`: everything in the truth is predicted, plus something more.
//! 7. `missed_concept`: `P ⊊ G`: nothing wrong is predicted, something is missing (an empty or
//!    missing prediction lands here).
//! 8. `mixed`: anything else: both missing and extra concepts, and no rule above holds (e.g. a
//!    wrong plane or view, or a missed modality together with a wrong anatomy or side).
//!
//! Independently of the kind, every image records `first_wrong_level`: the first level in
//! [`Level::ALL`] order (modality, anatomy, laterality, plane, view, technique, finding) on which
//! `P_L ≠ G_L`, or `"unleveled"` when only CUIs without a level differ.
//!
//! # Confusion tables
//!
//! For every level on which each scored GT image names at most one concept once ancestors are
//! set aside (its *leaf* on that level: a concept of the level that is no ancestor of another
//! one of the level in the set), and at least one image names one: rows are the GT leaf or
//! [`NONE`], columns the predicted leaf, [`NONE`], or [`SEVERAL`] when the prediction names more
//! than one leaf on that level. Every scored image is counted once per table.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::eval::metrics::{self, EvalHooks, EvalReport, LabelMap};
use crate::eval::{is_coherent_within, ontology_hooks, thresholds};
use crate::ontology::{Level, Ontology};

/// Left (laterality).
pub const LEFT: &str = "C0205091";
/// Right (laterality).
pub const RIGHT: &str = "C0205090";
/// Confusion-table key for "no concept on this level".
pub(crate) const NONE: &str = "none";
/// Confusion-table column for "more than one leaf concept predicted on this level".
pub(crate) const SEVERAL: &str = "several";
/// `first_wrong_level` when only CUIs without a level differ.
pub(crate) const UNLEVELED: &str = "unleveled";

/// Per-concept scores of one image: `id -> (CUI -> probability in [0, 1])`.
pub(crate) type ScoreMap = BTreeMap<String, BTreeMap<String, f32>>;

/// Errors of the analysis and of writing its report. Each names the file (and line) at fault.
#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A malformed line in a scores file (format: `id<TAB>CUI:p;CUI:p`).
    #[error("{}:{line}: {message}", path.display())]
    Scores { path: PathBuf, line: usize, message: String },
    /// A report file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// An invalid [`AnalyseConfig`].
    #[error("invalid analysis settings: {0}")]
    Config(String),
}

impl AnalyseError {
    /// True when the error is the user's input (bad scores file or settings): exit code 2.
    pub(crate) fn is_bad_input(&self) -> bool {
        matches!(self, AnalyseError::Scores { .. } | AnalyseError::Config(_) | AnalyseError::Read { .. })
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Settings of [`analyse`]. Serde-friendly; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyseConfig {
    /// Example images per error kind in the sample table (default 3; 0 = no sample table).
    pub samples_per_kind: usize,
    /// Longest side of a thumbnail in pixels (default 128, 16..=1024). Images are scaled up or
    /// down to it, keeping their aspect ratio, and embedded as JPEG.
    pub thumbnail_px: u32,
    /// Directory holding `<id>.jpg|jpeg|png` for the thumbnails (default none: placeholders).
    pub images: Option<PathBuf>,
    /// Global thresholds of the threshold curve (default 0.05, 0.10, ..., 0.95; each in [0, 1]).
    pub grid: Vec<f32>,
}

impl Default for AnalyseConfig {
    fn default() -> Self {
        AnalyseConfig { samples_per_kind: 3, thumbnail_px: 128, images: None, grid: thresholds::default_grid() }
    }
}

impl AnalyseConfig {
    /// Checks the settings before any work starts.
    pub fn validate(&self) -> Result<(), AnalyseError> {
        if !(16..=1024).contains(&self.thumbnail_px) {
            return Err(AnalyseError::Config(format!("thumbnail size {} px is outside 16..=1024", self.thumbnail_px)));
        }
        if self.grid.is_empty() || self.grid.iter().any(|t| !(0.0..=1.0).contains(t)) {
            return Err(AnalyseError::Config("the threshold grid must be non-empty with values in [0, 1]".into()));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Error kinds

/// The first way an image's prediction goes wrong (see the module docs for the precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Correct,
    WrongModality,
    WrongAnatomy,
    LateralityFlipped,
    Incoherent,
    ExtraConcept,
    MissedConcept,
    Mixed,
}

impl ErrorKind {
    /// Every kind, in precedence order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Correct,
        ErrorKind::WrongModality,
        ErrorKind::WrongAnatomy,
        ErrorKind::LateralityFlipped,
        ErrorKind::Incoherent,
        ErrorKind::ExtraConcept,
        ErrorKind::MissedConcept,
        ErrorKind::Mixed,
    ];

    /// The snake_case name, as in JSON (`"wrong_modality"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Correct => "correct",
            ErrorKind::WrongModality => "wrong_modality",
            ErrorKind::WrongAnatomy => "wrong_anatomy",
            ErrorKind::LateralityFlipped => "laterality_flipped",
            ErrorKind::Incoherent => "incoherent",
            ErrorKind::ExtraConcept => "extra_concept",
            ErrorKind::MissedConcept => "missed_concept",
            ErrorKind::Mixed => "mixed",
        }
    }

    /// A human title (`"Wrong modality"`).
    pub(crate) fn title(self) -> &'static str {
        match self {
            ErrorKind::Correct => "Correct",
            ErrorKind::WrongModality => "Wrong modality",
            ErrorKind::WrongAnatomy => "Wrong anatomy",
            ErrorKind::LateralityFlipped => "Laterality flipped",
            ErrorKind::Incoherent => "Incoherent set",
            ErrorKind::ExtraConcept => "Extra concept",
            ErrorKind::MissedConcept => "Missed concept",
            ErrorKind::Mixed => "Mixed",
        }
    }

    /// The kind's rule in plain words, as shown in the report. Each image counts under the
    /// first kind (in [`ErrorKind::ALL`] order) whose rule holds; [`classify`] implements
    /// exactly these words.
    pub fn description(self) -> &'static str {
        match self {
            ErrorKind::Correct => "the prediction equals the ground truth",
            ErrorKind::WrongModality => {
                "a ground-truth modality concept is not predicted and another modality concept is predicted instead \
                 (e.g. CT read as MRI; a wrong sub-type of the modality counts too)"
            }
            ErrorKind::WrongAnatomy => {
                "the modality concepts match the ground truth exactly, but a ground-truth anatomy concept is not \
                 predicted and another anatomy concept is predicted instead"
            }
            ErrorKind::LateralityFlipped => {
                "the modality and anatomy concepts match the ground truth exactly, and the ground truth says left \
                 (not right) while the prediction says right (not left), or the reverse"
            }
            ErrorKind::Incoherent => {
                "the prediction contradicts the ontology while the ground truth does not: two modalities of which \
                 neither is a sub-type of the other, or a concept without one of its broader concepts (counting the \
                 broader concepts that occur anywhere in the ground truth)"
            }
            ErrorKind::ExtraConcept => "everything in the ground truth is predicted, plus something more",
            ErrorKind::MissedConcept => {
                "nothing wrong is predicted, but some ground-truth concept is missing (including an empty or missing \
                 prediction)"
            }
            ErrorKind::Mixed => {
                "some ground-truth concepts are missed and some wrong ones predicted, and no rule above applies \
                 (e.g. a wrong plane or view, or a missed modality together with a wrong anatomy or side)"
            }
        }
    }
}

fn on_level<'a>(ontology: &Ontology, set: &'a BTreeSet<String>, level: Level) -> BTreeSet<&'a String> {
    set.iter().filter(|c| ontology.level_of(c) == Some(level)).collect()
}

/// Some GT concept of the level is not predicted and some predicted concept of it is not in GT.
fn replaced(ontology: &Ontology, gt: &BTreeSet<String>, pred: &BTreeSet<String>, level: Level) -> bool {
    let g = on_level(ontology, gt, level);
    let p = on_level(ontology, pred, level);
    g.difference(&p).next().is_some() && p.difference(&g).next().is_some()
}

fn flipped(gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> bool {
    let one_way = |a: &str, b: &str| gt.contains(a) && !gt.contains(b) && pred.contains(b) && !pred.contains(a);
    one_way(LEFT, RIGHT) || one_way(RIGHT, LEFT)
}

fn same_on_level(ontology: &Ontology, gt: &BTreeSet<String>, pred: &BTreeSet<String>, level: Level) -> bool {
    on_level(ontology, gt, level) == on_level(ontology, pred, level)
}

/// The [`ErrorKind`] of one image (upper-cased sets); `vocab` is the GT vocabulary used for the
/// coherence test. See the module docs for the rules and their order.
pub fn classify(ontology: &Ontology, vocab: &BTreeSet<String>, gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> ErrorKind {
    if gt == pred {
        return ErrorKind::Correct;
    }
    if replaced(ontology, gt, pred, Level::Modality) {
        return ErrorKind::WrongModality;
    }
    let modality_right = same_on_level(ontology, gt, pred, Level::Modality);
    if modality_right && replaced(ontology, gt, pred, Level::Anatomy) {
        return ErrorKind::WrongAnatomy;
    }
    if modality_right && same_on_level(ontology, gt, pred, Level::Anatomy) && flipped(gt, pred) {
        return ErrorKind::LateralityFlipped;
    }
    if !is_coherent_within(ontology, pred, vocab) && is_coherent_within(ontology, gt, vocab) {
        return ErrorKind::Incoherent;
    }
    if pred.is_superset(gt) {
        return ErrorKind::ExtraConcept;
    }
    if pred.is_subset(gt) {
        return ErrorKind::MissedConcept;
    }
    ErrorKind::Mixed
}

/// The first level (in [`Level::ALL`] order) on which the sets differ; [`UNLEVELED`] when only
/// CUIs without a level differ; `None` when the sets are equal.
pub fn first_wrong_level(ontology: &Ontology, gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> Option<String> {
    if gt == pred {
        return None;
    }
    Level::ALL
        .into_iter()
        .find(|&l| on_level(ontology, gt, l) != on_level(ontology, pred, l))
        .map(|l| l.to_string())
        .or_else(|| Some(UNLEVELED.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Confusion tables

/// The leaf concepts of `set` on `level`: those that are no ancestor of another concept of the
/// level in the set. Sorted.
pub(crate) fn level_leaves<'a>(ontology: &Ontology, set: &'a BTreeSet<String>, level: Level) -> Vec<&'a str> {
    let at = on_level(ontology, set, level);
    let covered: BTreeSet<String> = at.iter().flat_map(|c| ontology.ancestors(c)).collect();
    at.into_iter().filter(|c| !covered.contains(c.as_str())).map(|c| c.as_str()).collect()
}

/// Counts of GT leaf (row) against predicted leaf (column) on one single-label level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    /// Level name (`"modality"`, ...).
    pub level: String,
    /// Row keys: GT CUIs (sorted), then [`NONE`] if any image has no GT concept on the level.
    pub rows: Vec<String>,
    /// Column keys: the row CUIs in the same order, then other predicted CUIs (sorted), then
    /// [`NONE`] and [`SEVERAL`] where used.
    pub cols: Vec<String>,
    /// `counts[r][c]`: images with GT `rows[r]` and prediction `cols[c]`.
    pub counts: Vec<Vec<usize>>,
    /// Images counted (every scored image).
    pub n_images: usize,
    /// Images on the diagonal (same key, [`NONE`]/[`NONE`] included).
    pub n_agree: usize,
}

impl Confusion {
    /// Share of images on the diagonal; 0 with no image.
    pub(crate) fn accuracy(&self) -> f64 {
        if self.n_images == 0 {
            0.0
        } else {
            self.n_agree as f64 / self.n_images as f64
        }
    }
}

/// Confusion tables of every single-label level (see the module docs), in [`Level::ALL`] order,
/// over `pairs` of (GT, prediction) of the scored images.
pub(crate) fn confusion_tables(ontology: &Ontology, pairs: &[(&BTreeSet<String>, &BTreeSet<String>)]) -> Vec<Confusion> {
    let mut out = Vec::new();
    for level in Level::ALL {
        let gt_leaves: Vec<Vec<&str>> = pairs.iter().map(|(g, _)| level_leaves(ontology, g, level)).collect();
        if gt_leaves.iter().any(|l| l.len() > 1) || gt_leaves.iter().all(|l| l.is_empty()) {
            continue;
        }
        let cells: Vec<(String, String)> = pairs
            .iter()
            .zip(&gt_leaves)
            .map(|((_, p), g)| {
                let row = g.first().map_or(NONE.to_string(), |c| c.to_string());
                let pl = level_leaves(ontology, p, level);
                let col = match pl.len() {
                    0 => NONE.to_string(),
                    1 => pl[0].to_string(),
                    _ => SEVERAL.to_string(),
                };
                (row, col)
            })
            .collect();
        let row_cuis: BTreeSet<&str> = cells.iter().map(|c| c.0.as_str()).filter(|r| *r != NONE).collect();
        let other_cols: BTreeSet<&str> =
            cells.iter().map(|c| c.1.as_str()).filter(|c| *c != NONE && *c != SEVERAL && !row_cuis.contains(c)).collect();
        let mut rows: Vec<String> = row_cuis.iter().map(|s| s.to_string()).collect();
        if cells.iter().any(|c| c.0 == NONE) {
            rows.push(NONE.to_string());
        }
        let mut cols: Vec<String> = row_cuis.iter().chain(&other_cols).map(|s| s.to_string()).collect();
        cols.push(NONE.to_string());
        if cells.iter().any(|c| c.1 == SEVERAL) {
            cols.push(SEVERAL.to_string());
        }
        let mut counts = vec![vec![0usize; cols.len()]; rows.len()];
        let mut n_agree = 0;
        for (r, c) in &cells {
            let ri = rows.iter().position(|x| x == r).expect("row key listed");
            let ci = cols.iter().position(|x| x == c).expect("column key listed");
            counts[ri][ci] += 1;
            if r == c {
                n_agree += 1;
            }
        }
        out.push(Confusion { level: level.to_string(), rows, cols, counts, n_images: cells.len(), n_agree });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scores file and threshold curve

/// Parses a scores file: one line per image, `id<TAB>CUI:p;CUI:p;...` with `p` in [0, 1]
/// (an empty list after the tab is allowed), or `predict --explain` output (JSON lines; see
/// `parse_explain_scores`). Blank lines and lines starting with `#` are
/// skipped. CUIs are upper-cased. A repeated id or a repeated CUI within a line is an error, as
/// is a missing tab, a pair without `:`, or a probability that is not a number in [0, 1].
pub(crate) fn parse_scores(text: &str, path: &Path) -> Result<ScoreMap, AnalyseError> {
    let err = |line: usize, message: String| AnalyseError::Scores { path: path.to_path_buf(), line, message };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        return parse_explain_scores(text, path);
    }
    let mut out = ScoreMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let (id, rest) = l.split_once('\t').ok_or_else(|| err(line, "expected `id<TAB>CUI:p;CUI:p`, found no tab".into()))?;
        let id = id.trim();
        if id.is_empty() {
            return Err(err(line, "empty image id".into()));
        }
        let mut scores = BTreeMap::new();
        for pair in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (cui, p) = pair.rsplit_once(':').ok_or_else(|| err(line, format!("'{pair}' is not CUI:probability")))?;
            let cui = cui.trim().to_uppercase();
            if cui.is_empty() {
                return Err(err(line, format!("'{pair}' has an empty concept")));
            }
            let p: f32 = p.trim().parse().map_err(|_| err(line, format!("'{pair}': '{}' is not a number", p.trim())))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(err(line, format!("'{pair}': probability {p} is outside [0, 1]")));
            }
            if scores.insert(cui.clone(), p).is_some() {
                return Err(err(line, format!("image '{id}' scores concept {cui} more than once")));
            }
        }
        if out.insert(id.to_string(), scores).is_some() {
            return Err(err(line, format!("image id '{id}' is given more than once")));
        }
    }
    Ok(out)
}

/// Scores from `predict --explain` output (one JSON record per line): each concept's decision
/// score, the value the decoder compares with the concept's threshold (the probability, capped by
/// the hierarchy, 0 for the concepts a single-label level did not choose); the probabilities when
/// a record has no decisions.
fn parse_explain_scores(text: &str, path: &Path) -> Result<ScoreMap, AnalyseError> {
    #[derive(serde::Deserialize)]
    struct Decision {
        cui: String,
        score: f32,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        id: String,
        #[serde(default)]
        scores: BTreeMap<String, f32>,
        #[serde(default)]
        decisions: Vec<Decision>,
    }
    let err = |line: usize, message: String| AnalyseError::Scores { path: path.to_path_buf(), line, message };
    let mut out = ScoreMap::new();
    for (i, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let r: Record = serde_json::from_str(raw).map_err(|e| err(i + 1, format!("not a `predict --explain` record: {e}")))?;
        let scores: BTreeMap<String, f32> =
            if r.decisions.is_empty() { r.scores.into_iter().map(|(c, p)| (c.to_uppercase(), p)).collect() } else { r.decisions.into_iter().map(|d| (d.cui.to_uppercase(), d.score)).collect() };
        if let Some((c, p)) = scores.iter().find(|(_, p)| !(0.0..=1.0).contains(*p)) {
            return Err(err(i + 1, format!("concept {c}: score {p} is outside [0, 1]")));
        }
        if out.insert(r.id.clone(), scores).is_some() {
            return Err(err(i + 1, format!("image id '{}' is given more than once", r.id)));
        }
    }
    Ok(out)
}

/// Reads and parses a scores file ([`parse_scores`]).
pub fn read_scores(path: &Path) -> Result<ScoreMap, AnalyseError> {
    let text = crate::text::read_text(path).map_err(|source| match crate::text::text_error(&source) {
        Some(t) => AnalyseError::Scores { path: path.to_path_buf(), line: t.line, message: t.problem.to_string() },
        None => AnalyseError::Read { path: path.to_path_buf(), source },
    })?;
    parse_scores(&text, path)
}

/// F1 at one global threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdPoint {
    pub threshold: f32,
    /// Official ImageCLEF F1 of the sets `{c : p(c) >= threshold}`.
    pub imageclef_f1: f64,
    /// Per-level F1 at this threshold.
    pub per_level_f1: BTreeMap<String, f64>,
}

/// ImageCLEF and per-level F1 against one global threshold (from a scores file).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdCurve {
    pub points: Vec<ThresholdPoint>,
    /// Grid threshold with the best ImageCLEF F1 (the lowest on ties).
    pub best_threshold: f32,
    pub best_f1: f64,
    /// Scored GT images with no line in the scores file (scored as empty predictions).
    pub n_images_without_scores: usize,
    /// Lines of the scores file whose id is not a GT image (ignored).
    pub n_scores_not_in_gt: usize,
}

/// The threshold curve of `scores` against `gt` (upper-cased) over `grid` (sorted ascending,
/// duplicates removed). Decisions are `p >= threshold`, as in [`thresholds::decide`].
pub fn threshold_curve(gt: &LabelMap, scores: &ScoreMap, ontology: &Ontology, grid: &[f32]) -> ThresholdCurve {
    let mut grid: Vec<f32> = grid.to_vec();
    grid.sort_by(f32::total_cmp);
    grid.dedup();
    let level_of = |c: &str| ontology.level_of(c).map(|l| l.to_string());
    let mut points = Vec::with_capacity(grid.len());
    for &t in &grid {
        let pred: LabelMap = scores
            .iter()
            .filter(|(id, _)| gt.contains_key(*id))
            .map(|(id, s)| (id.clone(), s.iter().filter(|&(_, &p)| p >= t).map(|(c, _)| c.clone()).collect()))
            .collect();
        let hooks = EvalHooks { level_of: Some(Box::new(level_of)), ..Default::default() };
        let r = metrics::evaluate(gt, &pred, &hooks);
        points.push(ThresholdPoint {
            threshold: t,
            imageclef_f1: r.imageclef_f1,
            per_level_f1: r.per_level.iter().map(|(l, s)| (l.clone(), s.f1)).collect(),
        });
    }
    let (best_threshold, best_f1) = points
        .iter()
        .fold((grid.first().copied().unwrap_or(0.5), f64::NEG_INFINITY), |b, p| if p.imageclef_f1 > b.1 { (p.threshold, p.imageclef_f1) } else { b });
    let n_images_without_scores = gt.iter().filter(|(id, g)| !g.is_empty() && !scores.contains_key(*id)).count();
    let n_scores_not_in_gt = scores.keys().filter(|id| !gt.contains_key(*id)).count();
    ThresholdCurve { points, best_threshold, best_f1: best_f1.max(0.0), n_images_without_scores, n_scores_not_in_gt }
}

// ---------------------------------------------------------------------------------------------
// Thumbnails

/// Standard base64 (RFC 4648 alphabet, `=` padding), as `data:` URIs need.
fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The image at `path` scaled (up or down, aspect kept) to `max_side` pixels on its longest side,
/// as a `data:image/jpeg;base64,...` URI (grayscale stays grayscale). `Err` says why not.
pub(crate) fn thumbnail_data_uri(path: &Path, max_side: u32) -> Result<String, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("cannot decode {}: {e}", path.display()))?;
    let small = img.resize(max_side, max_side, image::imageops::FilterType::Triangle);
    let mut buf = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut buf), 85);
    let res = if small.color().has_color() {
        let rgb = small.to_rgb8();
        enc.encode(rgb.as_raw(), rgb.width(), rgb.height(), image::ExtendedColorType::Rgb8)
    } else {
        let l = small.to_luma8();
        enc.encode(l.as_raw(), l.width(), l.height(), image::ExtendedColorType::L8)
    };
    res.map_err(|e| format!("cannot encode a thumbnail of {}: {e}", path.display()))?;
    Ok(format!("data:image/jpeg;base64,{}", base64_encode(&buf)))
}

fn thumbnail_for(images: Option<&Path>, id: &str, max_side: u32) -> Result<String, String> {
    let dir = images.ok_or_else(|| "no images directory given".to_string())?;
    if !dir.is_dir() {
        return Err(format!("images directory {} does not exist", dir.display()));
    }
    let images = crate::data::images::ImageDir::open(dir).map_err(|e| e.to_string())?;
    let path = images.find(id).map_err(|e| e.to_string())?.ok_or_else(|| format!("no image for '{id}' in {}", dir.display()))?;
    thumbnail_data_uri(&path, max_side)
}

// ---------------------------------------------------------------------------------------------
// The analysis

/// Whether a concept of a sample row is in both sets, only the truth, or only the prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// In the truth and predicted.
    Match,
    /// In the truth, not predicted.
    Missed,
    /// Predicted, not in the truth.
    Extra,
}

/// A concept with its name and level, as shown in the sample table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedConcept {
    pub cui: String,
    /// UMLS name from the ontology, or `"(not in ontology)"`.
    pub name: String,
    pub level: Option<String>,
    pub mark: Mark,
}

/// The analysis of one scored image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageResult {
    pub id: String,
    pub kind: ErrorKind,
    /// See [`first_wrong_level`].
    pub first_wrong_level: Option<String>,
    /// The image's ImageCLEF F1.
    pub f1: f64,
    pub matched: Vec<String>,
    pub missed: Vec<String>,
    pub extra: Vec<String>,
    /// The image had no line in the predictions (analysed as an empty prediction).
    pub missing_prediction: bool,
}

/// One row of the sample table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub id: String,
    pub f1: f64,
    /// Ground-truth concepts (marked match or missed), ordered by level, depth, CUI.
    pub gt: Vec<NamedConcept>,
    /// Predicted concepts (marked match or extra), same order.
    pub pred: Vec<NamedConcept>,
    /// Why there is no thumbnail (`None` when there is one).
    pub thumbnail_problem: Option<String>,
    /// `data:image/jpeg;base64,...` (kept out of the JSON).
    #[serde(skip)]
    pub thumbnail: Option<String>,
}

/// Count of one error kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindCount {
    pub kind: ErrorKind,
    pub title: String,
    pub description: String,
    pub count: usize,
    /// Share of the scored images.
    pub share: f64,
}

/// The sample rows of one error kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindSamples {
    pub kind: ErrorKind,
    pub samples: Vec<Sample>,
}

/// Everything the report shows (serialised as `analysis.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Input files etc., as given by the caller (free-form, shown in the report header).
    pub inputs: BTreeMap<String, String>,
    pub config: AnalyseConfig,
    /// The metrics of `conceptree evaluate` (with the ontology hooks).
    pub metrics: EvalReport,
    /// Every kind in precedence order (zeros included).
    pub error_counts: Vec<KindCount>,
    /// One entry per scored image, by id.
    pub images: Vec<ImageResult>,
    pub confusions: Vec<Confusion>,
    /// Per kind in precedence order (every kind, possibly with no sample).
    pub samples: Vec<KindSamples>,
    /// Sample rows without a thumbnail (no images directory, image missing or unreadable).
    pub missing_thumbnails: usize,
    /// `None` without a scores file.
    pub threshold_curve: Option<ThresholdCurve>,
    /// CUI -> name for every CUI of the scored GT and predictions.
    pub names: BTreeMap<String, String>,
    /// Things the reader should know (skipped plots, missing thumbnails, ...).
    pub notes: Vec<String>,
}

impl Analysis {
    /// Count of one kind.
    pub fn count(&self, kind: ErrorKind) -> usize {
        self.error_counts.iter().find(|k| k.kind == kind).map_or(0, |k| k.count)
    }
}

/// Name of a CUI for display.
pub(crate) fn concept_name(ontology: &Ontology, cui: &str) -> String {
    ontology.get(cui).map_or_else(|| "(not in ontology)".to_string(), |c| c.name.clone())
}

fn upper_map(m: &LabelMap) -> LabelMap {
    m.iter().map(|(id, s)| (id.clone(), s.iter().map(|c| c.trim().to_uppercase()).collect())).collect()
}

fn named(ontology: &Ontology, set: &BTreeSet<String>, other: &BTreeSet<String>, miss: Mark) -> Vec<NamedConcept> {
    let rank = |c: &str| ontology.level_of(c).and_then(|l| Level::ALL.iter().position(|x| *x == l)).unwrap_or(Level::ALL.len());
    let mut v: Vec<&String> = set.iter().collect();
    v.sort_by_key(|c| (rank(c), ontology.depth(c).unwrap_or(0), c.to_string()));
    v.into_iter()
        .map(|c| NamedConcept {
            cui: c.clone(),
            name: concept_name(ontology, c),
            level: ontology.level_of(c).map(|l| l.to_string()),
            mark: if other.contains(c) { Mark::Match } else { miss },
        })
        .collect()
}

/// An image the analysis scores (it has ground truth): its id, ground truth, prediction (empty
/// when it has none), and whether the prediction was missing.
type Scored<'a> = (&'a String, &'a BTreeSet<String>, &'a BTreeSet<String>, bool);

/// How many images have each error kind, and their share of all images.
fn error_counts(images: &[ImageResult]) -> Vec<KindCount> {
    let n = images.len();
    ErrorKind::ALL
        .into_iter()
        .map(|k| {
            let count = images.iter().filter(|im| im.kind == k).count();
            KindCount {
                kind: k,
                title: k.title().to_string(),
                description: k.description().to_string(),
                count,
                share: if n == 0 { 0.0 } else { count as f64 / n as f64 },
            }
        })
        .collect()
}

/// The first `cfg.samples_per_kind` images of each error kind with their thumbnails, and how many
/// thumbnails could not be made.
fn samples(ontology: &Ontology, images: &[ImageResult], scored: &[Scored], cfg: &AnalyseConfig) -> (Vec<KindSamples>, usize) {
    let mut missing_thumbnails = 0;
    let mut samples = Vec::new();
    for kind in ErrorKind::ALL {
        let mut rows = Vec::new();
        for (im, s) in images.iter().zip(scored).filter(|(im, _)| im.kind == kind).take(cfg.samples_per_kind) {
            let (thumbnail, thumbnail_problem) = match thumbnail_for(cfg.images.as_deref(), &im.id, cfg.thumbnail_px) {
                Ok(uri) => (Some(uri), None),
                Err(why) => {
                    missing_thumbnails += 1;
                    (None, Some(why))
                }
            };
            rows.push(Sample {
                id: im.id.clone(),
                f1: im.f1,
                gt: named(ontology, s.1, s.2, Mark::Missed),
                pred: named(ontology, s.2, s.1, Mark::Extra),
                thumbnail_problem,
                thumbnail,
            });
        }
        samples.push(KindSamples { kind, samples: rows });
    }
    (samples, missing_thumbnails)
}

/// The name of every concept in the ground truth or predictions of the scored images.
fn concept_names(ontology: &Ontology, scored: &[Scored]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (_, g, p, _) in scored {
        for c in g.iter().chain(p.iter()) {
            names.entry(c.clone()).or_insert_with(|| concept_name(ontology, c));
        }
    }
    names
}

/// What the report says it could not show, and why.
fn notes(has_curve: bool, missing_thumbnails: usize, missing_predictions: usize, no_confusion: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if !has_curve {
        notes.push("Threshold curve skipped: no scores file (per-concept probabilities for each image) was given.".to_string());
    }
    if missing_thumbnails > 0 {
        notes.push(format!("{missing_thumbnails} sample image(s) have no thumbnail; each such row says why."));
    }
    if missing_predictions > 0 {
        notes.push(format!(
            "{} image(s) had no prediction and were analysed as if nothing had been predicted.",
            missing_predictions
        ));
    }
    if no_confusion {
        notes.push("No confusion table: on every level, some image has more than one ground-truth concept.".to_string());
    }
    notes
}

/// Analyses `pred` against `gt` (see the module docs): metrics, error kinds, confusion tables,
/// samples with thumbnails (from `cfg.images`), and the threshold curve when `scores` is given.
/// Problems with images never fail the analysis: they are counted in `missing_thumbnails`.
pub fn analyse(
    gt: &LabelMap,
    pred: &LabelMap,
    ontology: &Ontology,
    scores: Option<&ScoreMap>,
    cfg: &AnalyseConfig,
) -> Result<Analysis, AnalyseError> {
    cfg.validate()?;
    let gt = upper_map(gt);
    let pred = upper_map(pred);
    let vocab: BTreeSet<String> = gt.values().flatten().cloned().collect();
    let metrics = metrics::evaluate(&gt, &pred, &ontology_hooks(ontology, vocab.clone()));

    let empty = BTreeSet::new();
    let scored: Vec<Scored> = gt
        .iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(id, g)| match pred.get(id) {
            Some(p) => (id, g, p, false),
            None => (id, g, &empty, true),
        })
        .collect();

    let images: Vec<ImageResult> = scored
        .iter()
        .map(|&(id, g, p, missing)| ImageResult {
            id: id.clone(),
            kind: classify(ontology, &vocab, g, p),
            first_wrong_level: first_wrong_level(ontology, g, p),
            f1: metrics::per_image_f1(g, p).unwrap_or(0.0),
            matched: g.intersection(p).cloned().collect(),
            missed: g.difference(p).cloned().collect(),
            extra: p.difference(g).cloned().collect(),
            missing_prediction: missing,
        })
        .collect();

    let error_counts = error_counts(&images);
    let pairs: Vec<(&BTreeSet<String>, &BTreeSet<String>)> = scored.iter().map(|s| (s.1, s.2)).collect();
    let confusions = confusion_tables(ontology, &pairs);

    let (samples, missing_thumbnails) = samples(ontology, &images, &scored, cfg);
    let names = concept_names(ontology, &scored);

    let threshold_curve = scores.map(|s| {
        let s: ScoreMap =
            s.iter().map(|(id, m)| (id.clone(), m.iter().map(|(c, p)| (c.to_uppercase(), *p)).collect())).collect();
        threshold_curve(&gt, &s, ontology, &cfg.grid)
    });

    let notes = notes(threshold_curve.is_some(), missing_thumbnails, metrics.skipped.missing_predictions, confusions.is_empty());
    Ok(Analysis {
        inputs: BTreeMap::new(),
        config: cfg.clone(),
        metrics,
        error_counts,
        images,
        confusions,
        samples,
        missing_thumbnails,
        threshold_curve,
        names,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "C0040405";
    const MRI: &str = "C0024485";
    const XR: &str = "C1306645";
    const CHEST: &str = "C0817096";
    const KNEE: &str = "C0022742";
    const HEAD: &str = "C0018670";
    const BRAIN: &str = "C0006104";
    const HN: &str = "C0460004";
    const AXIAL: &str = "C0205131";
    const CORONAL: &str = "C0205123";
    const PNEUMONIA: &str = "C0032285";
    const CT_CONTRAST: &str = "C0742919";
    const CT_CONE_BEAM: &str = "C1956110";

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn vocab() -> BTreeSet<String> {
        set(&[CT, MRI, XR, CHEST, KNEE, HEAD, BRAIN, HN, LEFT, RIGHT, AXIAL, CORONAL, PNEUMONIA, CT_CONTRAST, CT_CONE_BEAM])
    }

    fn kind(gt: &[&str], pred: &[&str]) -> ErrorKind {
        classify(&Ontology::builtin(), &vocab(), &set(gt), &set(pred))
    }

    #[test]
    fn each_kind_by_hand() {
        use ErrorKind::*;
        assert_eq!(kind(&[CT, CHEST], &[CT, CHEST]), Correct);
        assert_eq!(kind(&[CT, CHEST], &[MRI, CHEST]), WrongModality);
        assert_eq!(kind(&[CT, CHEST], &[CT, KNEE]), WrongAnatomy);
        assert_eq!(kind(&[XR, KNEE, LEFT], &[XR, KNEE, RIGHT]), LateralityFlipped);
        // A second modality chain: only extra at modality level, so incoherent.
        assert_eq!(kind(&[CT, CHEST], &[CT, MRI, CHEST]), Incoherent);
        // Brain without head and head-and-neck (both in the vocabulary): incoherent, not missed.
        assert_eq!(kind(&[CT, HN, HEAD, BRAIN], &[CT, BRAIN]), Incoherent);
        assert_eq!(kind(&[CT, CHEST], &[CT, CHEST, AXIAL]), ExtraConcept);
        assert_eq!(kind(&[CT, CHEST, AXIAL], &[CT, CHEST]), MissedConcept);
        assert_eq!(kind(&[CT, CHEST], &[]), MissedConcept);
        // Modality missed (not replaced) plus an extra finding.
        assert_eq!(kind(&[CT, CHEST], &[CHEST, PNEUMONIA]), Mixed);
        assert_eq!(kind(&[CT, CHEST, AXIAL], &[CT, CHEST, CORONAL]), Mixed);
    }

    #[test]
    fn precedence_by_hand() {
        use ErrorKind::*;
        // Modality and anatomy both wrong: modality first.
        assert_eq!(kind(&[CT, CHEST], &[MRI, KNEE]), WrongModality);
        // Anatomy wrong and laterality flipped: anatomy first.
        assert_eq!(kind(&[XR, KNEE, LEFT], &[XR, CHEST, RIGHT]), WrongAnatomy);
        // Sides swapped but a second modality predicted: the modality is not right, so this is
        // not a laterality flip (that kind requires modality and anatomy to match); incoherent.
        assert_eq!(kind(&[XR, KNEE, LEFT], &[XR, CT, KNEE, RIGHT]), Incoherent);
        // Two modalities where one replaces the truth: wrong modality, not incoherent.
        assert_eq!(kind(&[CT, CHEST], &[MRI, XR, CHEST]), WrongModality);
        // Incoherent superset: incoherent before extra.
        assert_eq!(kind(&[CT, CHEST], &[CT, CHEST, BRAIN]), Incoherent);
        // An incoherent GT (brain without head) does not make the prediction's fault.
        assert_eq!(kind(&[CT, BRAIN], &[CT, BRAIN, AXIAL]), ExtraConcept);
        // Left and right both in the truth: dropping one is a miss, not a flip.
        assert_eq!(kind(&[XR, KNEE, LEFT, RIGHT], &[XR, KNEE, RIGHT]), MissedConcept);
    }

    #[test]
    fn level_kinds_need_the_earlier_levels_right() {
        use ErrorKind::*;
        // Anatomy replaced, but the modality missed: not "wrong anatomy" (its rule says the
        // modality matches); both missing and extra concepts, so mixed.
        assert_eq!(kind(&[CT, CHEST], &[KNEE]), Mixed);
        // Anatomy replaced with a second modality predicted: incoherent.
        assert_eq!(kind(&[CT, CHEST], &[CT, MRI, KNEE]), Incoherent);
        // Anatomy replaced with a sub-type of the modality added (coherent): mixed.
        assert_eq!(kind(&[CT, CHEST], &[CT, CT_CONTRAST, KNEE]), Mixed);
        // Sides swapped but the modality missed, or the anatomy missed, or the anatomy extended.
        assert_eq!(kind(&[XR, KNEE, LEFT], &[KNEE, RIGHT]), Mixed);
        assert_eq!(kind(&[XR, KNEE, LEFT], &[XR, RIGHT]), Mixed);
        assert_eq!(kind(&[XR, KNEE, LEFT], &[XR, KNEE, CHEST, RIGHT]), Mixed);
        // Sides swapped with everything else right, plus an extra finding: still a flip.
        assert_eq!(kind(&[XR, KNEE, LEFT], &[XR, KNEE, RIGHT, PNEUMONIA]), LateralityFlipped);
        // Anatomy replaced with an extra plane: still wrong anatomy (modality matches).
        assert_eq!(kind(&[CT, CHEST], &[CT, KNEE, AXIAL]), WrongAnatomy);
        // A wrong sub-type of the right modality is a modality replacement.
        assert_eq!(kind(&[CT, CT_CONTRAST, CHEST], &[CT, CT_CONE_BEAM, CHEST]), WrongModality);
        // Only the sub-type missed: a miss.
        assert_eq!(kind(&[CT, CT_CONTRAST, CHEST], &[CT, CHEST]), MissedConcept);
    }

    #[test]
    fn first_wrong_level_follows_level_order() {
        let o = Ontology::builtin();
        let f = |g: &[&str], p: &[&str]| first_wrong_level(&o, &set(g), &set(p));
        assert_eq!(f(&[CT, CHEST], &[CT, CHEST]), None);
        assert_eq!(f(&[CT, CHEST], &[MRI, KNEE]).as_deref(), Some("modality"));
        assert_eq!(f(&[CT, CHEST, AXIAL], &[CT, KNEE, CORONAL]).as_deref(), Some("anatomy"));
        assert_eq!(f(&[CT, CHEST, AXIAL], &[CT, CHEST, CORONAL]).as_deref(), Some("plane"));
        assert_eq!(f(&[CT, CHEST], &[CT, CHEST, "C9999999"]).as_deref(), Some(UNLEVELED));
    }

    #[test]
    fn leaves_drop_ancestors() {
        let o = Ontology::builtin();
        let s = set(&[CT, HN, HEAD, BRAIN]);
        assert_eq!(level_leaves(&o, &s, Level::Anatomy), vec![BRAIN]);
        assert_eq!(level_leaves(&o, &s, Level::Modality), vec![CT]);
        assert!(level_leaves(&o, &s, Level::Laterality).is_empty());
    }

    #[test]
    fn confusion_counts_by_hand() {
        let o = Ontology::builtin();
        let data = [
            (set(&[CT, CHEST]), set(&[CT, CHEST])),             // modality CT->CT
            (set(&[CT, KNEE]), set(&[MRI, KNEE])),              // CT->MRI
            (set(&[MRI, CHEST]), set(&[])),                     // MRI->none
            (set(&[XR, KNEE, LEFT]), set(&[CT, MRI, KNEE, RIGHT])), // XR->several; left->right
            (set(&[CHEST]), set(&[CT, CHEST])),                 // none->CT
            (set(&[CT, CHEST, AXIAL, CORONAL]), set(&[CT, CHEST])), // two planes: plane not single-label
        ];
        let pairs: Vec<(&BTreeSet<String>, &BTreeSet<String>)> = data.iter().map(|(g, p)| (g, p)).collect();
        let t = confusion_tables(&o, &pairs);
        let levels: Vec<&str> = t.iter().map(|c| c.level.as_str()).collect();
        assert_eq!(levels, ["modality", "anatomy", "laterality"]);

        let m = &t[0];
        assert_eq!(m.rows, [MRI, CT, XR, NONE]);
        assert_eq!(m.cols, [MRI, CT, XR, NONE, SEVERAL]);
        let cell = |c: &Confusion, r: &str, k: &str| {
            c.counts[c.rows.iter().position(|x| x == r).unwrap()][c.cols.iter().position(|x| x == k).unwrap()]
        };
        assert_eq!(cell(m, CT, CT), 2);
        assert_eq!(cell(m, CT, MRI), 1);
        assert_eq!(cell(m, MRI, NONE), 1);
        assert_eq!(cell(m, XR, SEVERAL), 1);
        assert_eq!(cell(m, NONE, CT), 1);
        assert_eq!(m.counts.iter().flatten().sum::<usize>(), 6);
        assert_eq!((m.n_images, m.n_agree), (6, 2));

        let a = &t[1];
        assert_eq!(a.rows, [KNEE, CHEST]); // sorted by CUI: C0022742 < C0817096
        assert_eq!(cell(a, CHEST, CHEST), 3);
        assert_eq!(cell(a, CHEST, NONE), 1);
        assert_eq!(cell(a, KNEE, KNEE), 2);
        assert_eq!(a.n_agree, 5);

        let l = &t[2];
        assert_eq!(l.rows, [LEFT, NONE]);
        assert_eq!(l.cols, [LEFT, RIGHT, NONE]);
        assert_eq!(cell(l, LEFT, RIGHT), 1);
        assert_eq!(cell(l, NONE, NONE), 5);
        assert!((l.accuracy() - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn explain_records_are_read_as_scores() {
        let p = Path::new("explain.jsonl");
        let rec = |id: &str| {
            format!(
                r#"{{"id":"{id}","predicted":[],"path":[],"scores":{{"C0040405":0.9,"C0024485":0.4}},"decisions":[{{"cui":"C0040405","head":"modality","probability":0.9,"score":0.9,"capped_by":null,"threshold":0.5,"decision":"predicted"}},{{"cui":"C0024485","head":"modality","probability":0.4,"score":0.0,"capped_by":null,"threshold":0.5,"decision":"not_chosen"}}]}}"#
            )
        };
        let m = parse_scores(&format!("{}\n{}\n", rec("A"), rec("B")), p).unwrap();
        // the decision scores, which the thresholds apply to: the unchosen modality scores 0
        assert_eq!((m["A"][CT], m["A"]["C0024485"]), (0.9, 0.0));
        let e = parse_scores(&format!("{}\n{}\n", rec("A"), rec("A")), p).unwrap_err().to_string();
        assert!(e.contains("explain.jsonl:2") && e.contains("more than once"), "{e}");
        assert!(parse_scores("{not json\n", p).unwrap_err().to_string().contains("explain.jsonl:1"));
    }

    #[test]
    fn scores_parse_and_errors() {
        let p = Path::new("s.tsv");
        let m = parse_scores("# c\nA\tc0040405:0.9; C0817096:0.25\n\nB\t\n", p).unwrap();
        assert_eq!(m["A"][CT], 0.9);
        assert_eq!(m["A"][CHEST], 0.25);
        assert!(m["B"].is_empty());
        for (bad, line) in [
            ("A C1:0.5\n", 1),
            ("A\tC1:0.5\nA\tC1:0.5\n", 2),
            ("A\tC1:1.5\n", 1),
            ("A\tC1:x\n", 1),
            ("A\tC1\n", 1),
            ("A\tC1:0.5;c1:0.2\n", 1),
        ] {
            match parse_scores(bad, p) {
                Err(AnalyseError::Scores { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn threshold_curve_by_hand() {
        // img1: G={CT,CHEST}, scores CT .9, CHEST .4, MRI .2
        //   t=.3: P={CT,CHEST} f1 1;  t=.5: P={CT} f1 2/3;  t=.1: P={CT,CHEST,MRI} f1 .8
        // img2: G={MRI}, no scores -> empty prediction, f1 0
        let gt: LabelMap = [("1".to_string(), set(&[CT, CHEST])), ("2".to_string(), set(&[MRI]))].into();
        let scores: ScoreMap = [(
            "1".to_string(),
            [(CT.to_string(), 0.9f32), (CHEST.to_string(), 0.4), (MRI.to_string(), 0.2)].into(),
        ), ("9".to_string(), BTreeMap::new())]
        .into();
        let c = threshold_curve(&gt, &scores, &Ontology::builtin(), &[0.5, 0.1, 0.3, 0.3]);
        let th: Vec<f32> = c.points.iter().map(|p| p.threshold).collect();
        assert_eq!(th, [0.1, 0.3, 0.5]);
        let f: Vec<f64> = c.points.iter().map(|p| p.imageclef_f1).collect();
        for (a, b) in f.iter().zip([0.8 / 2.0, 1.0 / 2.0, (2.0 / 3.0) / 2.0]) {
            assert!((a - b).abs() < 1e-9, "{f:?}");
        }
        assert_eq!((c.best_threshold, c.n_images_without_scores, c.n_scores_not_in_gt), (0.3, 1, 1));
        // modality at t=.5: img1 {CT} vs {CT} = 1, img2 0 -> .5
        assert!((c.points[2].per_level_f1["modality"] - 0.5).abs() < 1e-9);
    }

    #[test]
    fn base64_known_vectors() {
        // RFC 4648 section 10: the standard alphabet with padding, as data: URIs need.
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64_encode(i.as_bytes()), o);
        }
    }

    #[test]
    fn thumbnails_and_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::GrayImage::from_fn(40, 20, |x, _| image::Luma([(x * 6) as u8]));
        img.save(dir.path().join("a.png")).unwrap();
        std::fs::write(dir.path().join("bad.jpg"), b"not a jpeg").unwrap();
        let uri = thumbnail_for(Some(dir.path()), "a", 128).unwrap();
        assert!(uri.starts_with("data:image/jpeg;base64,/9j/"), "{}", &uri[..40]);
        // Decode it back: longest side 128, aspect kept.
        let b64 = &uri["data:image/jpeg;base64,".len()..];
        let bytes = decode_b64(b64);
        let t = image::load_from_memory(&bytes).unwrap();
        assert_eq!((t.width(), t.height()), (128, 64));
        assert!(thumbnail_for(Some(dir.path()), "bad", 128).unwrap_err().contains("decode"));
        assert!(thumbnail_for(Some(dir.path()), "nope", 128).unwrap_err().contains("no image"));
        assert!(thumbnail_for(Some(&dir.path().join("missing")), "a", 128).unwrap_err().contains("does not exist"));
        assert!(thumbnail_for(None, "a", 128).is_err());

        let gt: LabelMap = [("a".to_string(), set(&[CT, CHEST])), ("bad".to_string(), set(&[CT, CHEST])), ("z".to_string(), set(&[]))].into();
        let pred: LabelMap = [("a".to_string(), set(&["c0040405", CHEST]))].into();
        let cfg = AnalyseConfig { images: Some(dir.path().to_path_buf()), ..Default::default() };
        let a = analyse(&gt, &pred, &Ontology::builtin(), None, &cfg).unwrap();
        assert_eq!(a.images.len(), 2); // the empty-GT image is not analysed
        assert_eq!((a.count(ErrorKind::Correct), a.count(ErrorKind::MissedConcept)), (1, 1));
        assert!(a.images[1].missing_prediction);
        assert_eq!(a.missing_thumbnails, 1);
        assert!(a.samples[0].samples[0].thumbnail.is_some());
        assert!(a.notes.iter().any(|n| n.contains("Threshold curve skipped")));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["error_counts"][0]["kind"], "correct");
        assert!(json["samples"][0]["samples"][0].get("thumbnail").is_none());
    }

    fn decode_b64(s: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(s).expect("valid base64")
    }

    #[test]
    fn config_is_validated() {
        let bad = AnalyseConfig { thumbnail_px: 4, ..Default::default() };
        assert!(matches!(bad.validate(), Err(AnalyseError::Config(_))));
        let bad = AnalyseConfig { grid: vec![], ..Default::default() };
        assert!(bad.validate().is_err());
        assert!(AnalyseConfig::default().validate().is_ok());
    }
}
