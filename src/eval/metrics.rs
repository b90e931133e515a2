//! Concept-detection metrics: the official ImageCLEF F1, per-level, per-concept, micro/macro,
//! hierarchical (Kiritchenko et al. 2006) and ontology-coherence scores, plus [`EvalReport`].
//!
//! All functions are pure and work on plain data: `id -> set of CUIs` maps for the ground truth
//! (`gt`) and the predictions (`pred`). Ontology knowledge comes in through plain closures
//! ([`EvalHooks`]), so nothing here depends on tch or on the ontology types.
//!
//! # The ImageCLEF F1, as replicated
//!
//! `evaluate-f1.py` (ImageCLEF 2017-2019 concept detection, and the same `compute_primary_score`
//! in the AIcrowd evaluators up to 2025): for every ground-truth image, upper-case both CUI lists;
//! if the GT list is empty the image is ignored (`max_score -= 1`); otherwise
//! `all = sorted(set(gt + pred))`, build 0/1 indicator vectors and take
//! `sklearn.metrics.f1_score(y_true, y_pred, average='binary')`, which on sets is
//! `2|G∩P| / (|G|+|P|)` and 0 when `P` is empty (sklearn's `zero_division` yields 0 and the
//! warning is silenced). The score is the sum divided by the number of images with a non-empty
//! GT. Duplicates inside a list do not matter (membership tests), nor does the order.
//!
//! # Policies shared by every metric here
//!
//! * CUIs are compared upper-cased (as the evaluator does); hooks receive upper-cased CUIs.
//! * The scored images are the GT images with a non-empty GT. Images with an empty GT are ignored
//!   everywhere (per-concept counts and hierarchical sums included) and counted in
//!   `n_ignored_empty_gt`.
//! * A scored image absent from `pred` is scored as an empty prediction (F1 0, all its GT
//!   concepts false negatives) and counted in `n_missing_pred`. Predictions for ids not in `gt`
//!   are ignored and counted in `n_extra_pred`. Use [`crate::eval::submission`] to turn those
//!   cases into errors.
//! * A ratio with a zero denominator is 0 (precision with nothing predicted, a mean over no
//!   images, F1 with P = R = 0), never NaN; the counts beside it say when that happened.
//!
//! Cost: one pass over the data with CUIs interned to `u32` and sorted per image, so the whole
//! [`evaluate`] is linear in the number of (image, CUI) pairs plus the hooks' own cost.
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

/// `image id -> set of CUIs`, the shape of both ground truth and predictions.
pub type LabelMap = BTreeMap<String, BTreeSet<String>>;

/// Maps a CUI (upper-cased) to its level name (e.g. `"modality"`), or `None` when unknown.
pub(crate) type LevelFn<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;
/// Maps a CUI set (upper-cased) to its ancestor closure (the set plus all its ancestors, root
/// excluded). The input set is added to the result anyway, so returning only ancestors is fine.
pub(crate) type ClosureFn<'a> = Box<dyn Fn(&BTreeSet<String>) -> BTreeSet<String> + 'a>;
/// Says whether a predicted CUI set (upper-cased) is coherent with the ontology.
pub(crate) type CoherenceFn<'a> = Box<dyn Fn(&BTreeSet<String>) -> bool + 'a>;

// ---------------------------------------------------------------------------------------------
// Case handling and interning

fn is_upper(s: &str) -> bool {
    if s.is_ascii() {
        !s.bytes().any(|b| b.is_ascii_lowercase())
    } else {
        s.to_uppercase() == s
    }
}

fn upper(s: &str) -> Cow<'_, str> {
    if is_upper(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_uppercase())
    }
}

/// The set upper-cased (borrowed when it already is).
fn upper_set(set: &BTreeSet<String>) -> Cow<'_, BTreeSet<String>> {
    if set.iter().all(|s| is_upper(s)) {
        Cow::Borrowed(set)
    } else {
        Cow::Owned(set.iter().map(|s| s.to_uppercase()).collect())
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&mut self, cui: &str) -> u32 {
        let u = upper(cui);
        if let Some(&i) = self.ids.get(u.as_ref()) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(u.to_string());
        self.ids.insert(u.into_owned(), i);
        i
    }

    /// Sorted, de-duplicated ids of `set` (case variants collapse, as in the evaluator).
    fn set(&mut self, set: &BTreeSet<String>) -> Vec<u32> {
        let mut v: Vec<u32> = set.iter().map(|s| self.get(s)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// One scored image (non-empty GT), with sorted interned CUIs.
struct Scored {
    gt: Vec<u32>,
    /// Empty when the prediction is missing.
    pred: Vec<u32>,
}

/// The data interned once and shared by every metric.
struct Prepared {
    names: Vec<String>,
    images: Vec<Scored>,
    n_ignored_empty_gt: usize,
    n_missing_pred: usize,
    n_extra_pred: usize,
}

impl Prepared {
    fn new(gt: &LabelMap, pred: &LabelMap) -> Self {
        let mut interner = Interner::default();
        let mut images = Vec::with_capacity(gt.len());
        let (mut n_ignored_empty_gt, mut n_missing_pred) = (0, 0);
        for (id, g) in gt {
            if g.is_empty() {
                n_ignored_empty_gt += 1;
                continue;
            }
            let gt_ids = interner.set(g);
            let pred_ids = match pred.get(id) {
                Some(p) => interner.set(p),
                None => {
                    n_missing_pred += 1;
                    Vec::new()
                }
            };
            images.push(Scored { gt: gt_ids, pred: pred_ids });
        }
        let n_extra_pred = pred.keys().filter(|id| !gt.contains_key(*id)).count();
        Prepared { names: interner.names, images, n_ignored_empty_gt, n_missing_pred, n_extra_pred }
    }

    fn names_of(&self, ids: &[u32]) -> BTreeSet<String> {
        ids.iter().map(|&i| self.names[i as usize].clone()).collect()
    }
}

/// |a ∩ b| for two sorted slices.
fn intersection_len(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Harmonic mean of p and r; 0 when both are 0.
fn harmonic(p: f64, r: f64) -> f64 {
    ratio(2.0 * p * r, p + r)
}

/// Image-level F1/P/R from counts; `g > 0` is assumed by the callers.
fn prf(tp: usize, g: usize, p: usize) -> (f64, f64, f64) {
    let f1 = ratio(2.0 * tp as f64, (g + p) as f64);
    (f1, ratio(tp as f64, p as f64), ratio(tp as f64, g as f64))
}

// ---------------------------------------------------------------------------------------------
// Per image

fn image_counts(gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> Option<(usize, usize, usize)> {
    let g = upper_set(gt);
    if g.is_empty() {
        return None;
    }
    let p = upper_set(pred);
    let tp = g.intersection(&p).count();
    Some((tp, g.len(), p.len()))
}

/// F1 of one image as the official evaluator computes it: `2|G∩P| / (|G|+|P|)`, case-insensitive.
/// `None` when the GT is empty (the image is ignored); `Some(0.0)` when the prediction is empty.
pub(crate) fn per_image_f1(gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> Option<f64> {
    image_counts(gt, pred).map(|(tp, g, p)| prf(tp, g, p).0)
}

/// Precision `|G∩P| / |P|` of one image. `None` when the GT is empty; 0 when `P` is empty.
pub fn per_image_precision(gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> Option<f64> {
    image_counts(gt, pred).map(|(tp, g, p)| prf(tp, g, p).1)
}

/// Recall `|G∩P| / |G|` of one image. `None` when the GT is empty.
pub fn per_image_recall(gt: &BTreeSet<String>, pred: &BTreeSet<String>) -> Option<f64> {
    image_counts(gt, pred).map(|(tp, g, p)| prf(tp, g, p).2)
}

// ---------------------------------------------------------------------------------------------
// ImageCLEF F1

/// The official ImageCLEF concept-detection score and what went into it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageClefScore {
    /// Mean per-image F1 over the scored images; 0 when there are none.
    pub f1: f64,
    /// Images scored: GT images with a non-empty GT (missing predictions included).
    pub n_images: usize,
    /// GT images with an empty GT, ignored.
    pub n_ignored_empty_gt: usize,
    /// Scored images with no entry in `pred`, each scored 0.
    pub n_missing_pred: usize,
    /// Entries in `pred` whose id is not in `gt`, ignored.
    pub n_extra_pred: usize,
}

fn imageclef_prepared(p: &Prepared) -> ImageClefScore {
    let sum: f64 =
        p.images.iter().map(|im| prf(intersection_len(&im.gt, &im.pred), im.gt.len(), im.pred.len()).0).sum();
    ImageClefScore {
        f1: ratio(sum, p.images.len() as f64),
        n_images: p.images.len(),
        n_ignored_empty_gt: p.n_ignored_empty_gt,
        n_missing_pred: p.n_missing_pred,
        n_extra_pred: p.n_extra_pred,
    }
}

/// The ImageCLEF concept-detection F1 (see the module docs for the exact replication).
pub fn imageclef_f1(gt: &LabelMap, pred: &LabelMap) -> ImageClefScore {
    imageclef_prepared(&Prepared::new(gt, pred))
}

// ---------------------------------------------------------------------------------------------
// Per level

/// Mean image-level scores restricted to the CUIs of one level.
///
/// `f1`, `precision` and `recall` average over the images whose ground truth has the level (the
/// ImageCLEF secondary-score rule), so they cannot see a level predicted on an image that lacks
/// it; `f1_any` and `fp_per_image_without` do: `f1_any` averages over the images where the ground
/// truth *or* the prediction has the level (an image with only predicted concepts scores 0), and
/// `fp_per_image_without` counts the level's predicted concepts per image whose ground truth has
/// none of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelScore {
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    /// Images whose GT restricted to this level is non-empty (the ones averaged over).
    pub n_images: usize,
    /// F1 over the images where the GT or the prediction has the level.
    pub f1_any: f64,
    /// Images where the GT or the prediction has the level.
    pub images_any: usize,
    /// Predicted concepts of the level per image whose GT lacks the level (0 without such images).
    pub fp_per_image_without: f64,
    /// Scored images whose GT lacks the level.
    pub images_without: usize,
}

/// Level name per interned CUI, level names sorted; also the number of CUIs with no level.
fn levels_of(names: &[String], level_of: &dyn Fn(&str) -> Option<String>) -> (Vec<Option<u32>>, Vec<String>, usize) {
    let mut level_ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut raw = Vec::with_capacity(names.len());
    let mut n_unleveled = 0;
    for n in names {
        match level_of(n) {
            Some(l) => {
                let next = level_ids.len() as u32;
                raw.push(Some(*level_ids.entry(l).or_insert(next)));
            }
            None => {
                n_unleveled += 1;
                raw.push(None);
            }
        }
    }
    // Renumber so that level indices follow the sorted names.
    let sorted: Vec<String> = level_ids.keys().cloned().collect();
    let mut remap = vec![0u32; sorted.len()];
    for (rank, name) in sorted.iter().enumerate() {
        remap[level_ids[name] as usize] = rank as u32;
    }
    let of = raw.into_iter().map(|l| l.map(|l| remap[l as usize])).collect();
    (of, sorted, n_unleveled)
}

fn per_level_prepared(
    p: &Prepared,
    level_of: &dyn Fn(&str) -> Option<String>,
) -> (BTreeMap<String, LevelScore>, usize) {
    let (of, level_names, n_unleveled) = levels_of(&p.names, level_of);
    let nl = level_names.len();
    // Per level: sums of f1, precision, recall; images with the level in the GT; images with the
    // level only in the prediction; predicted concepts on those images.
    #[derive(Clone, Copy, Default)]
    struct Sums {
        f1: f64,
        precision: f64,
        recall: f64,
        with_gt: usize,
        pred_only: usize,
        fp_without: usize,
    }
    let mut sums = vec![Sums::default(); nl];
    // Per-image counts per level: (tp, |G_l|, |P_l|).
    let mut counts = vec![(0usize, 0usize, 0usize); nl];
    let mut touched: Vec<usize> = Vec::new();
    for im in &p.images {
        for &c in &im.gt {
            if let Some(l) = of[c as usize] {
                let l = l as usize;
                if counts[l] == (0, 0, 0) {
                    touched.push(l);
                }
                counts[l].1 += 1;
            }
        }
        let (mut i, mut j) = (0, 0);
        while j < im.pred.len() {
            let c = im.pred[j];
            while i < im.gt.len() && im.gt[i] < c {
                i += 1;
            }
            let hit = i < im.gt.len() && im.gt[i] == c;
            if let Some(l) = of[c as usize] {
                let l = l as usize;
                if counts[l] == (0, 0, 0) {
                    touched.push(l);
                }
                counts[l].2 += 1;
                if hit {
                    counts[l].0 += 1;
                }
            }
            j += 1;
        }
        for &l in &touched {
            let (tp, g, pn) = counts[l];
            let s = &mut sums[l];
            if g > 0 {
                let (f1, pr, rc) = prf(tp, g, pn);
                s.f1 += f1;
                s.precision += pr;
                s.recall += rc;
                s.with_gt += 1;
            } else {
                s.pred_only += 1;
                s.fp_without += pn;
            }
            counts[l] = (0, 0, 0);
        }
        touched.clear();
    }
    let n_scored = p.images.len();
    let out = level_names
        .into_iter()
        .zip(sums)
        .filter(|(_, s)| s.with_gt > 0)
        .map(|(name, s)| {
            let n_f = s.with_gt as f64;
            let images_without = n_scored - s.with_gt;
            let score = LevelScore {
                f1: s.f1 / n_f,
                precision: s.precision / n_f,
                recall: s.recall / n_f,
                n_images: s.with_gt,
                f1_any: s.f1 / (s.with_gt + s.pred_only) as f64,
                images_any: s.with_gt + s.pred_only,
                fp_per_image_without: ratio(s.fp_without as f64, images_without as f64),
                images_without,
            };
            (name, score)
        })
        .collect();
    (out, n_unleveled)
}

/// Scores per ontology level, in the style of the ImageCLEF 2025 secondary score: for each level,
/// both sets are restricted to that level's CUIs and the image-level F1/precision/recall are
/// averaged over the images whose restricted GT is non-empty.
///
/// Policies: an image whose restricted prediction is empty has precision 0 (and F1 0); CUIs for
/// which `level_of` returns `None` belong to no level; a level that occurs only in predictions
/// has no image to average over and is left out of the map. See [`LevelScore`] for `f1_any` and
/// the false positives on images without the level.
pub fn per_level_scores(
    gt: &LabelMap,
    pred: &LabelMap,
    level_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, LevelScore> {
    per_level_prepared(&Prepared::new(gt, pred), level_of).0
}

// ---------------------------------------------------------------------------------------------
// Per concept, micro and macro

/// Detection counts and scores of one concept over the scored images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConceptScore {
    /// Upper-cased CUI.
    pub cui: String,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// Images whose GT holds the concept (`tp + fn`).
    pub support: usize,
    /// `tp / (tp + fp)`; 0 when never predicted.
    pub precision: f64,
    /// `tp / support`; 0 when there is no support.
    pub recall: f64,
    /// `2tp / (2tp + fp + fn)`; 0 when the concept is neither in the GT nor predicted.
    pub f1: f64,
}

impl ConceptScore {
    fn from_counts(cui: String, tp: usize, fp: usize, fn_: usize) -> Self {
        ConceptScore {
            cui,
            tp,
            fp,
            fn_,
            support: tp + fn_,
            precision: ratio(tp as f64, (tp + fp) as f64),
            recall: ratio(tp as f64, (tp + fn_) as f64),
            f1: ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64),
        }
    }
}

fn per_concept_prepared(p: &Prepared) -> Vec<ConceptScore> {
    let k = p.names.len();
    let (mut tp, mut fp, mut fn_) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    for im in &p.images {
        let (mut i, mut j) = (0, 0);
        while i < im.gt.len() || j < im.pred.len() {
            let g = im.gt.get(i).copied();
            let q = im.pred.get(j).copied();
            match (g, q) {
                (Some(a), Some(b)) if a == b => {
                    tp[a as usize] += 1;
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    fn_[a as usize] += 1;
                    i += 1;
                }
                (Some(a), None) => {
                    fn_[a as usize] += 1;
                    i += 1;
                }
                (_, Some(b)) => {
                    fp[b as usize] += 1;
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }
    let mut out: Vec<ConceptScore> =
        (0..k).map(|c| ConceptScore::from_counts(p.names[c].clone(), tp[c], fp[c], fn_[c])).collect();
    out.sort_by(|a, b| a.cui.cmp(&b.cui));
    out
}

/// Per-concept TP/FP/FN, precision, recall and F1 over the scored images, sorted by CUI. Every
/// concept that occurs in a scored image's GT or prediction is listed (support 0 included).
pub fn per_concept_scores(gt: &LabelMap, pred: &LabelMap) -> Vec<ConceptScore> {
    per_concept_prepared(&Prepared::new(gt, pred))
}

/// Micro and macro averages over concepts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Averages {
    /// From TP/FP/FN summed over all concepts (support 0 included: their FPs count).
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    /// Unweighted means over the concepts with support > 0.
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    /// Concepts in the macro means.
    pub n_concepts_macro: usize,
    /// Concepts left out of the macro means because they have no support (only false positives).
    pub n_skipped_no_support: usize,
}

/// Micro and macro averages of per-concept scores. Macro means skip concepts with no support
/// (their recall is undefined) and report how many were skipped; all means are 0 over nothing.
pub(crate) fn micro_macro(scores: &[ConceptScore]) -> Averages {
    let (tp, fp, fn_) = scores.iter().fold((0usize, 0usize, 0usize), |a, s| (a.0 + s.tp, a.1 + s.fp, a.2 + s.fn_));
    let supported: Vec<&ConceptScore> = scores.iter().filter(|s| s.support > 0).collect();
    let n = supported.len() as f64;
    let mean = |f: fn(&ConceptScore) -> f64| ratio(supported.iter().map(|s| f(s)).sum(), n);
    Averages {
        micro_precision: ratio(tp as f64, (tp + fp) as f64),
        micro_recall: ratio(tp as f64, (tp + fn_) as f64),
        micro_f1: ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64),
        macro_precision: mean(|s| s.precision),
        macro_recall: mean(|s| s.recall),
        macro_f1: mean(|s| s.f1),
        n_concepts_macro: supported.len(),
        n_skipped_no_support: scores.len() - supported.len(),
    }
}

// ---------------------------------------------------------------------------------------------
// Hierarchical

/// Hierarchical precision, recall and F1 (Kiritchenko, Matwin, Nock & Famili 2006).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hierarchical {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn hierarchical_prepared(p: &Prepared, closure: &dyn Fn(&BTreeSet<String>) -> BTreeSet<String>) -> Hierarchical {
    let close = |ids: &[u32]| -> BTreeSet<String> {
        if ids.is_empty() {
            return BTreeSet::new();
        }
        let set = p.names_of(ids);
        let closed = closure(&set);
        let mut closed = match upper_set(&closed) {
            Cow::Borrowed(_) => closed,
            Cow::Owned(u) => u,
        };
        closed.extend(set);
        closed
    };
    let (mut inter, mut n_pred, mut n_true) = (0usize, 0usize, 0usize);
    for im in &p.images {
        let t = close(&im.gt);
        let q = close(&im.pred);
        inter += t.intersection(&q).count();
        n_true += t.len();
        n_pred += q.len();
    }
    let precision = ratio(inter as f64, n_pred as f64);
    let recall = ratio(inter as f64, n_true as f64);
    Hierarchical { precision, recall, f1: harmonic(precision, recall) }
}

/// Hierarchical P/R/F1, micro-averaged over the scored images:
/// `hP = Σ|Ĉᵢ∩Ĉ'ᵢ| / Σ|Ĉ'ᵢ|`, `hR = Σ|Ĉᵢ∩Ĉ'ᵢ| / Σ|Ĉᵢ|`, `hF = 2·hP·hR / (hP+hR)`, where `Ĉ`
/// (true) and `Ĉ'` (predicted) are the sets extended with their ancestors by `closure`.
///
/// `closure` gets upper-cased sets and should leave out the root (which every set shares);
/// the input set is always added to its result. An empty prediction has an empty closure
/// (the closure is not called). Images with an empty GT are ignored; zero denominators give 0.
pub fn hierarchical_prf(
    gt: &LabelMap,
    pred: &LabelMap,
    closure: &dyn Fn(&BTreeSet<String>) -> BTreeSet<String>,
) -> Hierarchical {
    hierarchical_prepared(&Prepared::new(gt, pred), closure)
}

// ---------------------------------------------------------------------------------------------
// Coherence

/// `(coherent, judged)`: how many non-empty predicted sets `is_coherent` accepts, out of how many.
pub(crate) fn coherence_counts(pred: &LabelMap, is_coherent: &dyn Fn(&BTreeSet<String>) -> bool) -> (usize, usize) {
    let mut n = 0;
    let mut ok = 0;
    for set in pred.values().filter(|s| !s.is_empty()) {
        n += 1;
        if is_coherent(&upper_set(set)) {
            ok += 1;
        }
    }
    (ok, n)
}

/// Share of predicted images whose (upper-cased) set `is_coherent` accepts.
///
/// Policies: every entry of `pred` is judged, whether or not it is in the GT; an empty
/// predicted set says nothing about the ontology and is not judged; with no image to judge the
/// rate is 1.0 (no incoherent prediction exists). See [`coherence_counts`] for the counts.
pub fn coherence_rate(pred: &LabelMap, is_coherent: &dyn Fn(&BTreeSet<String>) -> bool) -> f64 {
    let (ok, n) = coherence_counts(pred, is_coherent);
    if n == 0 {
        1.0
    } else {
        ok as f64 / n as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Report

/// Optional ontology hooks for [`evaluate`]; each metric that needs one is skipped when it is
/// `None`. All hooks receive upper-cased CUIs. `Default` is "no hooks".
#[derive(Default)]
pub struct EvalHooks<'a> {
    /// Level of a CUI, for [`per_level_scores`].
    pub level_of: Option<LevelFn<'a>>,
    /// Ancestor closure of a CUI set, for [`hierarchical_prf`].
    pub closure: Option<ClosureFn<'a>>,
    /// Coherence of a predicted set, for [`coherence_rate`].
    pub is_coherent: Option<CoherenceFn<'a>>,
}

/// What was left out of, or scored specially in, an [`EvalReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SkippedCounts {
    /// Scored images with no prediction (each scored 0).
    pub missing_predictions: usize,
    /// GT images with an empty GT (ignored by every metric).
    pub ignored_empty_gt: usize,
    /// Predictions for ids not in the GT (ignored, except by the coherence rate).
    pub extra_predictions: usize,
    /// Distinct CUIs of the scored images with no level (only when a `level_of` hook is given).
    pub concepts_without_level: usize,
    /// Non-empty predicted sets judged for coherence (only when an `is_coherent` hook is given).
    pub coherence_judged: usize,
}

/// Everything [`evaluate`] computes, ready for JSON (`serde`) or a plain-text table (`Display`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The official ImageCLEF F1 (mean over `n_images`).
    pub imageclef_f1: f64,
    /// Images scored (non-empty GT).
    pub n_images: usize,
    /// Per-level scores; empty without a `level_of` hook.
    pub per_level: BTreeMap<String, LevelScore>,
    /// Per-concept scores, sorted by CUI.
    pub per_concept: Vec<ConceptScore>,
    pub averages: Averages,
    /// `None` without a `closure` hook.
    pub hierarchical: Option<Hierarchical>,
    /// `None` without an `is_coherent` hook.
    pub coherence_rate: Option<f64>,
    pub skipped: SkippedCounts,
    /// The secondary score, when a restricted concept set was given ([`secondary_f1`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<SecondaryScore>,
}

/// The ImageCLEF 2024/2025 secondary score: the official F1 with both sets restricted to a
/// concept set (in 2025: modality and a few body regions, checked by hand).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondaryScore {
    pub f1: f64,
    /// Images whose restricted ground truth is non-empty (the ones averaged over).
    pub n_images: usize,
    /// Size of the concept set.
    pub n_concepts: usize,
    /// Where the set came from (a file, or levels of the ontology).
    pub source: String,
}

/// The secondary score as the 2025 evaluator computes it: ground truth and prediction restricted to
/// `allowed`, images whose restricted truth is empty left out, per-image F1 averaged.
pub fn secondary_f1(gt: &LabelMap, pred: &LabelMap, allowed: &BTreeSet<String>, source: &str) -> SecondaryScore {
    let keep = |m: &LabelMap| -> LabelMap { m.iter().map(|(k, v)| (k.clone(), upper_set(v).iter().filter(|c| allowed.contains(*c)).cloned().collect())).collect() };
    let s = imageclef_f1(&keep(gt), &keep(pred));
    SecondaryScore { f1: s.f1, n_images: s.n_images, n_concepts: allowed.len(), source: source.to_string() }
}

/// Compute every metric in one pass over interned data; hooks enable the ontology metrics.
pub fn evaluate(gt: &LabelMap, pred: &LabelMap, hooks: &EvalHooks) -> EvalReport {
    let p = Prepared::new(gt, pred);
    let clef = imageclef_prepared(&p);
    let (per_level, concepts_without_level) = match &hooks.level_of {
        Some(f) => per_level_prepared(&p, f.as_ref()),
        None => (BTreeMap::new(), 0),
    };
    let per_concept = per_concept_prepared(&p);
    let averages = micro_macro(&per_concept);
    let hierarchical = hooks.closure.as_ref().map(|f| hierarchical_prepared(&p, f.as_ref()));
    let (coherence_rate, coherence_judged) = match &hooks.is_coherent {
        Some(f) => {
            let (ok, n) = coherence_counts(pred, f.as_ref());
            (Some(if n == 0 { 1.0 } else { ok as f64 / n as f64 }), n)
        }
        None => (None, 0),
    };
    EvalReport {
        imageclef_f1: clef.f1,
        n_images: clef.n_images,
        per_level,
        per_concept,
        averages,
        hierarchical,
        coherence_rate,
        skipped: SkippedCounts {
            missing_predictions: clef.n_missing_pred,
            ignored_empty_gt: clef.n_ignored_empty_gt,
            extra_predictions: clef.n_extra_pred,
            concepts_without_level,
            coherence_judged,
        },
        secondary: None,
    }
}

/// How many concepts the plain-text report lists (by support); the JSON has them all.
const DISPLAY_TOP_CONCEPTS: usize = 20;

/// `n thing` or `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl EvalReport {
    /// The report as text, naming concepts with `name_of` (an ontology's names, say).
    pub fn render(&self, name_of: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        self.write_text(&mut out, name_of).expect("writing to a String cannot fail");
        out
    }

    fn write_text(&self, f: &mut dyn fmt::Write, name_of: &dyn Fn(&str) -> Option<String>) -> fmt::Result {
        let s = &self.skipped;
        writeln!(f, "ImageCLEF F1       {:.4}   over {}", self.imageclef_f1, count(self.n_images, "image", "images"))?;
        writeln!(
            f,
            "                   missing predictions (scored 0): {}, empty ground truth (not scored): {}, predictions for unknown images (ignored): {}",
            s.missing_predictions, s.ignored_empty_gt, s.extra_predictions
        )?;
        if !self.per_level.is_empty() {
            writeln!(f)?;
            writeln!(f, "{:<12} {:>8} {:>9} {:>8} {:>8}   {:>8} {:>8}   {:>12} {:>8}", "level", "F1", "precision", "recall", "images", "F1 any", "images", "FP/img w/o", "images")?;
            for (name, l) in &self.per_level {
                writeln!(
                    f,
                    "{:<12} {:>8.4} {:>9.4} {:>8.4} {:>8}   {:>8.4} {:>8}   {:>12.4} {:>8}",
                    name, l.f1, l.precision, l.recall, l.n_images, l.f1_any, l.images_any, l.fp_per_image_without, l.images_without
                )?;
            }
            writeln!(f, "(F1: images whose truth has the level; F1 any: images whose truth or prediction has it;")?;
            writeln!(f, " FP/img w/o: the level's predicted concepts per image whose truth lacks the level)")?;
            if s.concepts_without_level > 0 {
                writeln!(f, "({} have no level and are in no row above)", count(s.concepts_without_level, "concept", "concepts"))?;
            }
        }
        let a = &self.averages;
        writeln!(f)?;
        writeln!(f, "{:<18} {:>8} {:>9} {:>8}", "concepts", "F1", "precision", "recall")?;
        writeln!(f, "{:<18} {:>8.4} {:>9.4} {:>8.4}", "micro", a.micro_f1, a.micro_precision, a.micro_recall)?;
        writeln!(f, "{:<18} {:>8.4} {:>9.4} {:>8.4}", "macro", a.macro_f1, a.macro_precision, a.macro_recall)?;
        writeln!(f, "(macro over {}; {} predicted but never in the ground truth left out)", count(a.n_concepts_macro, "concept", "concepts"), a.n_skipped_no_support)?;
        if let Some(h) = &self.hierarchical {
            writeln!(f, "{:<18} {:>8.4} {:>9.4} {:>8.4}", "hierarchical", h.f1, h.precision, h.recall)?;
            let same = (h.f1 - a.micro_f1).abs() < 5e-5 && (h.precision - a.micro_precision).abs() < 5e-5;
            if same {
                writeln!(f, "(hierarchical = micro here: both sets already hold every ancestor of their concepts, so closing them adds nothing)")?;
            } else {
                writeln!(f, "(hierarchical: micro over both sets closed under the ontology, Kiritchenko et al. 2006)")?;
            }
        }
        if let Some(c) = self.coherence_rate {
            writeln!(f, "coherence rate     {:.4}   over {}", c, count(s.coherence_judged, "non-empty prediction", "non-empty predictions"))?;
        }
        if let Some(sec) = &self.secondary {
            writeln!(
                f,
                "secondary F1       {:.4}   over {} (both sets restricted to the {} of {})",
                sec.f1,
                count(sec.n_images, "image", "images"),
                count(sec.n_concepts, "concept", "concepts"),
                sec.source
            )?;
        }
        if !self.per_concept.is_empty() {
            let mut top: Vec<&ConceptScore> = self.per_concept.iter().collect();
            top.sort_by(|x, y| y.support.cmp(&x.support).then_with(|| x.cui.cmp(&y.cui)));
            let shown = top.len().min(DISPLAY_TOP_CONCEPTS);
            writeln!(f)?;
            writeln!(f, "{:<10} {:<28} {:>7} {:>6} {:>6} {:>6} {:>8} {:>9} {:>8}", "concept", "name", "support", "tp", "fp", "fn", "F1", "precision", "recall")?;
            for c in &top[..shown] {
                let name: String = name_of(&c.cui).unwrap_or_default().chars().take(28).collect();
                writeln!(f, "{:<10} {:<28} {:>7} {:>6} {:>6} {:>6} {:>8.4} {:>9.4} {:>8.4}", c.cui, name, c.support, c.tp, c.fp, c.fn_, c.f1, c.precision, c.recall)?;
            }
            if top.len() > shown {
                writeln!(f, "... {} more in the JSON report (--json)", count(top.len() - shown, "concept", "concepts"))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&|_| None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn map(v: &[(&str, &[&str])]) -> LabelMap {
        v.iter().map(|(id, c)| (id.to_string(), set(c))).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < TOL
    }

    #[test]
    fn per_image_edge_cases() {
        let g = set(&["A", "B"]);
        assert_eq!(per_image_f1(&g, &g), Some(1.0));
        assert_eq!(per_image_f1(&g, &set(&[])), Some(0.0));
        assert_eq!(per_image_precision(&g, &set(&[])), Some(0.0));
        assert_eq!(per_image_recall(&g, &set(&[])), Some(0.0));
        assert_eq!(per_image_f1(&set(&[]), &g), None);
        // G={A,B}, P={B,C}: 2*1/(2+2) = 0.5, P = R = 1/2.
        let p = set(&["B", "C"]);
        assert!(close(per_image_f1(&g, &p).unwrap(), 0.5));
        assert!(close(per_image_precision(&g, &p).unwrap(), 0.5));
        assert!(close(per_image_recall(&g, &p).unwrap(), 0.5));
        // Lower-case prediction matches; case variants collapse to one concept.
        assert_eq!(per_image_f1(&g, &set(&["a", "b"])), Some(1.0));
        assert_eq!(per_image_f1(&g, &set(&["a", "A", "b"])), Some(1.0));
    }

    #[test]
    fn imageclef_perfect_empty_and_ignored() {
        let gt = map(&[("1", &["A", "B"]), ("2", &["C"]), ("3", &[])]);
        let s = imageclef_f1(&gt, &gt);
        assert_eq!((s.f1, s.n_images, s.n_ignored_empty_gt, s.n_missing_pred), (1.0, 2, 1, 0));
        let empty = map(&[("1", &[]), ("2", &[]), ("3", &[])]);
        assert_eq!(imageclef_f1(&gt, &empty).f1, 0.0);
        // The empty-GT image is ignored whatever is predicted for it.
        let pred = map(&[("1", &["a", "b"]), ("2", &["c"]), ("3", &["X", "Y"])]);
        assert_eq!(imageclef_f1(&gt, &pred).f1, 1.0);
    }

    #[test]
    fn imageclef_three_image_mean_by_hand() {
        // img1: G={A,B,C}, P={A,D}   -> 2*1/(3+2) = 0.4
        // img2: G={B},     P={B}     -> 1
        // img3: G={C,D},   P={}      -> 0
        // mean = 1.4 / 3 = 0.466666...
        let gt = map(&[("1", &["A", "B", "C"]), ("2", &["B"]), ("3", &["C", "D"])]);
        let pred = map(&[("1", &["A", "D"]), ("2", &["b"]), ("3", &[])]);
        let s = imageclef_f1(&gt, &pred);
        assert!(close(s.f1, 1.4 / 3.0), "{}", s.f1);
        assert_eq!(s.n_images, 3);
    }

    #[test]
    fn missing_prediction_scores_zero_and_extra_is_ignored() {
        let gt = map(&[("1", &["A"]), ("2", &["B"])]);
        let pred = map(&[("1", &["A"]), ("9", &["Z"])]);
        let s = imageclef_f1(&gt, &pred);
        assert!(close(s.f1, 0.5));
        assert_eq!((s.n_images, s.n_missing_pred, s.n_extra_pred), (2, 1, 1));
    }

    #[test]
    fn zero_scored_images_gives_zero() {
        let gt = map(&[("1", &[])]);
        let s = imageclef_f1(&gt, &gt);
        assert_eq!((s.f1, s.n_images, s.n_ignored_empty_gt), (0.0, 0, 1));
    }

    fn two_levels(c: &str) -> Option<String> {
        match c {
            "M1" | "M2" => Some("modality".into()),
            "X1" | "X2" | "X3" => Some("anatomy".into()),
            _ => None,
        }
    }

    #[test]
    fn secondary_score_by_hand() {
        // allowed {M1, X1}: img1 G={M1,X1,X2}->{M1,X1}, P={M1,X3}->{M1}: 2*1/(2+1) = 2/3
        // img2 G={X2}->{} : left out (as the 2025 evaluator does); img3 G={M1}, P missing -> 0
        let gt = map(&[("1", &["M1", "X1", "X2"]), ("2", &["X2"]), ("3", &["M1"])]);
        let pred = map(&[("1", &["m1", "X3"]), ("2", &["X1"])]);
        let allowed: BTreeSet<String> = ["M1", "X1"].iter().map(|s| s.to_string()).collect();
        let s = secondary_f1(&gt, &pred, &allowed, "test");
        assert_eq!((s.n_images, s.n_concepts), (2, 2));
        assert!(close(s.f1, (2.0 / 3.0 + 0.0) / 2.0), "{s:?}");
    }

    #[test]
    fn per_level_by_hand() {
        // img1: G={M1,X1,X2} P={M1,X1,X3}
        //   modality: G={M1} P={M1}        f1 1,   p 1,   r 1
        //   anatomy:  G={X1,X2} P={X1,X3}  f1 .5,  p .5,  r .5
        // img2: G={M2} P={M1,X1}
        //   modality: G={M2} P={M1}        f1 0, p 0, r 0
        //   anatomy: GT empty -> not scored (its FP X1 does not count)
        // img3: G={X2} P={}  (missing)
        //   anatomy:  f1 0, p 0 (empty prediction), r 0
        // modality: mean over 2 images: f1 .5, p .5, r .5
        // anatomy:  mean over 2 images: f1 .25, p .25, r .25
        let gt = map(&[("1", &["M1", "X1", "X2"]), ("2", &["M2"]), ("3", &["X2"])]);
        let pred = map(&[("1", &["m1", "X1", "X3"]), ("2", &["M1", "X1"])]);
        let lv = per_level_scores(&gt, &pred, &two_levels);
        assert_eq!(lv.len(), 2);
        let m = lv["modality"];
        assert!(close(m.f1, 0.5) && close(m.precision, 0.5) && close(m.recall, 0.5) && m.n_images == 2, "{m:?}");
        let a = lv["anatomy"];
        assert!(close(a.f1, 0.25) && close(a.precision, 0.25) && close(a.recall, 0.25) && a.n_images == 2, "{a:?}");
        // f1_any also scores img2's anatomy (predicted X1, truth has none): (.5 + 0 + 0) / 3;
        // img2 is the one image without anatomy in its truth, and it got one anatomy concept
        assert!(close(a.f1_any, 0.5 / 3.0) && a.images_any == 3, "{a:?}");
        assert!(close(a.fp_per_image_without, 1.0) && a.images_without == 1, "{a:?}");
        // modality: img3 has neither truth nor prediction on it, so f1_any = f1; no false positive
        assert!(close(m.f1_any, 0.5) && m.images_any == 2 && m.images_without == 1 && m.fp_per_image_without == 0.0, "{m:?}");
    }

    #[test]
    fn per_concept_and_micro_macro_by_hand() {
        // img1: G={A,B} P={A,C}; img2: G={A} P={B}; img3: G={} P={C} (ignored)
        // A: tp1 fp0 fn1 -> P 1, R .5, F1 2/3
        // B: tp0 fp1 fn1 -> P 0, R 0, F1 0
        // C: tp0 fp1 fn0 -> support 0: P 0, R 0, F1 0 (skipped by macro)
        let gt = map(&[("1", &["A", "B"]), ("2", &["A"]), ("3", &[])]);
        let pred = map(&[("1", &["A", "C"]), ("2", &["B"]), ("3", &["C"])]);
        let pc = per_concept_scores(&gt, &pred);
        let cuis: Vec<&str> = pc.iter().map(|c| c.cui.as_str()).collect();
        assert_eq!(cuis, ["A", "B", "C"]);
        assert_eq!((pc[0].tp, pc[0].fp, pc[0].fn_, pc[0].support), (1, 0, 1, 2));
        assert!(close(pc[0].precision, 1.0) && close(pc[0].recall, 0.5) && close(pc[0].f1, 2.0 / 3.0));
        assert_eq!((pc[1].tp, pc[1].fp, pc[1].fn_, pc[1].support), (0, 1, 1, 1));
        assert_eq!((pc[2].tp, pc[2].fp, pc[2].fn_, pc[2].support), (0, 1, 0, 0));
        assert_eq!((pc[2].precision, pc[2].recall, pc[2].f1), (0.0, 0.0, 0.0));
        let av = micro_macro(&pc);
        // micro: tp 1, fp 2, fn 2 -> P 1/3, R 1/3, F1 1/3
        assert!(
            close(av.micro_precision, 1.0 / 3.0) && close(av.micro_recall, 1.0 / 3.0) && close(av.micro_f1, 1.0 / 3.0)
        );
        // macro over A and B: P (1+0)/2, R (.5+0)/2, F1 (2/3+0)/2
        assert!(close(av.macro_precision, 0.5) && close(av.macro_recall, 0.25) && close(av.macro_f1, 1.0 / 3.0));
        assert_eq!((av.n_concepts_macro, av.n_skipped_no_support), (2, 1));
        let none = micro_macro(&[]);
        assert_eq!((none.micro_f1, none.macro_f1, none.n_concepts_macro), (0.0, 0.0, 0));
    }

    /// Tree (root excluded): R1 -> {A -> {A1, A2}, B -> {B1}}.
    fn tree_closure(s: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for c in s {
            let mut cur = Some(c.as_str());
            while let Some(x) = cur {
                out.insert(x.to_string());
                cur = match x {
                    "A1" | "A2" => Some("A"),
                    "B1" => Some("B"),
                    _ => None,
                };
            }
        }
        out
    }

    #[test]
    fn hierarchical_by_hand() {
        // img1: G={A1} -> {A1,A};  P={A2} -> {A2,A};  ∩ = {A}  (1)
        // img2: G={B1} -> {B1,B};  P={B1,A1} -> {B1,B,A1,A}; ∩ = {B1,B} (2)
        // img3: G={}  ignored
        // hP = 3/6 = .5, hR = 3/4 = .75, hF = 2*.5*.75/1.25 = .6
        let gt = map(&[("1", &["A1"]), ("2", &["B1"]), ("3", &[])]);
        let pred = map(&[("1", &["a2"]), ("2", &["B1", "A1"]), ("3", &["B"])]);
        let h = hierarchical_prf(&gt, &pred, &tree_closure);
        assert!(close(h.precision, 0.5) && close(h.recall, 0.75) && close(h.f1, 0.6), "{h:?}");
        // Nothing predicted: all zero, no NaN.
        let h0 = hierarchical_prf(&gt, &map(&[]), &tree_closure);
        assert_eq!((h0.precision, h0.recall, h0.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn coherence_rate_policy() {
        // Coherent = no two CUIs from the same subtree A.
        let coherent = |s: &BTreeSet<String>| s.iter().filter(|c| c.starts_with('A')).count() <= 1;
        let pred = map(&[("1", &["A1", "B1"]), ("2", &["a1", "A2"]), ("3", &[]), ("4", &["B1"])]);
        // Judged: 1, 2, 4 (3 is empty); coherent: 1, 4.
        assert_eq!(coherence_counts(&pred, &coherent), (2, 3));
        assert!(close(coherence_rate(&pred, &coherent), 2.0 / 3.0));
        assert_eq!(coherence_rate(&map(&[("1", &[])]), &coherent), 1.0);
    }

    #[test]
    fn evaluate_gathers_everything_and_prints() {
        let gt = map(&[("1", &["M1", "X1", "X2"]), ("2", &["M2"]), ("3", &["X2"]), ("4", &[])]);
        let pred = map(&[("1", &["M1", "X1", "X3"]), ("2", &["M1", "X1"]), ("9", &["M1"])]);
        let hooks = EvalHooks {
            level_of: Some(Box::new(two_levels)),
            closure: Some(Box::new(|s: &BTreeSet<String>| s.clone())),
            is_coherent: Some(Box::new(|s: &BTreeSet<String>| s.len() < 3)),
        };
        let r = evaluate(&gt, &pred, &hooks);
        assert_eq!(r.imageclef_f1, imageclef_f1(&gt, &pred).f1);
        assert_eq!(r.per_level, per_level_scores(&gt, &pred, &two_levels));
        assert_eq!(r.per_concept, per_concept_scores(&gt, &pred));
        assert_eq!(
            r.skipped,
            SkippedCounts {
                missing_predictions: 1,
                ignored_empty_gt: 1,
                extra_predictions: 1,
                concepts_without_level: 0,
                coherence_judged: 3
            }
        );
        // With the identity closure the hierarchical scores are the micro scores.
        let h = r.hierarchical.unwrap();
        assert!(close(h.f1, r.averages.micro_f1) && close(h.precision, r.averages.micro_precision));
        assert!(close(r.coherence_rate.unwrap(), 2.0 / 3.0));
        let text = r.to_string();
        assert!(text.contains("ImageCLEF F1") && text.contains("modality") && text.contains("hierarchical"));
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["per_concept"][0]["fn"].is_number());
        // No hooks: the ontology parts are absent.
        let bare = evaluate(&gt, &pred, &EvalHooks::default());
        assert!(bare.per_level.is_empty() && bare.hierarchical.is_none() && bare.coherence_rate.is_none());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn label_map() -> impl Strategy<Value = LabelMap> {
            let cui = prop::sample::select(vec!["A", "a", "B", "C", "D", "E", "f", "g"]);
            prop::collection::btree_map(0u8..8, prop::collection::btree_set(cui.prop_map(str::to_string), 0..5), 0..8)
                .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        }

        proptest! {
            /// With a single level, per-level F1 is the ImageCLEF F1 (when any image is scored).
            #[test]
            fn one_level_equals_imageclef(gt in label_map(), pred in label_map()) {
                let clef = imageclef_f1(&gt, &pred);
                let lv = per_level_scores(&gt, &pred, &|_| Some("all".to_string()));
                if clef.n_images == 0 {
                    prop_assert!(lv.is_empty());
                } else {
                    let l = lv["all"];
                    prop_assert_eq!(l.n_images, clef.n_images);
                    prop_assert!((l.f1 - clef.f1).abs() < 1e-12);
                }
            }

            /// Same value as a literal transcription of evaluate-f1.py (indicator vectors over
            /// `sorted(set(gt + pred))`, sklearn binary F1 with zero_division = 0, missing = '').
            #[test]
            fn matches_evaluate_f1_py(gt in label_map(), pred in label_map()) {
                let (mut score, mut max_score) = (0.0f64, gt.len() as f64);
                for (id, g) in &gt {
                    let g: Vec<String> = g.iter().map(|c| c.to_uppercase()).collect();
                    let p: Vec<String> = pred.get(id).map(|p| p.iter().map(|c| c.to_uppercase()).collect()).unwrap_or_default();
                    if g.is_empty() {
                        max_score -= 1.0;
                        continue;
                    }
                    let all: BTreeSet<&String> = g.iter().chain(&p).collect();
                    let y_true: Vec<bool> = all.iter().map(|c| g.contains(c)).collect();
                    let y_pred: Vec<bool> = all.iter().map(|c| p.contains(c)).collect();
                    let tp = y_true.iter().zip(&y_pred).filter(|(t, p)| **t && **p).count() as f64;
                    let fp = y_true.iter().zip(&y_pred).filter(|(t, p)| !**t && **p).count() as f64;
                    let fn_ = y_true.iter().zip(&y_pred).filter(|(t, p)| **t && !**p).count() as f64;
                    let den = 2.0 * tp + fp + fn_;
                    score += if den == 0.0 { 0.0 } else { 2.0 * tp / den };
                }
                let expected = if max_score == 0.0 { 0.0 } else { score / max_score };
                prop_assert!((imageclef_f1(&gt, &pred).f1 - expected).abs() < 1e-12);
            }

            /// Identity closure: hierarchical = micro over concepts.
            #[test]
            fn identity_closure_is_micro(gt in label_map(), pred in label_map()) {
                let h = hierarchical_prf(&gt, &pred, &|s| s.clone());
                let av = micro_macro(&per_concept_scores(&gt, &pred));
                prop_assert!((h.f1 - av.micro_f1).abs() < 1e-12);
                prop_assert!((h.precision - av.micro_precision).abs() < 1e-12);
                prop_assert!((h.recall - av.micro_recall).abs() < 1e-12);
            }
        }
    }
}
