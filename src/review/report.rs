//! `review report`: what the verdicts say, per model, with the models unblinded.
//!
//! - **Clinical precision** of a model = correct / judged, where judged = correct + wrong, over
//!   the concepts it predicted on the reviewed images; `unsure` verdicts and concepts nobody
//!   judged are counted apart, never in the ratio. A concept that two models both predicted on an
//!   image is judged once (a verdict is about the image and the concept) and counts for both.
//!   Verdicts of several reviewers are pooled (each verdict counts once). Per model: overall, per
//!   ontology level, per concept, per reviewer. Empty rule: no judged concept gives no precision
//!   (`None`), not 0.
//! - **Missed terms**: the terms reviewers added per image; a model "missed" a term it did not
//!   predict (free-text terms are missed by every model).
//! - **Agreement**: Cohen's kappa between every two reviewers over the (image, concept) pairs both
//!   judged, the three verdicts as categories, per level and overall: kappa = (p_o - p_e) / (1 - p_e),
//!   p_o the share of equal verdicts, p_e = sum over categories of the product of the two
//!   reviewers' shares. Undefined (`None`) when p_e = 1 (both used one and the same category).
//! - **Paired difference** between two models: precision(A) - precision(B) on the same images, with
//!   a 95% percentile interval from a bootstrap over images (images drawn with replacement, both
//!   models' counts kept together; seeded with the review's seed); resamples where either model
//!   has nothing judged are left out and counted.
//! - The page: one self-contained HTML file in the manner of the seed paper's Table 5 (each
//!   reviewed image as a thumbnail, both models' concepts with the reviewers' verdicts, the terms
//!   the reviewers added, the ground truth), and `review.json` with every figure.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::store::{Mark, MissingTerm, Store, VerdictRow};
use super::{Item, ReviewError, ReviewMeta, ReviewSet, Verdict};
use crate::ontology::Level;

const TEMPLATE: &str = include_str!("templates/report.html");
/// Label of concepts without a level.
pub(crate) const NO_LEVEL: &str = "no level";
/// Label of the row over every level.
pub(crate) const ALL_LEVELS: &str = "all";
/// Default number of bootstrap resamples.
pub const DEFAULT_BOOTSTRAP: usize = 2000;
/// Default number of images on the page.
pub const DEFAULT_MAX_IMAGES: usize = 200;
/// Side of the page's thumbnails, in pixels.
const THUMB: u32 = 128;

/// Verdict counts over some predicted concepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub correct: usize,
    pub wrong: usize,
    pub unsure: usize,
    /// Predicted concepts no reviewer judged.
    pub not_judged: usize,
    /// correct / (correct + wrong); `None` when nothing was judged correct or wrong.
    pub precision: Option<f64>,
}

impl Counts {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Correct => self.correct += 1,
            Verdict::Wrong => self.wrong += 1,
            Verdict::Unsure => self.unsure += 1,
        }
        self.finish();
    }
    fn add_unjudged(&mut self) {
        self.not_judged += 1;
        self.finish();
    }
    fn finish(&mut self) {
        self.precision = precision(self.correct, self.wrong);
    }
    /// correct + wrong.
    pub fn judged(&self) -> usize {
        self.correct + self.wrong
    }
}

/// correct / (correct + wrong), `None` when both are 0.
pub fn precision(correct: usize, wrong: usize) -> Option<f64> {
    let judged = correct + wrong;
    (judged > 0).then(|| correct as f64 / judged as f64)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelRow {
    pub level: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConceptRow {
    pub cui: String,
    pub name: String,
    pub level: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewerRow {
    pub reviewer: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One model's clinical precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    pub label: String,
    pub path: String,
    pub sha256: String,
    pub overall: Counts,
    /// [`Level::ALL`] order, then [`NO_LEVEL`]; only levels the model predicted on.
    pub levels: Vec<LevelRow>,
    /// By level, then by the number of judgements (most first).
    pub concepts: Vec<ConceptRow>,
    pub reviewers: Vec<ReviewerRow>,
    /// Missing terms (per reviewer and image) this model did not predict.
    pub missed_terms: usize,
}

pub use crate::eval::stats::Kappa;

/// Cohen's kappa over `pairs` of verdicts (see the module docs).
pub(crate) fn cohen_kappa(pairs: &[(Verdict, Verdict)]) -> Kappa {
    crate::eval::stats::cohen_kappa(pairs, &Verdict::ALL)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KappaRow {
    pub reviewer_a: String,
    pub reviewer_b: String,
    pub level: String,
    #[serde(flatten)]
    pub kappa: Kappa,
}

/// Precision of model A minus model B on the same images, with a bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedDiff {
    pub a: String,
    pub b: String,
    pub level: String,
    /// Images with a judged concept of either model (on the level).
    pub images: usize,
    pub precision_a: Option<f64>,
    pub precision_b: Option<f64>,
    pub difference: Option<f64>,
    /// 2.5% and 97.5% percentiles of the resampled differences.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Resamples used, and those left out because a model had nothing judged in them.
    pub resamples: usize,
    pub left_out: usize,
}

pub use crate::eval::stats::{paired_difference, PairedCounts};

/// A concept of one model on one image, with every reviewer's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgedConcept {
    pub cui: String,
    pub name: String,
    pub level: String,
    pub score: Option<f32>,
    /// (reviewer, verdict), by reviewer.
    pub verdicts: Vec<(String, Verdict)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageModel {
    pub label: String,
    pub concepts: Vec<JudgedConcept>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedTerm {
    pub reviewer: String,
    pub cui: Option<String>,
    pub name: String,
    pub level: String,
    /// Labels of the models that did not predict it.
    pub missed_by: Vec<String>,
}

/// One reviewed image, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRow {
    pub position: usize,
    pub id: String,
    pub models: Vec<ImageModel>,
    pub missing: Vec<NamedTerm>,
    /// Ground truth as `(cui, name)`.
    pub truth: Vec<(String, String)>,
    pub done_by: Vec<String>,
    pub truth_shown_to: Vec<String>,
    /// `data:image/jpeg;base64,...` (page only).
    #[serde(skip)]
    pub thumbnail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewerSummary {
    pub reviewer: String,
    pub verdicts: usize,
    pub images_done: usize,
    pub missing_terms: usize,
    /// Images whose ground truth the reviewer looked at.
    pub truth_shown: usize,
}

/// Everything `review report` computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewReport {
    pub db: String,
    pub review: ReviewMeta,
    pub n_images: usize,
    /// Images with a verdict, a missing term or a done mark.
    pub n_reviewed: usize,
    pub events: usize,
    pub models: Vec<ModelReport>,
    pub reviewers: Vec<ReviewerSummary>,
    pub kappa: Vec<KappaRow>,
    pub paired: Vec<PairedDiff>,
    pub bootstrap: usize,
    /// Reviewed images in review order (the page shows the first `max_images`).
    pub images: Vec<ImageRow>,
    pub notes: Vec<String>,
}

/// Everything stored, as the report reads it.
pub struct ReviewData {
    pub set: ReviewSet,
    pub verdicts: Vec<VerdictRow>,
    pub missing: Vec<MissingTerm>,
    pub done: Vec<Mark>,
    pub reveals: Vec<Mark>,
    pub events: usize,
}

impl ReviewData {
    pub fn load(store: &Store) -> Result<ReviewData, ReviewError> {
        Ok(ReviewData { set: store.load()?, verdicts: store.verdicts()?, missing: store.missing()?, done: store.done()?, reveals: store.reveals()?, events: store.event_count()? })
    }
}

fn level_name(l: Option<Level>) -> String {
    l.map_or(NO_LEVEL.to_string(), |l| l.as_str().to_string())
}

fn level_rank(l: &str) -> usize {
    Level::ALL.iter().position(|x| x.as_str() == l).unwrap_or(Level::ALL.len())
}

/// Options of [`build`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Bootstrap resamples (100 ..= 100 000).
    pub bootstrap: usize,
    /// Images on the page (at least 1); the JSON has every reviewed image.
    pub max_images: usize,
    /// Image folder for the thumbnails (default: the one the review was made with).
    pub images: Option<PathBuf>,
    /// Make the page's thumbnails (only the page shows them).
    pub thumbnails: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { bootstrap: DEFAULT_BOOTSTRAP, max_images: DEFAULT_MAX_IMAGES, images: None, thumbnails: true }
    }
}

impl ReportOptions {
    pub fn check(&self) -> Result<(), ReviewError> {
        if !(100..=100_000).contains(&self.bootstrap) {
            return Err(ReviewError::Option { option: "bootstrap", message: format!("{}: must be in 100..=100000", self.bootstrap) });
        }
        if self.max_images == 0 {
            return Err(ReviewError::Option { option: "max-images", message: "0: must be at least 1".into() });
        }
        Ok(())
    }
}

/// The report of the review in `db`.
pub fn report_db(db: &Path, opts: &ReportOptions) -> Result<ReviewReport, ReviewError> {
    opts.check()?;
    let store = Store::open_existing(db)?;
    let data = ReviewData::load(&store)?;
    let mut r = build(&data, opts);
    r.db = std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf()).display().to_string();
    if opts.thumbnails {
        add_thumbnails(&mut r, &data.set, opts);
    }
    Ok(r)
}

/// Every reviewer's verdict on each (image, concept): `(reviewer, verdict)` in stored order.
type VerdictsOn<'a> = HashMap<(&'a str, &'a str), Vec<(&'a str, Verdict)>>;

/// The report's figures from the stored data (thumbnails are added by [`report_db`]).
pub fn build(d: &ReviewData, opts: &ReportOptions) -> ReviewReport {
    let set = &d.set;
    let mut on: VerdictsOn = HashMap::new();
    for v in &d.verdicts {
        on.entry((v.image.as_str(), v.cui.as_str())).or_default().push((v.reviewer.as_str(), v.verdict));
    }
    let (missing_by_image, missed_count) = missing_terms(d);
    let models = set.models.iter().enumerate().map(|(m, _)| model_report(set, &on, m, missed_count[m])).collect();
    let paired = paired_differences(set, &on, opts.bootstrap);
    let kappa = agreement(d);
    let reviewers = reviewer_summaries(d);
    let images = image_rows(d, &on, missing_by_image);
    ReviewReport {
        db: String::new(),
        review: set.meta.clone(),
        n_images: set.items.len(),
        n_reviewed: images.len(),
        events: d.events,
        models,
        reviewers,
        kappa,
        paired,
        bootstrap: opts.bootstrap,
        images,
        notes: notes(d),
    }
}

/// The terms reviewers added, per image, each with the models that missed it; and how many
/// terms each model missed.
fn missing_terms(d: &ReviewData) -> (BTreeMap<&str, Vec<NamedTerm>>, Vec<usize>) {
    let set = &d.set;
    let mut missing_by_image: BTreeMap<&str, Vec<NamedTerm>> = BTreeMap::new();
    let mut missed_count = vec![0usize; set.models.len()];
    for t in &d.missing {
        let Some(item) = set.item(&t.image) else { continue };
        let missed_by: Vec<usize> = (0..set.models.len()).filter(|&m| t.cui.as_ref().is_none_or(|c| !item.predicted[m].contains_key(c))).collect();
        for &m in &missed_by {
            missed_count[m] += 1;
        }
        missing_by_image.entry(t.image.as_str()).or_default().push(NamedTerm {
            reviewer: t.reviewer.clone(),
            cui: t.cui.clone(),
            name: t.name.clone(),
            level: if t.cui.is_some() { level_name(t.level) } else { "free text".into() },
            missed_by: missed_by.iter().map(|&m| set.models[m].label.clone()).collect(),
        });
    }
    (missing_by_image, missed_count)
}

/// Model `m`'s clinical precision: overall, per level, per concept and per reviewer.
fn model_report(set: &ReviewSet, on: &VerdictsOn, m: usize, missed_terms: usize) -> ModelReport {
    let info = &set.models[m];
    let mut overall = Counts::default();
    let mut levels: BTreeMap<String, Counts> = BTreeMap::new();
    let mut concepts: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut per_reviewer: BTreeMap<&str, Counts> = BTreeMap::new();
    for it in &set.items {
        for cui in it.predicted[m].keys() {
            let lv = level_name(set.level(cui));
            let mut apply = |f: &dyn Fn(&mut Counts)| {
                f(&mut overall);
                f(levels.entry(lv.clone()).or_default());
                f(concepts.entry(cui.as_str()).or_default());
            };
            match on.get(&(it.id.as_str(), cui.as_str())) {
                None => apply(&|c: &mut Counts| c.add_unjudged()),
                Some(vs) => {
                    for &(rev, v) in vs {
                        apply(&move |c: &mut Counts| c.add(v));
                        per_reviewer.entry(rev).or_default().add(v);
                    }
                }
            }
        }
    }
    let mut level_rows: Vec<LevelRow> = levels.into_iter().map(|(level, counts)| LevelRow { level, counts }).collect();
    level_rows.sort_by_key(|r| level_rank(&r.level));
    let mut concept_rows: Vec<ConceptRow> = concepts.into_iter().map(|(cui, counts)| ConceptRow { cui: cui.to_string(), name: set.name(cui), level: level_name(set.level(cui)), counts }).collect();
    concept_rows.sort_by(|a, b| (level_rank(&a.level), std::cmp::Reverse(a.counts.judged() + a.counts.unsure), &a.cui).cmp(&(level_rank(&b.level), std::cmp::Reverse(b.counts.judged() + b.counts.unsure), &b.cui)));
    ModelReport {
        label: info.label.clone(),
        path: info.path.clone(),
        sha256: info.sha256.clone(),
        overall,
        levels: level_rows,
        concepts: concept_rows,
        reviewers: per_reviewer.into_iter().map(|(r, counts)| ReviewerRow { reviewer: r.to_string(), counts }).collect(),
        missed_terms,
    }
}

/// Paired differences of every two models, over all levels and then per level, for the scopes
/// where either model has something judged.
fn paired_differences(set: &ReviewSet, on: &VerdictsOn, bootstrap: usize) -> Vec<PairedDiff> {
    let mut paired = Vec::new();
    let all_levels: BTreeSet<String> = set.concepts.values().map(|c| level_name(c.level)).collect();
    let mut scopes: Vec<String> = vec![ALL_LEVELS.to_string()];
    let mut lv: Vec<String> = all_levels.into_iter().collect();
    lv.sort_by_key(|l| level_rank(l));
    scopes.extend(lv);
    for a in 0..set.models.len() {
        for b in a + 1..set.models.len() {
            for scope in &scopes {
                let per_image = paired_counts(set, on, [a, b], scope);
                if per_image.is_empty() {
                    continue;
                }
                let sum = |k: usize| per_image.iter().fold((0, 0), |s, r| (s.0 + r[k].0, s.1 + r[k].1));
                let (sa, sb) = (sum(0), sum(1));
                let (difference, low, high, resamples, left_out) = paired_difference(&per_image, bootstrap, set.meta.seed);
                paired.push(PairedDiff {
                    a: set.models[a].label.clone(),
                    b: set.models[b].label.clone(),
                    level: scope.clone(),
                    images: per_image.len(),
                    precision_a: precision(sa.0, sa.1 - sa.0),
                    precision_b: precision(sb.0, sb.1 - sb.0),
                    difference,
                    low,
                    high,
                    resamples,
                    left_out,
                });
            }
        }
    }
    paired
}

/// Per image, `(correct, judged)` of each of the two models on the concepts in `scope` (a level
/// name or [`ALL_LEVELS`]); images where neither has a judged concept are left out.
fn paired_counts(set: &ReviewSet, on: &VerdictsOn, pair: [usize; 2], scope: &str) -> PairedCounts {
    let in_scope = |cui: &str| scope == ALL_LEVELS || level_name(set.level(cui)) == *scope;
    let mut per_image: PairedCounts = Vec::new();
    for it in &set.items {
        let mut row = [(0usize, 0usize); 2];
        for (k, m) in pair.into_iter().enumerate() {
            for cui in it.predicted[m].keys().filter(|c| in_scope(c)) {
                for &(_, v) in on.get(&(it.id.as_str(), cui.as_str())).map(Vec::as_slice).unwrap_or(&[]) {
                    match v {
                        Verdict::Correct => {
                            row[k].0 += 1;
                            row[k].1 += 1;
                        }
                        Verdict::Wrong => row[k].1 += 1,
                        Verdict::Unsure => {}
                    }
                }
            }
        }
        if row[0].1 + row[1].1 > 0 {
            per_image.push(row);
        }
    }
    per_image
}

/// Cohen's kappa between every two reviewers over the concepts both judged: overall, then per
/// level.
fn agreement(d: &ReviewData) -> Vec<KappaRow> {
    let mut by_reviewer: BTreeMap<&str, HashMap<(&str, &str), Verdict>> = BTreeMap::new();
    for v in &d.verdicts {
        by_reviewer.entry(v.reviewer.as_str()).or_default().insert((v.image.as_str(), v.cui.as_str()), v.verdict);
    }
    let names: Vec<&str> = by_reviewer.keys().copied().collect();
    let mut kappa = Vec::new();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            let (ra, rb) = (&by_reviewer[names[i]], &by_reviewer[names[j]]);
            let mut pairs: BTreeMap<String, Vec<(Verdict, Verdict)>> = BTreeMap::new();
            let mut keys: Vec<&(&str, &str)> = ra.keys().filter(|k| rb.contains_key(*k)).collect();
            keys.sort();
            for k in keys {
                let p = (ra[k], rb[k]);
                pairs.entry(ALL_LEVELS.to_string()).or_default().push(p);
                pairs.entry(level_name(d.set.level(k.1))).or_default().push(p);
            }
            let mut rows: Vec<(String, Vec<(Verdict, Verdict)>)> = pairs.into_iter().collect();
            rows.sort_by_key(|(l, _)| if l == ALL_LEVELS { 0 } else { 1 + level_rank(l) });
            for (level, p) in rows {
                kappa.push(KappaRow { reviewer_a: names[i].to_string(), reviewer_b: names[j].to_string(), level, kappa: cohen_kappa(&p) });
            }
        }
    }
    kappa
}

/// What each reviewer did (anyone with a verdict, a missing term or a done mark), by name.
fn reviewer_summaries(d: &ReviewData) -> Vec<ReviewerSummary> {
    let reviewers: BTreeSet<&str> = d.verdicts.iter().map(|v| v.reviewer.as_str()).chain(d.missing.iter().map(|m| m.reviewer.as_str())).chain(d.done.iter().map(|m| m.reviewer.as_str())).collect();
    reviewers
        .iter()
        .map(|r| ReviewerSummary {
            reviewer: r.to_string(),
            verdicts: d.verdicts.iter().filter(|v| v.reviewer == *r).count(),
            images_done: d.done.iter().filter(|m| m.reviewer == *r).count(),
            missing_terms: d.missing.iter().filter(|m| m.reviewer == *r).count(),
            truth_shown: d.reveals.iter().filter(|m| m.reviewer == *r).count(),
        })
        .collect()
}

/// The reviewed images (a verdict, a missing term or a done mark), in review order, each with
/// every model's concepts and their verdicts.
fn image_rows(d: &ReviewData, on: &VerdictsOn, mut missing_by_image: BTreeMap<&str, Vec<NamedTerm>>) -> Vec<ImageRow> {
    let set = &d.set;
    let touched: BTreeSet<&str> = d.verdicts.iter().map(|v| v.image.as_str()).chain(d.missing.iter().map(|m| m.image.as_str())).chain(d.done.iter().map(|m| m.image.as_str())).collect();
    set.items
        .iter()
        .filter(|it| touched.contains(it.id.as_str()))
        .map(|it| ImageRow {
            position: it.position,
            id: it.id.clone(),
            models: set.models.iter().enumerate().map(|(m, info)| image_model(set, on, it, m, &info.label)).collect(),
            missing: missing_by_image.remove(it.id.as_str()).unwrap_or_default(),
            truth: it.truth.iter().map(|c| (c.clone(), set.name(c))).collect(),
            done_by: d.done.iter().filter(|m| m.image == it.id).map(|m| m.reviewer.clone()).collect(),
            truth_shown_to: d.reveals.iter().filter(|m| m.image == it.id).map(|m| m.reviewer.clone()).collect(),
            thumbnail: None,
        })
        .collect()
}

/// Model `m`'s concepts on one image with every verdict on them, by level and CUI.
fn image_model(set: &ReviewSet, on: &VerdictsOn, it: &Item, m: usize, label: &str) -> ImageModel {
    let mut concepts: Vec<JudgedConcept> = it.predicted[m]
        .iter()
        .map(|(cui, score)| JudgedConcept {
            cui: cui.clone(),
            name: set.name(cui),
            level: level_name(set.level(cui)),
            score: *score,
            verdicts: on.get(&(it.id.as_str(), cui.as_str())).map(|v| v.iter().map(|(r, v)| (r.to_string(), *v)).collect()).unwrap_or_default(),
        })
        .collect();
    concepts.sort_by(|a, b| (level_rank(&a.level), &a.cui).cmp(&(level_rank(&b.level), &b.cui)));
    ImageModel { label: label.to_string(), concepts }
}

/// The page's notes on what the figures cannot say (no verdicts, one reviewer, one model, ground
/// truth seen while judging).
fn notes(d: &ReviewData) -> Vec<String> {
    let mut notes = Vec::new();
    if d.verdicts.is_empty() {
        notes.push("No verdicts yet: every precision is undefined.".to_string());
    }
    let judging_reviewers: BTreeSet<&str> = d.verdicts.iter().map(|v| v.reviewer.as_str()).collect();
    if judging_reviewers.len() < 2 {
        notes.push("Agreement needs two reviewers who judged the same concepts: run `review serve` again on this database with another --reviewer.".to_string());
    }
    if d.set.models.len() < 2 {
        notes.push("One model: there is no paired difference to report.".to_string());
    }
    let shown: usize = d.reveals.len();
    if shown > 0 {
        notes.push(format!("The ground truth was shown {shown} time(s) (reviewer, image) before or while judging; those verdicts were not blind to it."));
    }
    notes
}

fn add_thumbnails(r: &mut ReviewReport, set: &ReviewSet, opts: &ReportOptions) {
    let dir_path = opts.images.clone().unwrap_or_else(|| PathBuf::from(&set.meta.images_dir));
    let dir = match crate::data::images::ImageDir::open(&dir_path) {
        Ok(d) => d,
        Err(e) => {
            r.notes.push(format!("No thumbnails: {e} (give --images)."));
            return;
        }
    };
    let mut failed = 0;
    for row in r.images.iter_mut().take(opts.max_images) {
        let uri = match dir.find(&row.id) {
            Ok(Some(p)) => crate::report::analyse::thumbnail_data_uri(&p, THUMB).ok(),
            _ => None,
        };
        failed += usize::from(uri.is_none());
        row.thumbnail = uri;
    }
    if failed > 0 {
        r.notes.push(format!("{failed} image(s) without a thumbnail (not found or unreadable in {}).", dir_path.display()));
    }
}

fn fmt_p(p: Option<f64>) -> String {
    p.map_or("-".to_string(), |p| format!("{p:.3}"))
}

fn fmt_signed(p: Option<f64>) -> String {
    p.map_or("-".to_string(), |p| format!("{p:+.3}"))
}

/// The report as text: precision per level for each model, paired differences, agreement.
pub fn render_text(r: &ReviewReport) -> String {
    let mut s = String::new();
    let reviewers: Vec<&str> = r.reviewers.iter().map(|x| x.reviewer.as_str()).collect();
    let _ = writeln!(
        s,
        "Clinical review of {} image(s) ({} reviewed; sample: {} of {} candidates, {}, seed {}): {} model(s), reviewer(s): {}.",
        r.n_images,
        r.n_reviewed,
        r.review.sample.map_or("all".to_string(), |n| n.to_string()),
        r.review.candidates,
        r.review.strategy.as_str(),
        r.review.seed,
        r.models.len(),
        if reviewers.is_empty() { "none yet".to_string() } else { reviewers.join(", ") }
    );
    let _ = writeln!(s, "Clinical precision = correct / (correct + wrong); unsure and not judged are counted apart.\n");
    for m in &r.models {
        let _ = writeln!(s, "model {} ({})", m.label, m.path);
        let _ = writeln!(s, "  {:<12} {:>8} {:>6} {:>7} {:>11} {:>10}", "level", "correct", "wrong", "unsure", "not judged", "precision");
        let row = |s: &mut String, l: &str, c: &Counts| {
            let _ = writeln!(s, "  {:<12} {:>8} {:>6} {:>7} {:>11} {:>10}", l, c.correct, c.wrong, c.unsure, c.not_judged, fmt_p(c.precision));
        };
        row(&mut s, ALL_LEVELS, &m.overall);
        for l in &m.levels {
            row(&mut s, &l.level, &l.counts);
        }
        let _ = writeln!(s, "  missed terms (added by reviewers, not predicted): {}\n", m.missed_terms);
    }
    if !r.paired.is_empty() {
        let _ = writeln!(s, "Paired difference of precision (A - B) on the same images, 95% bootstrap interval over images ({} resamples, seed {}):", r.bootstrap, r.review.seed);
        for p in &r.paired {
            let _ = writeln!(
                s,
                "  {} - {}  {:<12} {:>7}  [{}, {}]  ({} vs {}, {} images)",
                p.a,
                p.b,
                p.level,
                fmt_signed(p.difference),
                fmt_signed(p.low),
                fmt_signed(p.high),
                fmt_p(p.precision_a),
                fmt_p(p.precision_b),
                p.images
            );
        }
        s.push('\n');
    }
    if !r.kappa.is_empty() {
        let _ = writeln!(s, "Agreement between reviewers (Cohen's kappa over correct/wrong/unsure, concepts both judged):");
        for k in &r.kappa {
            let _ = writeln!(s, "  {} vs {}  {:<12} n {:>5}  agreement {:.3}  kappa {}", k.reviewer_a, k.reviewer_b, k.level, k.kappa.n, k.kappa.agreement, fmt_p(k.kappa.kappa));
        }
        s.push('\n');
    }
    let added: usize = r.images.iter().map(|i| i.missing.len()).sum();
    let with: usize = r.images.iter().filter(|i| !i.missing.is_empty()).count();
    let _ = writeln!(s, "Missing terms: {added} added on {with} image(s).");
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().expect("valid syntax settings"));
    env.add_filter("p", |v: Option<f64>| fmt_p(v));
    env.add_filter("signed", |v: Option<f64>| fmt_signed(v));
    env.add_template("report.html", TEMPLATE).expect("the review report template parses");
    env
}

/// True for a `data:image/jpeg;base64,` URI of base64 characters only (safe unescaped).
fn is_plain_data_uri(uri: &str) -> bool {
    uri.strip_prefix("data:image/jpeg;base64,").is_some_and(|b| b.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')))
}

#[derive(Serialize)]
struct PageImage<'a> {
    row: &'a ImageRow,
    thumbnail: Option<&'a str>,
}

/// The Table-5-style page: one self-contained HTML file (auto-escaped; thumbnails inline).
pub(crate) fn render_html(r: &ReviewReport, max_images: usize) -> String {
    let images: Vec<PageImage> = r.images.iter().take(max_images).map(|row| PageImage { row, thumbnail: row.thumbnail.as_deref().filter(|u| is_plain_data_uri(u)) }).collect();
    #[derive(Serialize)]
    struct View<'a> {
        r: &'a ReviewReport,
        images: Vec<PageImage<'a>>,
        more: usize,
    }
    let ctx = minijinja::value::Serde(View { r, images, more: r.images.len().saturating_sub(max_images) });
    environment().get_template("report.html").and_then(|t| t.render(ctx)).unwrap_or_else(|e| panic!("the review report template failed: {e:#}"))
}

/// Files written by [`write_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub json: PathBuf,
}

/// Writes `review.html` and `review.json` into `out` (made if missing).
pub fn write_report(r: &ReviewReport, out: &Path, max_images: usize) -> Result<ReportFiles, ReviewError> {
    std::fs::create_dir_all(out).map_err(ReviewError::write(out))?;
    let html = out.join("review.html");
    let json = out.join("review.json");
    crate::run::dir::write_atomic(&html, |tmp| std::fs::write(tmp, render_html(r, max_images))).map_err(ReviewError::write(&html))?;
    crate::run::dir::write_atomic(&json, |tmp| std::fs::write(tmp, serde_json::to_string_pretty(r).expect("reports serialise") + "\n")).map_err(ReviewError::write(&json))?;
    Ok(ReportFiles { html, json })
}

#[cfg(test)]
mod tests {
    use super::super::store::{Action, ActionKind};
    use super::super::testdata::*;
    use super::super::{prepare, BlindMode, ConceptInfo, Item, ModelInfo, ReviewSet, Strategy};
    use super::*;
    use Verdict::{Correct as C, Unsure as U, Wrong as W};

    #[test]
    fn kappa_by_hand() {
        // 10 pairs: a = C C C W W U C W C C, b = C C W W W U C C C U
        // equal on 1,2,4,5,6,7,9 -> p_o = 0.7
        // a: C 6, W 3, U 1; b: C 5, W 3, U 2 -> p_e = .6*.5 + .3*.3 + .1*.2 = 0.41
        // kappa = (0.7 - 0.41) / 0.59 = 0.491525...
        let a = [C, C, C, W, W, U, C, W, C, C];
        let b = [C, C, W, W, W, U, C, C, C, U];
        let pairs: Vec<_> = a.into_iter().zip(b).collect();
        let k = cohen_kappa(&pairs);
        assert_eq!(k.n, 10);
        assert!((k.agreement - 0.7).abs() < 1e-12);
        assert!((k.expected - 0.41).abs() < 1e-12);
        assert!((k.kappa.unwrap() - 0.29 / 0.59).abs() < 1e-12);
        // perfect agreement over two categories: 1; systematic disagreement: -1
        assert_eq!(cohen_kappa(&[(C, C), (W, W)]).kappa, Some(1.0));
        assert_eq!(cohen_kappa(&[(C, W), (W, C)]).kappa, Some(-1.0));
        // both always "correct": p_e = 1, kappa undefined (not 0, not NaN)
        let same = cohen_kappa(&[(C, C), (C, C), (C, C)]);
        assert_eq!((same.agreement, same.expected, same.kappa), (1.0, 1.0, None));
        assert_eq!(cohen_kappa(&[]).kappa, None);
    }

    #[test]
    fn precision_by_hand() {
        assert_eq!(precision(3, 1), Some(0.75));
        assert_eq!(precision(0, 2), Some(0.0));
        assert_eq!(precision(0, 0), None, "nothing judged: undefined, not 0");
        let mut c = Counts::default();
        for v in [C, C, W, U, U] {
            c.add(v);
        }
        c.add_unjudged();
        assert_eq!((c.correct, c.wrong, c.unsure, c.not_judged, c.judged()), (2, 1, 2, 1, 3));
        assert!((c.precision.unwrap() - 2.0 / 3.0).abs() < 1e-12, "unsure and not judged stay out of the ratio");
    }

    #[test]
    fn paired_difference_by_hand() {
        // image 1: A 2/2, B 1/2; image 2: A 1/2, B 1/1 -> A 3/4, B 2/3, difference 1/12
        let rows: PairedCounts = vec![[(2, 2), (1, 2)], [(1, 2), (1, 1)]];
        let (d, lo, hi, n, left) = paired_difference(&rows, 1000, 1);
        assert!((d.unwrap() - (0.75 - 2.0 / 3.0)).abs() < 1e-12);
        let (lo, hi) = (lo.unwrap(), hi.unwrap());
        assert!(lo <= d.unwrap() && d.unwrap() <= hi, "{lo} {hi}");
        // the resamples: {1,1}: 1 - 0.5 = 0.5; {2,2}: 0.5 - 1 = -0.5; mixed: 1/12
        assert_eq!((lo, hi), (-0.5, 0.5));
        assert_eq!((n, left), (1000, 0));
        assert_eq!(paired_difference(&rows, 1000, 1), paired_difference(&rows, 1000, 1), "seeded");
        // a model with nothing judged: no difference
        assert_eq!(paired_difference(&vec![[(1, 1), (0, 0)]], 100, 1).0, None);
        // resamples in which B has nothing judged are left out
        let (_, _, _, n, left) = paired_difference(&vec![[(1, 1), (0, 0)], [(0, 1), (1, 1)]], 400, 3);
        assert!(left > 0 && n + left == 400);
    }

    /// A hand-made review: two models on three images, two reviewers.
    fn data() -> ReviewData {
        let models = ["flat", "hier"].iter().map(|l| ModelInfo { label: l.to_string(), path: format!("/x/{l}.csv"), sha256: l.to_string(), explain_path: None, explain_sha256: None }).collect();
        let p = |v: &[&str]| v.iter().map(|c| (c.to_string(), None)).collect::<BTreeMap<String, Option<f32>>>();
        let items = vec![
            Item { position: 0, id: "a".into(), shown: vec![0, 1], predicted: vec![p(&[CT, CHEST]), p(&[CT, ABDOMEN])], truth: BTreeSet::new(), stratum: "x".into() },
            Item { position: 1, id: "b".into(), shown: vec![1, 0], predicted: vec![p(&[MRI]), p(&[MRI, AXIAL])], truth: BTreeSet::new(), stratum: "x".into() },
            Item { position: 2, id: "c".into(), shown: vec![0, 1], predicted: vec![p(&[CT]), p(&[])], truth: BTreeSet::new(), stratum: "x".into() },
        ];
        let onto = crate::ontology::Ontology::builtin();
        let concepts = [CT, MRI, CHEST, ABDOMEN, AXIAL].iter().map(|c| (c.to_string(), ConceptInfo { name: onto.get(c).map(|x| x.name.clone()), level: onto.level_of(c) })).collect();
        let meta = ReviewMeta {
            created: "t".into(),
            tool: "t".into(),
            strategy: Strategy::Random,
            seed: 42,
            sample: None,
            candidates: 3,
            blind: BlindMode::Sets,
            images_dir: "/nowhere".into(),
            truth_path: None,
            truth_sha256: None,
            ontology: "built-in".into(),
            ontology_hash: String::new(),
        };
        let v = |r: &str, i: &str, c: &str, v: Verdict| VerdictRow { reviewer: r.into(), image: i.into(), cui: c.into(), verdict: v, at: "t".into() };
        let verdicts = vec![
            v("ann", "a", CT, C),
            v("ann", "a", CHEST, W),
            v("ann", "a", ABDOMEN, C),
            v("ann", "b", MRI, C),
            v("ann", "b", AXIAL, U),
            v("bob", "a", CT, C),
            v("bob", "a", CHEST, C),
            v("bob", "b", MRI, C),
        ];
        let missing = vec![MissingTerm { term: 1, reviewer: "ann".into(), image: "a".into(), cui: Some(CHEST.into()), name: "Chest".into(), level: Some(Level::Anatomy), at: "t".into() }];
        ReviewData { set: ReviewSet::new(meta, models, items, concepts), verdicts, missing, done: vec![], reveals: vec![], events: 9 }
    }

    #[test]
    fn report_figures_by_hand() {
        let r = build(&data(), &ReportOptions::default());
        let flat = &r.models[0];
        // flat: a/CT C,C; a/CHEST W,C; b/MRI C,C; c/CT not judged -> 5 correct, 1 wrong
        assert_eq!((flat.overall.correct, flat.overall.wrong, flat.overall.unsure, flat.overall.not_judged), (5, 1, 0, 1));
        assert!((flat.overall.precision.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        let level = |m: &ModelReport, l: &str| m.levels.iter().find(|x| x.level == l).unwrap().counts;
        assert_eq!(level(flat, "modality").precision, Some(1.0));
        assert_eq!(level(flat, "anatomy").precision, Some(0.5));
        assert_eq!(flat.levels.iter().map(|l| l.level.as_str()).collect::<Vec<_>>(), ["modality", "anatomy"]);
        let hier = &r.models[1];
        // hier: a/CT C,C; a/ABDOMEN C; b/MRI C,C; b/AXIAL U -> 5 correct, 0 wrong, 1 unsure
        assert_eq!((hier.overall.correct, hier.overall.wrong, hier.overall.unsure, hier.overall.not_judged), (5, 0, 1, 0));
        assert_eq!(hier.overall.precision, Some(1.0));
        assert_eq!(level(hier, "plane").precision, None, "only unsure on the plane level");
        // the chest term ann added was predicted by flat, not by hier
        assert_eq!((flat.missed_terms, hier.missed_terms), (0, 1));
        assert_eq!(r.images[0].missing[0].missed_by, vec!["hier".to_string()]);
        // paired, all levels: flat 5/6 - hier 5/5
        let all = r.paired.iter().find(|p| p.level == ALL_LEVELS).unwrap();
        assert!((all.difference.unwrap() - (5.0 / 6.0 - 1.0)).abs() < 1e-12);
        assert_eq!(all.images, 2, "image c has no judged concept");
        // kappa ann vs bob over a/CT, a/CHEST, b/MRI: C=C, W≠C, C=C -> p_o 2/3;
        // ann C 2/3 W 1/3, bob C 1 -> p_e 2/3 -> kappa 0
        let k = r.kappa.iter().find(|k| k.level == ALL_LEVELS).unwrap();
        assert_eq!((k.reviewer_a.as_str(), k.reviewer_b.as_str(), k.kappa.n), ("ann", "bob", 3));
        assert!(k.kappa.kappa.unwrap().abs() < 1e-12);
        let km = r.kappa.iter().find(|k| k.level == "modality").unwrap();
        assert_eq!((km.kappa.n, km.kappa.kappa), (2, None), "both said correct to both modality concepts");
        let text = render_text(&r);
        assert!(text.contains("model flat") && text.contains("0.833") && text.contains("ann vs bob"), "{text}");
    }

    #[test]
    fn page_and_json_from_a_stored_review() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = files(tmp.path());
        let mut p = prepare(&cfg).unwrap();
        let first = p.set.items[0].clone();
        let cui = first.concepts().into_iter().next().unwrap().to_string();
        let act = |id: &str, kind| Action { request_id: id.into(), reviewer: "<b>ann</b>".into(), image: first.id.clone(), kind };
        p.store.apply(&act("1", ActionKind::Verdict { cui, verdict: Some(Verdict::Wrong) })).unwrap();
        p.store.apply(&act("2", ActionKind::AddMissing { cui: None, name: "<script>x</script>".into(), level: None })).unwrap();
        drop(p);
        let r = report_db(&cfg.db, &ReportOptions::default()).unwrap();
        assert_eq!(r.n_reviewed, 1);
        let f = write_report(&r, &tmp.path().join("out"), 10).unwrap();
        let h = std::fs::read_to_string(&f.html).unwrap();
        assert!(h.contains("data:image/jpeg;base64,"), "thumbnail inline");
        assert!(!h.contains("<script>x") && h.contains("&lt;script&gt;x"), "escaped");
        assert!(h.contains("&lt;b&gt;ann"));
        assert!(h.contains("flat") && h.contains("hier"));
        let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f.json).unwrap()).unwrap();
        assert_eq!(j["models"][0]["label"], "flat");
        assert_eq!(j["images"][0]["missing"][0]["level"], "free text");
        assert!(j["images"][0].get("thumbnail").is_none());
        assert!(ReportOptions { bootstrap: 10, ..Default::default() }.check().is_err());
        assert!(ReportOptions { max_images: 0, ..Default::default() }.check().is_err());
    }
}
